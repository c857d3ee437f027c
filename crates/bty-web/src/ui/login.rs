//! Signing in and out: the login form (which tells anonymous visitors nothing about the
//! password), the login post (attempts counted per address before verification, audited),
//! and logout (which deletes the session row).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Operator;
use crate::auth::{self, Keys};
use crate::db::events::{self, NewEvent};
use crate::db::{sessions, settings};
use crate::guard::{ClientIp, VERIFY_WAIT, session_of};
use crate::state::AppState;

async fn login_form(status: StatusCode, message: Option<&str>) -> Response {
    super::render_status(
        status,
        "login.html",
        minijinja::context! {
            // Nothing about the password for anonymous visitors: the warning is for the
            // signed-in operator (banner and dashboard checklist).
            default_password => false,
            message => message,
            version => env!("CARGO_PKG_VERSION"),
        },
    )
}

pub(super) fn with_cookie(mut res: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

pub(super) async fn admin_hash(s: &AppState) -> Option<String> {
    s.db.read(|c| settings::get(c, settings::ADMIN_PASSWORD_HASH))
        .await
        .ok()
        .flatten()
}

pub async fn login_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    // Already signed in: straight to the dashboard.
    if session_of(&s, &headers).await.is_some() {
        return Redirect::to("/ui/dashboard").into_response();
    }
    login_form(StatusCode::OK, None).await
}

pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(password) = form.get("password") else {
        return crate::error::ApiError::invalid("password", "field required").into_response();
    };
    let ok = match password_check(&s, ip, password).await {
        Verdict::Limited(wait) => return limited(wait).await,
        v => v == Verdict::Right,
    };
    let ip_s = ip.to_string();
    let event = |kind: &'static str, summary: &str| NewEvent {
        kind,
        subject_kind: Some("auth"),
        subject_id: Some("operator".into()),
        actor: Some("operator"),
        source_ip: Some(ip_s.clone()),
        summary: summary.into(),
        details: None,
    };
    if !ok {
        let e = event("auth.login.failed", "login failed: wrong password");
        let _ = s.db.write(move |c| events::record(c, &e)).await;
        return login_form(StatusCode::OK, Some("Invalid password.")).await;
    }
    let Ok(id) = Keys::new_session_id() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let e = event("auth.login.succeeded", "operator signed in");
    let sid = id.clone();
    let ip_row = ip_s.clone();
    if s.db
        .write(move |c| {
            sessions::purge_expired(c)?;
            sessions::create(c, &sid, Some(&ip_row))?;
            events::record(c, &e)
        })
        .await
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    with_cookie(
        Redirect::to("/ui/dashboard").into_response(),
        &auth::set_cookie(Some(&s.keys.sign(&id)), s.secure_cookies()),
    )
}

/// The login form answered 429 with the wait.
async fn limited(wait: u64) -> Response {
    let mut res = login_form(
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!("Too many attempts; try again in {wait} s.")),
    )
    .await;
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Right,
    Wrong,
    /// Over the per-address limit, or no verification slot came free in time: wait this long.
    Limited(u64),
}

/// Check a password attempt from `ip` (logins and password changes alike): counted against the
/// address's limit first, then verified in one of the few verification slots on a blocking
/// thread (argon2 is deliberately slow and memory-hungry).
pub(super) async fn password_check(s: &AppState, ip: IpAddr, given: &str) -> Verdict {
    if let Err(wait) = s.limiter.attempt(ip) {
        return Verdict::Limited(wait);
    }
    let slot = tokio::time::timeout(VERIFY_WAIT, s.limiter.verify.clone().acquire_owned()).await;
    let Ok(Ok(slot)) = slot else {
        return Verdict::Limited(1);
    };
    let hash = admin_hash(s).await;
    let keys = std::sync::Arc::clone(&s.keys);
    let (given, configured) = (given.to_string(), s.cfg.admin_password.clone());
    let ok = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        auth::password_ok(&keys, &given, hash.as_deref(), &configured)
    })
    .await
    .unwrap_or(false);
    if ok {
        s.limiter.succeeded(ip);
        Verdict::Right
    } else {
        Verdict::Wrong
    }
}

/// Logout is a UI form post like any other (session and CSRF token checked before it runs).
pub async fn logout(State(s): State<AppState>, Operator { session, ip }: Operator) -> Response {
    {
        let id = session.id;
        let _ =
            s.db.write(move |c| {
                if sessions::delete(c, &id)? {
                    events::record(
                        c,
                        &NewEvent {
                            kind: "auth.logout",
                            subject_kind: Some("auth"),
                            subject_id: Some("operator".into()),
                            actor: Some("operator"),
                            source_ip: Some(ip),
                            summary: "operator signed out".into(),
                            details: None,
                        },
                    )?;
                }
                Ok(())
            })
            .await;
    }
    with_cookie(
        Redirect::to("/ui/login").into_response(),
        &auth::set_cookie(None, s.secure_cookies()),
    )
}
