//! The image cache page: every blob with its state and fill progress (the page refreshes
//! itself while a fill runs), size, hits, last use and pin, the cap in effect, and a delete
//! button for blobs that may go.

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Operator, base, error_page, render};
use crate::state::AppState;

pub async fn show(State(s): State<AppState>, Operator { session, .. }: Operator) -> Response {
    let items = match s.cache.list().await {
        Ok(i) => i,
        Err(_) => {
            return error_page(
                &s,
                &session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the cache",
            )
            .await;
        }
    };
    let filling = items.iter().any(|i| i.state == "filling");
    let held: u64 = items.iter().map(|i| i.filled).sum();
    let rows: Vec<minijinja::Value> = items
        .iter()
        .map(|i| {
            let pct = i.size.filter(|n| *n > 0).map(|n| i.filled.min(n) * 100 / n);
            minijinja::context! { i => i, pct => pct }
        })
        .collect();
    let ctx = minijinja::context! {
        rows => rows,
        filling => filling,
        enabled => s.cfg.cache.enabled,
        dir => s.cfg.cache.dir.display().to_string(),
        cap => s.cache.cap,
        held => held,
        over_cap => s.cache.over_cap_note(),
        ..base(&s, &session, "cache").await
    };
    render("cache.html", ctx)
}

/// `POST /ui/cache/delete` (`key`): refused while served, filling or pinned.
pub async fn delete(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let key = form.get("key").cloned().unwrap_or_default();
    match s.cache.delete(&key).await {
        Ok(()) => Redirect::to("/ui/cache").into_response(),
        Err(crate::error::ApiError::Status(st, msg)) => error_page(&s, &session, st, &msg).await,
        Err(_) => {
            error_page(
                &s,
                &session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the delete failed",
            )
            .await
        }
    }
}
