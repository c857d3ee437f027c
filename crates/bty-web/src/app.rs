//! The application: shared state and the router with its guards.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

use crate::auth::Keys;
use crate::config::Config;
use crate::db::Db;
use crate::guard::{self, LoginLimiter};
use crate::routes;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub db: Db,
    pub keys: Arc<Keys>,
    pub limiter: Arc<LoginLimiter>,
}

impl AppState {
    /// Cookies get `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.cfg
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/machines", get(routes::machines::list))
        .route(
            "/machines/{mac}",
            get(routes::machines::get_one)
                .put(routes::machines::put)
                .delete(routes::machines::delete),
        )
        .route("/machines/{mac}/lshw.json", get(routes::machines::lshw))
        .route("/machines/{mac}/disks.json", get(routes::machines::disks))
        .route(
            "/catalog/entries",
            get(routes::catalog::list)
                .post(routes::catalog::add)
                .delete(routes::catalog::delete),
        )
        .route("/catalog/import", post(routes::catalog::import))
        .route("/events", get(routes::events::list))
        .route("/events/{id}/ack", post(routes::events::ack))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_api,
        ));
    let ui = Router::new()
        .route("/ui/dashboard", get(routes::ui::dashboard))
        .route("/ui/account/password", post(routes::ui::change_password))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_ui,
        ));
    let open = Router::new()
        .route("/", get(routes::misc::root))
        .route("/ui", get(routes::misc::ui_root))
        .route("/healthz", get(routes::misc::healthz))
        .route("/version", get(routes::misc::version))
        .route("/images", get(routes::catalog::images))
        .route("/catalog.toml", get(routes::catalog::catalog_toml))
        .route(
            "/ui/login",
            get(routes::ui::login_page).post(routes::ui::login),
        )
        .route("/ui/logout", post(routes::ui::logout));
    let limit = state.cfg.max_body_bytes;
    Router::new()
        .merge(api)
        .merge(ui)
        .merge(open)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::limit_declared_body,
        ))
        .layer(middleware::from_fn(guard::refuse_cross_site))
        .layer(middleware::from_fn(guard::security_headers))
        .with_state(state)
}
