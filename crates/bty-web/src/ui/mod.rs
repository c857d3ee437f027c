//! The browser UI under `/ui`: server-rendered pages (minijinja templates compiled into the
//! binary), vendored htmx + its SSE extension for the live tables, and plain form posts with a
//! CSRF token everywhere else. Each page has a module of its own; `view` turns stored rows into
//! what the templates show.

pub mod account;
pub mod assets;
pub mod bulk;
pub mod cache;
pub mod csrf;
pub mod dashboard;
pub mod events;
pub mod images;
pub mod live;
pub mod login;
pub mod machine;
pub mod machines;
pub mod netboot;
pub mod settings;
pub mod templates;
pub mod view;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value;

use crate::error::ApiError;
use crate::guard::{ClientIp, Session};
use crate::state::AppState;

/// Messages shown next to form fields, by field name.
pub type FieldErrors = BTreeMap<String, String>;

/// Field errors from the API's validation errors (`loc` ends with the field name); errors that
/// name no field go under `_form`.
pub fn field_errors(e: &ApiError, default_field: &str) -> FieldErrors {
    let mut out = FieldErrors::new();
    match e {
        ApiError::Invalid(v) => {
            for ve in v {
                let field = ve
                    .loc
                    .last()
                    .filter(|f| !f.is_empty() && f.as_str() != "body")
                    .cloned()
                    .unwrap_or_else(|| default_field.to_string());
                out.entry(field)
                    .and_modify(|m: &mut String| {
                        m.push_str("; ");
                        m.push_str(&ve.msg)
                    })
                    .or_insert_with(|| ve.msg.clone());
            }
        }
        ApiError::Status(_, detail) => {
            out.insert(default_field.to_string(), detail.clone());
        }
    }
    out
}

/// Whether the admin password is still the built-in default (not configured, never changed).
pub async fn default_password_in_use(s: &AppState) -> bool {
    s.cfg.default_password() && login::admin_hash(s).await.is_none()
}

/// What every signed-in page's layout needs: the active nav entry, the CSRF token for its
/// forms (and the logout button), the default-password banner.
pub async fn base(s: &AppState, session: &Session, page: &str) -> Value {
    minijinja::context! {
        page => page,
        signed_in => true,
        csrf => s.keys.csrf(&session.id),
        default_password => default_password_in_use(s).await,
        version => env!("CARGO_PKG_VERSION"),
    }
}

/// Render a template into a response with `status`; a template error is a 500 and a log line
/// (every template is rendered by the tests, so this is a bug, never input).
pub fn render_status(status: StatusCode, name: &str, ctx: Value) -> Response {
    match templates::render(name, ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("template {name}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (see the server log)",
            )
                .into_response()
        }
    }
}

pub fn render(name: &str, ctx: Value) -> Response {
    render_status(StatusCode::OK, name, ctx)
}

/// A UI error page for failures that are not a form's field (a store that failed, a missing
/// machine).
pub async fn error_page(
    s: &AppState,
    session: &Session,
    status: StatusCode,
    msg: &str,
) -> Response {
    let ctx = minijinja::context! { message => msg, status => status.as_u16(), ..base(s, session, "").await };
    render_status(status, "error.html", ctx)
}

/// The signed-in operator behind a UI request: the session (put there by the session check)
/// and the client's address, for the audit log.
pub struct Operator {
    pub session: Session,
    pub ip: String,
}

impl axum::extract::FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(session) = parts.extensions.get::<Session>().cloned() else {
            return Err(axum::response::Redirect::to("/ui/login").into_response());
        };
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, s).await;
        Ok(Operator {
            session,
            ip: ip.to_string(),
        })
    }
}

/// A MAC address from the path; anything else is a 404 page.
pub struct MacPath(pub bty_proto::Mac);

impl axum::extract::FromRequestParts<AppState> for MacPath {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::Path::<String>::from_request_parts(parts, s)
            .await
            .map(|p| p.0)
            .unwrap_or_default();
        if let Ok(mac) = bty_proto::Mac::parse(&raw) {
            return Ok(MacPath(mac));
        }
        let msg = format!("{raw:?} is not a MAC address");
        Err(match parts.extensions.get::<Session>() {
            Some(session) => error_page(s, session, StatusCode::NOT_FOUND, &msg).await,
            None => (StatusCode::NOT_FOUND, msg).into_response(),
        })
    }
}
