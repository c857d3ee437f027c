//! Health, version, and the redirects at `/` and `/ui`.

use axum::Json;
use axum::response::Redirect;

pub async fn root() -> Redirect {
    Redirect::to("/ui/login")
}

pub async fn ui_root() -> Redirect {
    Redirect::to("/ui/dashboard")
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }))
}
