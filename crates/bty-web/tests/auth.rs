//! Serving with embedded defaults, sessions, login limits, CSRF and cross-site refusals,
//! security headers — against the real binary on 127.0.0.1.

mod common;

use common::{Server, file_mode};

const PROTECTED_API: &[(&str, &str)] = &[
    ("GET", "/machines"),
    ("GET", "/machines/aa:bb:cc:dd:ee:ff"),
    ("PUT", "/machines/aa:bb:cc:dd:ee:ff"),
    ("DELETE", "/machines/aa:bb:cc:dd:ee:ff"),
    ("GET", "/machines/aa:bb:cc:dd:ee:ff/lshw.json"),
    ("GET", "/machines/aa:bb:cc:dd:ee:ff/disks.json"),
    ("GET", "/catalog/entries"),
    ("POST", "/catalog/entries"),
    ("DELETE", "/catalog/entries?src=x"),
    ("POST", "/catalog/import?source=x"),
    ("GET", "/events"),
    ("POST", "/events/1/ack"),
];

fn refused_everywhere(c: &mut common::Client, why: &str) {
    for (method, path) in PROTECTED_API {
        let r = c.request(
            method,
            path,
            &[],
            Some(("application/json", b"{}".to_vec())),
        );
        assert_eq!(r.status, 401, "{why}: {method} {path}: {}", r.body);
        assert_eq!(r.json()["detail"], "login required", "{method} {path}");
    }
    let r = c.get("/ui/dashboard");
    assert_eq!(r.status, 303, "{why}: dashboard");
    assert_eq!(r.header("location"), Some("/ui/login"));
    let r = c.form(
        "/ui/account/password",
        &[("current", "x"), ("new", "yyyyyyyy")],
    );
    assert_eq!(r.status, 303, "{why}: password change");
}

#[test]
fn starts_with_embedded_defaults() {
    let s = Server::start();
    let mut c = s.client();
    let r = c.get("/healthz");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    assert_eq!(
        c.get("/version").json()["version"],
        env!("CARGO_PKG_VERSION")
    );
    let r = c.get("/");
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    let r = c.get("/ui/login");
    assert_eq!(r.status, 200);
    // Strangers learn nothing about the password from the login page.
    assert!(
        !r.body.contains("default password") && !r.body.contains("bty-lab"),
        "{}",
        r.body
    );
    assert_eq!(
        r.body.matches("<script").count(),
        r.body.matches("<script src=\"/static/").count(),
        "only our own script files, no inline script"
    );
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(r.header(h), Some(v), "{h}");
    }
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(c.get("/docs").status, 404, "no open API docs");
    // State folder: database and a private session key.
    assert!(s.state_dir().join("state.db").is_file());
    assert!(s.state_dir().join("boot").is_dir());
    assert_eq!(file_mode(&s.state_dir().join("session-secret")), 0o600);
}

#[test]
fn sessions_login_logout_and_revocation() {
    let s = Server::start();
    let mut anon = s.client();
    refused_everywhere(&mut anon, "no cookie");

    // Wrong password: the form again, with a message, and no cookie.
    let r = anon.login("wrong");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Invalid password."));
    assert!(anon.cookie.is_none());
    assert_eq!(anon.form("/ui/login", &[]).status, 422);

    let mut c = s.signed_in("bty-lab");
    let cookie = c.cookie.clone().unwrap();
    let set = c.get("/machines");
    assert_eq!(set.status, 200);
    // Sliding expiry: each answer re-issues the cookie for 7 days, HttpOnly, SameSite=Strict.
    let sc = set.header("set-cookie").unwrap();
    assert!(
        sc.contains("Max-Age=604800") && sc.contains("HttpOnly") && sc.contains("SameSite=Strict")
    );
    assert_eq!(
        c.get("/ui/login").status,
        303,
        "signed in: login page redirects"
    );

    // A forged cookie (another session id with the old signature) is refused.
    let (id, sig) = cookie
        .trim_start_matches("bty-token=")
        .rsplit_once('.')
        .unwrap();
    let mut forged = s.client();
    forged.cookie = Some(format!("bty-token={}x.{sig}", id));
    refused_everywhere(&mut forged, "forged cookie");
    let mut garbage = s.client();
    garbage.cookie = Some("bty-token=garbage".into());
    refused_everywhere(&mut garbage, "garbage cookie");

    // Logout revokes the session server-side: replaying the cookie fails.
    let r = c.logout();
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    let mut replay = s.client();
    replay.cookie = Some(cookie);
    refused_everywhere(&mut replay, "cookie replayed after logout");

    // Events: failed and successful logins and the logout are audited.
    let mut admin = s.signed_in("bty-lab");
    let kinds = admin.event_kinds("subject_kind=auth");
    assert_eq!(
        kinds,
        [
            "auth.login.succeeded",
            "auth.logout",
            "auth.login.succeeded",
            "auth.login.failed"
        ]
    );
}

