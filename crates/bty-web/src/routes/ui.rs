//! Login, logout and the password change (form posts, as upstream's scripts use them), and a
//! minimal signed-in page until the browser UI lands.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::auth::{self, Keys};
use crate::db::events::{self, NewEvent};
use crate::db::{sessions, settings};
use crate::guard::{Peer, Session, client_ip, session_of, signed_session_id};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} - bty-web</title></head><body><main>{body}</main></body></html>",
        escape(title)
    ))
}

fn login_form(s: &AppState, message: Option<&str>) -> Html<String> {
    let mut body = String::from("<h1>bty-web</h1>");
    if s.cfg.default_password() {
        body.push_str(
            "<p role=\"alert\"><strong>The default password (bty-lab) is in use.</strong> \
             Set [admin] password in bty.toml or BTY_ADMIN_PASSWORD, or change it after signing in.</p>",
        );
    }
    if let Some(m) = message {
        body.push_str(&format!("<p role=\"alert\">{}</p>", escape(m)));
    }
    body.push_str(
        "<form method=\"post\" action=\"/ui/login\"><label for=\"password\">Password</label> \
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus> \
         <button type=\"submit\">Sign in</button></form>",
    );
    page("Sign in", &body)
}

pub async fn login_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    // Already signed in: straight to the dashboard.
    if session_of(&s, &headers).await.is_some() {
        return Redirect::to("/ui/dashboard").into_response();
    }
    login_form(&s, None).into_response()
}

fn with_cookie(mut res: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn admin_hash(s: &AppState) -> Option<String> {
    s.db.read(|c| settings::get(c, settings::ADMIN_PASSWORD_HASH))
        .await
        .ok()
        .flatten()
}

pub async fn login(
    State(s): State<AppState>,
    Peer(addr): Peer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ip = client_ip(&s, addr, &headers);
    let Some(password) = form.get("password") else {
        return crate::error::ApiError::invalid("password", "field required").into_response();
    };
    if let Some(wait) = s.limiter.blocked(ip) {
        let mut res = (
            StatusCode::TOO_MANY_REQUESTS,
            login_form(
                &s,
                Some(&format!("Too many failed attempts; try again in {wait} s.")),
            ),
        )
            .into_response();
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
        return login_form(&s, Some("Invalid password.")).into_response();
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
async fn password_check(
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

pub async fn logout(State(s): State<AppState>, Peer(addr): Peer, headers: HeaderMap) -> Response {
    let ip = client_ip(&s, addr, &headers).to_string();
    if let Some(id) = signed_session_id(&s.keys, &headers) {
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

pub async fn dashboard(
    State(s): State<AppState>,
    Extension(session): Extension<Session>,
) -> Html<String> {
    let csrf = s.keys.csrf(&session.id);
    page(
        "Dashboard",
        &format!(
            "<h1>bty-web</h1><p>Signed in. The JSON API answers under /machines, /catalog/entries and /events.</p>\
             <form method=\"post\" action=\"/ui/account/password\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"current\">Current password</label> <input id=\"current\" name=\"current\" type=\"password\" required> \
             <label for=\"new\">New password</label> <input id=\"new\" name=\"new\" type=\"password\" minlength=\"8\" required> \
             <button type=\"submit\">Change password</button></form>\
             <form method=\"post\" action=\"/ui/logout\"><button type=\"submit\">Sign out</button></form>"
        ),
    )
}

pub async fn change_password(
    State(s): State<AppState>,
    Extension(session): Extension<Session>,
    Peer(addr): Peer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let bad = |status: StatusCode, msg: &str| (status, msg.to_string()).into_response();
    if !form
        .get("csrf")
        .is_some_and(|t| s.keys.csrf_ok(&session.id, t))
    {
        return bad(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
    }
    let (Some(current), Some(new)) = (form.get("current"), form.get("new")) else {
        return bad(StatusCode::UNPROCESSABLE_ENTITY, "give current and new");
    };
    if new.chars().count() < 8 {
        return bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the new password needs at least 8 characters",
        );
    }
    let hash = admin_hash(&s).await;
    if !password_check(&s.keys, current, hash, s.cfg.admin_password.clone()).await {
        return bad(StatusCode::FORBIDDEN, "the current password is wrong");
    }
    let new = new.clone();
    let Ok(Ok(new_hash)) = tokio::task::spawn_blocking(move || auth::hash_password(&new)).await
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(fresh) = Keys::new_session_id() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let ip = client_ip(&s, addr, &headers).to_string();
    let sid = fresh.clone();
    let stored =
        s.db.write(move |c| {
            settings::set(c, settings::ADMIN_PASSWORD_HASH, &new_hash)?;
            // Every other browser is signed out; this one gets a new session.
            sessions::delete_all(c)?;
            sessions::create(c, &sid, Some(&ip))?;
            events::record(
                c,
                &NewEvent {
                    kind: "auth.password.changed",
                    subject_kind: Some("auth"),
                    subject_id: Some("operator".into()),
                    actor: Some("operator"),
                    source_ip: Some(ip.clone()),
                    summary: "admin password changed; all other sessions revoked".into(),
                    details: None,
                },
            )
        })
        .await;
    if stored.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    with_cookie(
        Redirect::to("/ui/dashboard").into_response(),
        &auth::set_cookie(Some(&s.keys.sign(&fresh)), s.secure_cookies()),
    )
}
