//! The audit log: search (`q`) and filters as pivot links, acknowledgement of failures, paging
//! by id (newest first, 50 a page).

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::Operator;
use super::{base, error_page, render};
use crate::db::events::{self, Filter};
use crate::state::AppState;

const PAGE: i64 = 50;

pub async fn show(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Query(mut f): Query<Filter>,
) -> Response {
    f.limit = Some(PAGE);
    let q = f.clone();
    let Ok(rows) = s.db.read(move |c| events::query(c, &q)).await else {
        return error_page(
            &s,
            &session,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the events",
        )
        .await;
    };
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    // The filter without the cursor, for the pivot and paging links.
    let mut keep: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("q", &f.q),
        ("kind", &f.kind),
        ("subject_kind", &f.subject_kind),
        ("subject_id", &f.subject_id),
        ("actor", &f.actor),
        ("source_ip", &f.source_ip),
        ("failed", &f.failed),
        ("unacked", &f.unacked),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            keep.push((k, v.clone()));
        }
    }
    let filter_query = serde_urlencoded::to_string(&keep).unwrap_or_default();
    let mut here = keep.clone();
    if let Some(b) = f.before_id {
        here.push(("before_id", b.to_string()));
    }
    let back = format!(
        "/ui/events?{}",
        serde_urlencoded::to_string(&here).unwrap_or_default()
    );
    let unacked_failures: Vec<i64> = rows
        .iter()
        .filter(|e| e.kind.ends_with("failed") && !e.acknowledged)
        .map(|e| e.id)
        .collect();
    let ctx = minijinja::context! {
        rows => rows,
        f => f,
        filtered => !keep.is_empty(),
        filter_query => filter_query,
        older => older,
        newer => f.before_id.is_some(),
        back => back,
        unacked_failures => unacked_failures.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","),
        ..base(&s, &session, "events").await
    };
    render("events.html", ctx)
}

/// Where to go after an acknowledgement: back to a UI page, never elsewhere.
fn safe_back(back: Option<&str>) -> String {
    match back {
        Some(b)
            if b.starts_with("/ui/")
                && !b.starts_with("//")
                && !b.contains('\\')
                && !b.chars().any(char::is_control) =>
        {
            b.to_string()
        }
        _ => "/ui/events".into(),
    }
}

/// `POST /ui/events/ack`: `ids` (repeated, or comma-separated), `back` (where to return).
pub async fn ack(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "ids")
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    if ids.is_empty() {
        return error_page(
            &s,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no event was chosen",
        )
        .await;
    }
    let back = safe_back(
        fields
            .iter()
            .find(|(k, _)| k == "back")
            .map(|(_, v)| v.as_str()),
    );
    let done =
        s.db.write(move |c| {
            let mut n = 0;
            for id in ids {
                n += usize::from(events::ack(c, id)?);
            }
            Ok(n)
        })
        .await;
    match done {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(_) => {
            error_page(
                &s,
                &session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store the acknowledgement",
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn back_stays_in_the_ui() {
        assert_eq!(super::safe_back(Some("/ui/dashboard")), "/ui/dashboard");
        assert_eq!(super::safe_back(Some("//evil.example/ui/")), "/ui/events");
        assert_eq!(super::safe_back(Some("https://evil.example")), "/ui/events");
        assert_eq!(super::safe_back(None), "/ui/events");
    }
}