#[test]
fn an_expired_session_is_refused() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    assert_eq!(c.get("/machines").status, 200);
    // Age the session past its expiry, as seven idle days would.
    let db = rusqlite::Connection::open(s.state_dir().join("state.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute("UPDATE sessions SET expires_at = 1", [])
        .unwrap();
    refused_everywhere(&mut c, "expired session");
}

#[test]
fn failed_logins_are_rate_limited_per_address() {
    let s = Server::start();
    let mut c = s.client();
    for _ in 0..5 {
        assert_eq!(c.login("nope").status, 200);
    }
    let r = c.login("nope");
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    // Even the right password waits out the window.
    assert_eq!(c.login("bty-lab").status, 429);
}

#[test]
fn configured_password_and_password_change() {
    let s = Server::start_with(&[("BTY_ADMIN_PASSWORD", "first-pass")]);
    let mut anon = s.client();
    assert!(!anon.get("/ui/login").body.contains("default password"));
    assert_eq!(
        anon.login("bty-lab").status,
        200,
        "the default no longer works"
    );
    let mut c = s.signed_in("first-pass");
    let mut other = s.signed_in("first-pass");

    // The password form needs the session's CSRF token.
    let dash = c.get("/ui/dashboard").body;
    let token = dash
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let r = c.form(
        "/ui/account/password",
        &[("current", "first-pass"), ("new", "second-pass")],
    );
    assert_eq!(r.status, 403, "no CSRF token");
    let r = c.form(
        "/ui/account/password",
        &[
            ("csrf", "AAAA"),
            ("current", "first-pass"),
            ("new", "second-pass"),
        ],
    );
    assert_eq!(r.status, 403, "wrong CSRF token");
    let r = c.form(
        "/ui/account/password",
        &[
            ("csrf", &token),
            ("current", "wrong"),
            ("new", "second-pass"),
        ],
    );
    assert_eq!(r.status, 403, "wrong current password");
    let r = c.form(
        "/ui/account/password",
        &[
            ("csrf", &token),
            ("current", "first-pass"),
            ("new", "short"),
        ],
    );
    assert_eq!(r.status, 422);
    let r = c.form(
        "/ui/account/password",
        &[
            ("csrf", &token),
            ("current", "first-pass"),
            ("new", "second-pass"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // This browser keeps working (a fresh session); every other one is signed out.
    assert_eq!(c.get("/machines").status, 200);
    assert_eq!(other.get("/machines").status, 401);
    // The stored hash wins over the configured password.
    let mut fresh = s.client();
    assert_eq!(fresh.login("first-pass").status, 200);
    assert_eq!(fresh.login("second-pass").status, 303);
    let hash: String = rusqlite::Connection::open(s.state_dir().join("state.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM settings WHERE key = 'admin.password_hash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[test]
fn cross_site_state_changes_are_refused() {
    let s = Server::start();
    let mut anon = s.client();
    let host = s.base.trim_start_matches("http://").to_string();
    let r = anon.form_with(
        "/ui/login",
        &[("password", "bty-lab")],
        &[("origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403, "cross-site login");
    assert!(anon.cookie.is_none());
    let same = format!("http://{host}");
    let r = anon.form_with(
        "/ui/login",
        &[("password", "bty-lab")],
        &[("origin", &same)],
    );
    assert_eq!(r.status, 303, "same-origin login");
    let mut c = anon;
    let put = |c: &mut common::Client, headers: &[(&str, &str)]| {
        c.request(
            "PUT",
            "/machines/aa:bb:cc:dd:ee:01",
            headers,
            Some(("application/json", b"{}".to_vec())),
        )
        .status
    };
    assert_eq!(put(&mut c, &[("sec-fetch-site", "cross-site")]), 403);
    assert_eq!(put(&mut c, &[("sec-fetch-site", "same-site")]), 403);
    assert_eq!(put(&mut c, &[("origin", "null")]), 403);
    assert_eq!(
        c.get("/machines/aa:bb:cc:dd:ee:01").status,
        404,
        "nothing written"
    );
    assert_eq!(put(&mut c, &[("sec-fetch-site", "same-origin")]), 200);
    assert_eq!(
        c.form_with("/ui/logout", &[], &[("sec-fetch-site", "cross-site")])
            .status,
        403
    );
    // Reads are never refused for their origin; no CORS headers are sent.
    let r = c.request(
        "GET",
        "/machines",
        &[("origin", "http://evil.example")],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn forwarded_addresses_only_from_trusted_proxies() {
    let xff = [("x-forwarded-for", "198.51.100.7, 10.0.0.9")];
    // Untrusted: the header is ignored.
    let s = Server::start();
    let mut c = s.client();
    c.request("GET", "/pxe/52:54:00:00:09:01", &xff, None);
    let mut admin = s.signed_in("bty-lab");
    let m = admin.get("/machines/52:54:00:00:09:01").json();
    assert_eq!(m["last_seen_ip"], "127.0.0.1");
    // Behind a trusted proxy (us, 127.0.0.1, and 10.0.0.9): the right-most untrusted hop.
    let s = Server::start_with(&[("BTY_SERVER_TRUSTED_PROXY", "127.0.0.1, 10.0.0.9")]);
    let mut c = s.client();
    c.request("GET", "/pxe/52:54:00:00:09:02", &xff, None);
    let mut admin = s.signed_in("bty-lab");
    let m = admin.get("/machines/52:54:00:00:09:02").json();
    assert_eq!(m["last_seen_ip"], "198.51.100.7");
    let e = admin.get("/events?kind=machine.discovered").json();
    assert_eq!(e["events"][0]["source_ip"], "198.51.100.7");
}
