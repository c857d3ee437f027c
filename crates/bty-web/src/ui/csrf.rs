//! The CSRF check on every UI form post: the session's token must come with the request, in
//! the `csrf` field of a url-encoded form, the `x-csrf-token` header, or (for uploads) as the
//! first part of a multipart form, which `MultipartForm` checks before any file is read.
//! Logout alone may come without a token (scripts sign out as they do with upstream); a token
//! that is sent must still be right, and the cross-site guard applies to logout as to every
//! other post.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::guard::Session;
use crate::state::AppState;

/// The one post that may come without a token.
const LOGOUT: &str = "/ui/logout";

fn refused() -> Response {
    (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response()
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Middleware for the UI routes (after the session check).
pub async fn require(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return refused();
    };
    let token_optional = req.uri().path() == LOGOUT;
    if let Some(t) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return if s.keys.csrf_ok(&session.id, t) {
            next.run(req).await
        } else {
            refused()
        };
    }
    let ct = content_type(&req);
    if ct.starts_with("multipart/form-data") {
        // Checked by `MultipartForm` on the first part.
        return next.run(req).await;
    }
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return if token_optional {
            next.run(req).await
        } else {
            refused()
        };
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, s.cfg.max_body_bytes).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let tokens: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .collect();
    let ok = if tokens.is_empty() {
        token_optional
    } else {
        tokens.iter().any(|v| s.keys.csrf_ok(&session.id, v))
    };
    drop(tokens);
    if !ok {
        return refused();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Largest text part of a multipart form (the CSRF token, a file name choice).
pub const TEXT_PART: usize = 4 << 10;

/// A multipart part read as text, refused as soon as it passes `cap` bytes (never buffered
/// whole first).
pub async fn small_text(
    mut field: axum::extract::multipart::Field<'_>,
    cap: usize,
) -> Result<String, String> {
    let mut data = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(c)) => {
                if data.len() + c.len() > cap {
                    return Err(format!("larger than {cap} bytes"));
                }
                data.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => return Err(format!("the upload was cut: {e}")),
        }
    }
    String::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())
}

/// A multipart form whose first part is the session's CSRF token.
pub struct MultipartForm(pub Multipart);

impl FromRequest<AppState> for MultipartForm {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Self::Rejection> {
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            return Err(refused());
        };
        let mut mp = Multipart::from_request(req, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let first = mp.next_field().await.map_err(IntoResponse::into_response)?;
        let Some(field) = first.filter(|f| f.name() == Some("csrf")) else {
            return Err(refused());
        };
        let Ok(token) = small_text(field, TEXT_PART).await else {
            return Err(refused());
        };
        if !s.keys.csrf_ok(&session.id, &token) {
            return Err(refused());
        }
        Ok(MultipartForm(mp))
    }
}
