//! The machines page: the table (live through SSE, filtered by text and label) and the
//! add-by-MAC form, which opens the new machine's form.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bty_proto::catalog::CatalogEntry;
use bty_proto::{Mac, Machine};
use serde::Deserialize;

use super::Operator;
use super::view::{self, Row};
use super::{FieldErrors, base, render_status};
use crate::db::{catalog, events, machines};
use crate::state::AppState;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub label: String,
}

/// Every machine (with its in-memory progress) beside its table row, and the catalog.
pub async fn load(s: &AppState) -> Option<(Vec<(Machine, Row)>, Vec<CatalogEntry>)> {
    let (list, entries) =
        s.db.read(|c| Ok((machines::list(c)?, catalog::list(c)?)))
            .await
            .ok()?;
    let names = view::names(&entries);
    let both = list
        .into_iter()
        .map(|mut m| {
            s.with_progress(&mut m);
            let r = view::row(&m, &names);
            (m, r)
        })
        .collect();
    Some((both, entries))
}

/// Every machine as a table row, and the catalog.
pub async fn all_rows(s: &AppState) -> Option<(Vec<Row>, Vec<CatalogEntry>)> {
    let (both, entries) = load(s).await?;
    Some((both.into_iter().map(|(_, r)| r).collect(), entries))
}

/// The rows the filter shows, and every label in use.
pub async fn rows(s: &AppState, f: &Filter) -> Option<(Vec<Row>, Vec<String>)> {
    let (all, _) = all_rows(s).await?;
    let labels: BTreeSet<String> = all.iter().flat_map(|r| r.labels.iter().cloned()).collect();
    let shown = all
        .into_iter()
        .filter(|r| view::matches(r, &f.q, &f.label))
        .collect();
    Some((shown, labels.into_iter().collect()))
}

pub async fn rows_html(s: &AppState, f: &Filter) -> Option<String> {
    let (rows, _) = rows(s, f).await?;
    super::templates::render("machine_rows.html", minijinja::context! { rows => rows })
        .map_err(|e| tracing::error!("machine rows: {e:#}"))
        .ok()
}

/// The latest machine events, newest first.
async fn activity(s: &AppState) -> Vec<bty_proto::event::Event> {
    s.db.read(|c| {
        events::query(
            c,
            &events::Filter {
                subject_kind: Some("machine".into()),
                limit: Some(10),
                ..Default::default()
            },
        )
    })
    .await
    .unwrap_or_default()
}

pub async fn activity_html(s: &AppState, csrf: &str) -> Option<String> {
    let ctx = minijinja::context! { activity => activity(s).await, csrf => csrf };
    super::templates::render("machine_activity.html", ctx)
        .map_err(|e| tracing::error!("machine activity: {e:#}"))
        .ok()
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    label: String,
    deleted: Option<String>,
    /// The outcome of a bulk change.
    bulk: Option<String>,
    /// The add-by-MAC form.
    add: Option<String>,
}

pub async fn show(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Query(q): Query<PageQuery>,
) -> Response {
    let mut errors = FieldErrors::new();
    if let Some(raw) = q.add.as_deref() {
        match Mac::parse(raw.trim()) {
            Ok(mac) => return Redirect::to(&format!("/ui/machines/{mac}")).into_response(),
            Err(_) => {
                errors.insert(
                    "add".into(),
                    format!("{raw:?} is not a MAC address (like 52:54:00:12:34:56)."),
                );
            }
        }
    }
    let f = Filter {
        q: q.q.clone(),
        label: q.label.clone(),
    };
    let Some((rows, labels)) = rows(&s, &f).await else {
        return super::error_page(
            &s,
            &session,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the machines",
        )
        .await;
    };
    let activity = activity(&s).await;
    let entries = view::bindable(s.db.read(catalog::list).await.unwrap_or_default());
    let modes: Vec<&str> = bty_proto::BootMode::ALL
        .iter()
        .map(|b| b.as_str())
        .collect();
    let live_query =
        serde_urlencoded::to_string([("q", &f.q), ("label", &f.label)]).unwrap_or_default();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = minijinja::context! {
        rows => rows,
        labels => labels,
        q => f.q,
        label => f.label,
        live_query => live_query,
        add => q.add,
        errors => errors,
        deleted => q.deleted,
        bulk => q.bulk,
        entries => entries,
        modes => modes,
        activity => activity,
        ..base(&s, &session, "machines").await
    };
    render_status(status, "machines.html", ctx)
}
