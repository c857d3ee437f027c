//! Signing in and out: the login form (with the default-password warning), the login post
//! (rate-limited per address, audited), and logout (which deletes the session row).

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Operator;
use crate::app::AppState;
use crate::auth::{self, Keys};
use crate::db::events::{self, NewEvent};
use crate::db::{sessions, settings};
use crate::guard::{ClientIp, session_of};

async fn login_form(s: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    super::render_status(
        status,
        "login.html",
        minijinja::context! {
            default_password => super::default_password_in_use(s).await,
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
    login_form(&s, StatusCode::OK, None).await
}

pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(password) = form.get("password") else {
        return crate::error::ApiError::invalid("password", "field required").into_response();
    };
    if let Some(wait) = s.limiter.blocked(ip) {
        let mut res = login_form(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many failed attempts; try again in {wait} s.")),
        )
        .await;
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let hash = admin_hash(&s).await;
    let ok = password_check(&s.keys, password, hash, s.cfg.admin_password.clone()).await;
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
        s.limiter.failed(ip);
        let e = event("auth.login.failed", "login failed: wrong password");
        let _ = s.db.write(move |c| events::record(c, &e)).await;
        return login_form(&s, StatusCode::OK, Some("Invalid password.")).await;
    }
    s.limiter.succeeded(ip);
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

/// Argon2 is deliberately slow: check on a blocking thread.
pub(super) async fn password_check(
    keys: &std::sync::Arc<Keys>,
    given: &str,
    hash: Option<String>,
    configured: String,
) -> bool {
    let keys = std::sync::Arc::clone(keys);
    let given = given.to_string();
    tokio::task::spawn_blocking(move || {
        auth::password_ok(&keys, &given, hash.as_deref(), &configured)
    })
    .await
    .unwrap_or(false)
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
