//! The account page: change the admin password (current, new, new again), which signs out
//! every other browser; sign out.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::Operator;
use super::login::{Verdict, password_check, with_cookie};
use super::{FieldErrors, base, render_status};
use crate::auth::{self, Keys};
use crate::db::events::{self, NewEvent};
use crate::db::{sessions, settings};
use crate::guard::ClientIp;
use crate::guard::Session;
use crate::state::AppState;

const MIN_PASSWORD: usize = 8;

async fn page(
    s: &AppState,
    session: &Session,
    status: StatusCode,
    errors: &FieldErrors,
    notice: Option<&str>,
) -> Response {
    let ctx = minijinja::context! {
        errors => errors,
        notice => notice,
        min_password => MIN_PASSWORD,
        ..base(s, session, "account").await
    };
    render_status(status, "account.html", ctx)
}

pub async fn show(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q
        .contains_key("changed")
        .then_some("Password changed. Every other browser has been signed out.");
    page(&s, &session, StatusCode::OK, &FieldErrors::new(), notice).await
}

/// The form's checks, before the (slow) password hash is looked at.
fn check_new(new: &str, confirm: Option<&str>) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if new.chars().count() < MIN_PASSWORD {
        errors.insert(
            "new".into(),
            format!("The new password needs at least {MIN_PASSWORD} characters."),
        );
    }
    // The API-style form (no confirm field) is still accepted from scripts.
    if let Some(c) = confirm
        && c != new
    {
        errors.insert("confirm".into(), "The two new passwords differ.".into());
    }
    errors
}

pub async fn change_password(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    ClientIp(addr): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let current = form.get("current").map(String::as_str).unwrap_or("");
    let new = form.get("new").map(String::as_str).unwrap_or("");
    let mut errors = check_new(new, form.get("confirm").map(String::as_str));
    if current.is_empty() {
        errors.insert("current".into(), "Give the current password.".into());
    }
    if !errors.is_empty() {
        return page(
            &s,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            &errors,
            None,
        )
        .await;
    }
    match password_check(&s, addr, current).await {
        Verdict::Right => {}
        Verdict::Wrong => {
            errors.insert("current".into(), "The current password is wrong.".into());
            return page(&s, &session, StatusCode::FORBIDDEN, &errors, None).await;
        }
        Verdict::Limited(wait) => {
            errors.insert(
                "current".into(),
                format!("Too many attempts; try again in {wait} s."),
            );
            return page(&s, &session, StatusCode::TOO_MANY_REQUESTS, &errors, None).await;
        }
    }
    // Hashing costs what a verification does: it takes a slot too.
    let Ok(slot) = s.limiter.verify.clone().acquire_owned().await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let new = new.to_string();
    let Ok(Ok(new_hash)) = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        auth::hash_password(&new)
    })
    .await
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(fresh) = Keys::new_session_id() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
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
        Redirect::to("/ui/account?changed=1").into_response(),
        &auth::set_cookie(Some(&s.keys.sign(&fresh)), s.secure_cookies()),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn new_password_checks() {
        assert!(super::check_new("long-enough", Some("long-enough")).is_empty());
        assert!(super::check_new("long-enough", None).is_empty());
        assert!(super::check_new("short", None).contains_key("new"));
        assert!(super::check_new("long-enough", Some("other")).contains_key("confirm"));
    }
}
