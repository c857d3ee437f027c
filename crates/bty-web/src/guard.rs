//! Request guards: security headers on every answer, refusal of cross-site state-changing
//! requests, the session check (401 JSON on API routes, 303 to the login on UI routes) with a
//! sliding expiry, the client address (X-Forwarded-For only from trusted proxies), and the
//! per-address login limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{self, cookie_value};
use crate::db::sessions;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request says it comes from another site.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or("");
        return origin == "null" || !origin_host.eq_ignore_ascii_case(host);
    }
    false
}

pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    if changes_state(req.method()) && cross_site(req.headers()) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    next.run(req).await
}

/// The caller's address: the peer, or with a trusted proxy in front, the right-most
/// X-Forwarded-For hop that is not itself a trusted proxy.
pub fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer_ip = match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let trusted = &state.cfg.trusted_proxies;
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer_ip)
}

/// A valid session, put into the request by the session check.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
}

/// The session id in the request's `bty-token` cookie, if its signature holds (whether the
/// session is still valid is the database's to say).
pub fn signed_session_id(keys: &auth::Keys, headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(cookie_value)?;
    keys.verify(raw)
}

/// The request's valid session and its expiry.
pub async fn session_of(state: &AppState, headers: &HeaderMap) -> Option<(Session, i64)> {
    let id = signed_session_id(&state.keys, headers)?;
    let lookup = id.clone();
    let until = state
        .db
        .read(move |c| sessions::valid_until(c, &lookup))
        .await
        .ok()??;
    Some((Session { id }, until))
}

/// The session check. `ui`: answer 303 to the login page instead of 401.
async fn require(state: AppState, mut req: Request, next: Next, ui: bool) -> Response {
    let Some((session, until)) = session_of(&state, req.headers()).await else {
        return if ui {
            Redirect::to("/ui/login").into_response()
        } else {
            ApiError::new(StatusCode::UNAUTHORIZED, "login required").into_response()
        };
    };
    // Slide the expiry forward, at most once an hour per session.
    if until < crate::db::unix_now() + sessions::TTL_SECS - 3600 {
        let id = session.id.clone();
        let _ = state.db.write(move |c| sessions::touch(c, &id)).await;
    }
    let cookie = state.keys.sign(&session.id);
    req.extensions_mut().insert(session);
    let mut res = next.run(req).await;
    if !res.headers().contains_key(header::SET_COOKIE)
        && let Ok(v) =
            HeaderValue::from_str(&auth::set_cookie(Some(&cookie), state.secure_cookies()))
    {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

pub async fn require_api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    require(state, req, next, false).await
}

pub async fn require_ui(State(state): State<AppState>, req: Request, next: Next) -> Response {
    require(state, req, next, true).await
}

/// Password attempts per address: at most `MAX_ATTEMPTS` in `WINDOW`, each counted *before*
/// it is verified (so concurrent posts cannot slip past the limit), cleared by a success. The
/// limit is per address: a global one would let anyone lock the operator out. Verifications
/// (argon2: ~19 MiB and tens of milliseconds each) also take one of `VERIFY_SLOTS` slots,
/// waiting at most `VERIFY_WAIT` for one, which bounds memory whatever the number of posts.
pub struct LoginLimiter {
    attempts: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub verify: std::sync::Arc<tokio::sync::Semaphore>,
}

pub const MAX_ATTEMPTS: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Password verifications that run at once.
pub const VERIFY_SLOTS: usize = 2;
/// How long an attempt waits for a verification slot before it is answered 429.
pub const VERIFY_WAIT: Duration = Duration::from_secs(3);

impl LoginLimiter {
    pub fn new() -> LoginLimiter {
        LoginLimiter {
            attempts: Mutex::new(HashMap::new()),
            verify: std::sync::Arc::new(tokio::sync::Semaphore::new(VERIFY_SLOTS)),
        }
    }

    /// Count an attempt from `ip`; `Err(seconds to wait)` when it is over the limit.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), u64> {
        let Ok(mut map) = self.attempts.lock() else {
            return Err(WINDOW.as_secs());
        };
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| t.elapsed() < WINDOW);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        if e.0 >= MAX_ATTEMPTS {
            return Err((WINDOW - e.1.elapsed()).as_secs().max(1));
        }
        e.0 += 1;
        Ok(())
    }

    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.attempts.lock() {
            map.remove(&ip);
        }
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new()
    }
}

/// The peer's socket address (loopback when the server runs without connect info).
pub struct Peer(pub SocketAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        ))
    }
}

/// The client's address as `client_ip` gives it (the peer, or behind a trusted proxy the
/// forwarded one): for the audit log and the login limit.
pub struct ClientIp(pub IpAddr);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(Peer(addr)) = Peer::from_request_parts(parts, s).await;
        Ok(ClientIp(client_ip(s, addr, &parts.headers)))
    }
}

/// Refuse a body whose declared length is over the limit before reading any of it (bodies
/// without a length are cut at the same limit while they are read).
pub async fn limit_declared_body(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let path = req.uri().path();
    let limit = if (req.method() == Method::PUT && path.starts_with("/boot/"))
        || path == "/ui/netboot/upload"
    {
        state.cfg.max_upload_bytes
    } else if path.starts_with("/pxe/") && path.ends_with("/inventory") {
        crate::app::INVENTORY_BODY as u64
    } else {
        state.cfg.max_body_bytes as u64
    };
    if declared.is_some_and(|n| n > limit) {
        let mut res = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
        .into_response();
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    next.run(req).await
}
