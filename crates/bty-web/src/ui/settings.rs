//! The settings page: every configuration key's effective value and where it came from
//! (default, a file, the environment), secrets masked.

use axum::extract::State;
use axum::response::Response;

use super::Operator;
use super::{base, render};
use crate::state::AppState;

pub async fn show(State(s): State<AppState>, Operator { session, .. }: Operator) -> Response {
    let rows: Vec<_> = s
        .cfg
        .describe()
        .into_iter()
        .map(|(key, value, source)| {
            let kind = source.split(' ').next().unwrap_or("default").to_string();
            minijinja::context! { key, value, source, kind }
        })
        .collect();
    let ctx = minijinja::context! {
        rows => rows,
        files => s.cfg.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        state_dir => s.cfg.state_dir.display().to_string(),
        ..base(&s, &session, "settings").await
    };
    render("settings.html", ctx)
}
