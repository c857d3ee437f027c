//! The router: every route with its guards (the state it serves is in [`crate::state`]).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};

use crate::guard;
use crate::routes;
use crate::state::AppState;
use crate::ui;

/// Largest inventory body (lshw may be up to 4 MiB).
pub const INVENTORY_BODY: usize = routes::pxe::MAX_LSHW + (1 << 20);

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
        .route("/events/machines", get(routes::live::machines))
        .route("/netboot", get(routes::boot::status))
        .route("/cache", get(routes::cache::list))
        .route("/cache/prefetch", post(routes::cache::prefetch))
        .route("/cache/{key}", axum::routing::delete(routes::cache::delete))
        .route(
            "/boot/{name}",
            put(routes::boot::put).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_api,
        ));
    let ui = Router::new()
        .route("/ui/dashboard", get(ui::dashboard::show))
        .route("/ui/machines", get(ui::machines::show))
        .route("/ui/machines/bulk", post(ui::bulk::apply))
        .route(
            "/ui/machines/{mac}",
            get(ui::machine::show).post(ui::machine::save),
        )
        .route("/ui/machines/{mac}/delete", post(ui::machine::delete))
        .route("/ui/images", get(ui::images::show))
        .route("/ui/images/add", post(ui::images::add))
        .route("/ui/images/import", post(ui::images::import_url))
        .route("/ui/images/upload", post(ui::images::import_upload))
        .route(
            "/ui/images/delete",
            get(ui::images::confirm_delete).post(ui::images::delete),
        )
        .route("/ui/cache", get(ui::cache::show))
        .route("/ui/cache/delete", post(ui::cache::delete))
        .route("/ui/events", get(ui::events::show))
        .route("/ui/events/ack", post(ui::events::ack))
        .route("/ui/netboot", get(ui::netboot::show))
        .route(
            "/ui/netboot/upload",
            post(ui::netboot::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/ui/settings", get(ui::settings::show))
        .route("/ui/account", get(ui::account::show))
        .route("/ui/account/password", post(ui::account::change_password))
        .route("/ui/logout", post(ui::login::logout))
        .route("/ui/live/machines", get(ui::live::machines))
        .route("/ui/live/dashboard", get(ui::live::dashboard))
        .route("/ui/live/machines/{mac}", get(ui::live::machine))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ui::csrf::require,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_ui,
        ));
    let open = Router::new()
        .route("/", get(routes::misc::root))
        .route("/ui", get(routes::misc::ui_root))
        .route("/healthz", get(routes::misc::healthz))
        .route("/version", get(routes::misc::version))
        .route("/metrics", get(routes::live::metrics))
        .route("/images", get(routes::catalog::images))
        .route("/catalog.toml", get(routes::catalog::catalog_toml))
        .route(
            "/ui/login",
            get(ui::login::login_page).post(ui::login::login),
        )
        .route("/static/{*name}", get(ui::assets::get))
        .route("/pxe-bootstrap.ipxe", get(routes::pxe::bootstrap))
        .route("/pxe/{mac}", get(routes::pxe::script))
        .route("/pxe/{mac}/plan", get(routes::pxe::plan))
        .route(
            "/pxe/{mac}/inventory",
            post(routes::pxe::inventory).layer(DefaultBodyLimit::max(INVENTORY_BODY)),
        )
        .route("/pxe/{mac}/done", post(routes::pxe::done))
        .route("/pxe/{mac}/status", post(routes::pxe::status))
        .route("/pxe/{mac}/failed", post(routes::pxe::failed))
        .route("/pxe/{mac}/progress", post(routes::pxe::progress))
        .route(
            "/boot/{name}",
            get(routes::boot::get).head(routes::boot::get),
        )
        .route(
            "/cache/sha256/{hex}/{*name}",
            get(routes::cache::blob).head(routes::cache::blob),
        )
        .route(
            "/images/{key}",
            get(routes::images::blob).head(routes::images::blob),
        )
        .route(
            "/images/{key}/{*name}",
            get(routes::images::blob_named).head(routes::images::blob_named),
        );
    let limit = state.cfg.max_body_bytes;
    Router::new()
        .merge(api)
        .merge(ui)
        .merge(open)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            routes::live::count_requests,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::limit_declared_body,
        ))
        .layer(middleware::from_fn(guard::refuse_cross_site))
        .layer(middleware::from_fn(guard::security_headers))
        .with_state(state)
}
