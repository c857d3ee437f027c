//! The browser UI's guards and forms over plain HTTP (the browser scenarios are in
//! `browser.rs`): every UI route sends a request without a session to the login page, every
//! form post without the session's CSRF token is refused and changes nothing, forms re-render
//! with what was typed and a message by the field, and the pages name no external origin.

mod common;

use common::Server;

const MAC: &str = "52:54:00:00:00:42";

const PAGES: &[&str] = &[
    "/ui/dashboard",
    "/ui/machines",
    "/ui/machines?q=x&label=y",
    "/ui/machines/52:54:00:00:00:42",
    "/ui/images",
    "/ui/images/delete?src=http://x/y.raw",
    "/ui/cache",
    "/ui/events",
    "/ui/events?failed=1&q=x",
    "/ui/netboot",
    "/ui/settings",
    "/ui/account",
    "/ui/live/machines",
    "/ui/live/dashboard",
    "/ui/live/machines/52:54:00:00:00:42",
];

/// Every form post, with a body that would be accepted with the right token.
fn posts() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/ui/machines/52:54:00:00:00:42",
            vec![("boot_mode", "ipxe-exit"), ("hostname", "n1")],
        ),
        ("/ui/machines/52:54:00:00:00:42/delete", vec![]),
        (
            "/ui/machines/bulk",
            vec![("boot_mode", "ipxe-exit"), ("count", "0")],
        ),
        (
            "/ui/images/add",
            vec![("image_url", "http://127.0.0.1:9/disk.raw")],
        ),
        (
            "/ui/images/import",
            vec![("source", "http://127.0.0.1:9/c.toml")],
        ),
        (
            "/ui/images/delete",
            vec![("src", "http://127.0.0.1:9/disk.raw")],
        ),
        ("/ui/events/ack", vec![("ids", "1")]),
        ("/ui/cache/delete", vec![("key", "src-0123456789abcdef-1")]),
        (
            "/ui/account/password",
            vec![
                ("current", "bty-lab"),
                ("new", "another-pass"),
                ("confirm", "another-pass"),
            ],
        ),
    ]
}

fn multipart(parts: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let boundary = "bty-test-boundary";
    let mut body = String::new();
    for (name, filename, value) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        ));
        if let Some(f) = filename {
            body.push_str(&format!(
                "; filename=\"{f}\"\r\nContent-Type: application/octet-stream"
            ));
        }
        body.push_str(&format!("\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[test]
fn pages_need_a_session() {
    let s = Server::start();
    let mut anon = s.client();
    for p in PAGES {
        let r = anon.get(p);
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/ui/login")),
            "GET {p}"
        );
    }
    for (p, fields) in posts() {
        let r = anon.form(p, &fields);
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/ui/login")),
            "POST {p}"
        );
    }
    let mut c = s.signed_in("bty-lab");
    for p in PAGES.iter().filter(|p| !p.starts_with("/ui/live/")) {
        let r = c.get(p);
        assert!(
            r.status == 200 || (p.starts_with("/ui/images/delete") && r.status == 404),
            "GET {p}: {} {}",
            r.status,
            r.body
        );
        // Everything the page loads or links to is on this server (or a data: URL).
        for attr in ["src=\"", "href=\""] {
            for (i, _) in r.body.match_indices(attr) {
                let v = &r.body[i + attr.len()..];
                let v = v[..v.find('"').unwrap_or(v.len())].replace("&#x2f;", "/");
                assert!(
                    v.starts_with('/') && !v.starts_with("//")
                        || v.starts_with('#')
                        || v.starts_with("data:")
                        || v.starts_with(s.base.as_str()),
                    "{p} refers to {v}"
                );
            }
        }
    }
}

#[test]
fn form_posts_need_the_csrf_token() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let token = c.csrf();
    for (p, fields) in posts() {
        let r = c.form(p, &fields);
        assert_eq!(r.status, 403, "POST {p} without a token: {}", r.body);
        let mut wrong = fields.clone();
        wrong.push(("csrf", "AAAAAAAA"));
        let r = c.form(p, &wrong);
        assert_eq!(r.status, 403, "POST {p} with a wrong token");
    }
    // Uploads: the token must be the first part.
    for p in ["/ui/images/upload", "/ui/netboot/upload"] {
        let (ct, body) = multipart(&[
            ("name", None, "bty-netboot-x86_64.vmlinuz"),
            ("file", Some("f"), "x"),
        ]);
        let r = c.request("POST", p, &[], Some((&ct, body)));
        assert_eq!(r.status, 403, "POST {p} without a token");
        let (ct, body) = multipart(&[("file", Some("f"), "x"), ("csrf", None, &token)]);
        let r = c.request("POST", p, &[], Some((&ct, body)));
        assert_eq!(r.status, 403, "POST {p} with the token after the file");
    }
    // Nothing changed: no machine, the session and the password still work.
    assert_eq!(c.get(&format!("/machines/{MAC}")).status, 404);
    assert!(
        !s.state_dir()
            .join("boot/bty-netboot-x86_64.vmlinuz")
            .exists()
    );
    assert_eq!(c.get("/machines").status, 200);
    // With the token, the same posts go through.
    let r = c.form(
        &format!("/ui/machines/{MAC}"),
        &[
            ("csrf", &token),
            ("boot_mode", "ipxe-exit"),
            ("hostname", "n1"),
        ],
    );
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some(format!("/ui/machines/{MAC}?saved=1").as_str()))
    );
    assert_eq!(c.get(&format!("/machines/{MAC}")).json()["hostname"], "n1");
    let (ct, body) = multipart(&[
        ("csrf", None, &token),
        ("name", None, "bty-netboot-x86_64.vmlinuz"),
        ("file", Some("vmlinuz"), "kernel bytes"),
    ]);
    let r = c.request("POST", "/ui/netboot/upload", &[], Some((&ct, body)));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        std::fs::read_to_string(s.state_dir().join("boot/bty-netboot-x86_64.vmlinuz")).unwrap(),
        "kernel bytes"
    );
    let page = c.get("/ui/netboot").body;
    assert!(page.contains("present"), "{page}");
    let r = c.form("/ui/logout", &[("csrf", &token)]);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    assert_eq!(c.get("/ui/dashboard").status, 303);
}

#[test]
fn scripted_logout_needs_no_token_but_a_wrong_one_is_refused() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let mut replay = s.client();
    replay.cookie = c.cookie.clone();
    // A wrong token is still refused, and the session stays.
    let r = c.form("/ui/logout", &[("csrf", "AAAAAAAA")]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(c.get("/machines").status, 200);
    // Cross-site: refused by the origin guard, token or not.
    let r = c.form_with("/ui/logout", &[], &[("sec-fetch-site", "cross-site")]);
    assert_eq!(r.status, 403);
    assert_eq!(c.get("/machines").status, 200);
    // With the cookie and no token, as a script signs out of upstream: 303, session revoked.
    let r = c.form("/ui/logout", &[]);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    assert_eq!(
        replay.get("/machines").status,
        401,
        "the cookie was revoked"
    );
    // An empty body without a form content type works too.
    let mut d = s.signed_in("bty-lab");
    let mut d2 = s.client();
    d2.cookie = d.cookie.clone();
    let r = d.request("POST", "/ui/logout", &[], None);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(d2.get("/machines").status, 401);
}

#[test]
fn forms_keep_what_was_typed() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let token = c.csrf();
    // A flash mode without a disk, and a bad host name: 422, both messages, values kept.
    let r = c.form(
        &format!("/ui/machines/{MAC}"),
        &[
            ("csrf", &token),
            ("boot_mode", "bty-flash-always"),
            ("hostname", "bad_host!"),
            ("labels", "rack-9, typed"),
            ("sanboot_drive", "0x81"),
        ],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"hostname-error\""), "{}", r.body);
    assert!(r.body.contains("id=\"target_disk_serial-error\""));
    assert!(r.body.contains("value=\"rack-9, typed\""));
    assert!(r.body.contains("value=\"bad_host!\""));
    assert!(r.body.contains("value=\"0x81\""));
    assert!(
        r.body
            .contains("<option value=\"bty-flash-always\" selected>")
    );
    assert_eq!(
        c.get(&format!("/machines/{MAC}")).status,
        404,
        "nothing stored"
    );
    // Catalog: a sha256 that is not one.
    let r = c.form(
        "/ui/images/add",
        &[
            ("csrf", &token),
            ("image_url", "http://127.0.0.1:9/disk.raw"),
            ("sha256", "nope"),
            ("name", "typed-name"),
        ],
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"sha256-error\""), "{}", r.body);
    assert!(r.body.contains("value=\"typed-name\""));
    // Password: new ones that differ.
    let r = c.form(
        "/ui/account/password",
        &[
            ("csrf", &token),
            ("current", "bty-lab"),
            ("new", "abcdefgh"),
            ("confirm", "abcdefgX"),
        ],
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"confirm-error\""));
    // Add by MAC: a bad MAC is explained, a good one opens the (new) machine's form.
    let r = c.get("/ui/machines?add=nonsense");
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"add-error\"") && r.body.contains("value=\"nonsense\""));
    let r = c.get("/ui/machines?add=52-54-00-00-00-43");
    assert_eq!(r.header("location"), Some("/ui/machines/52:54:00:00:00:43"));
    assert!(
        c.get("/ui/machines/52:54:00:00:00:43")
            .body
            .contains("New machine")
    );
    assert_eq!(c.get("/ui/machines/not-a-mac").status, 404);
}

#[test]
fn static_files() {
    let s = Server::start();
    let mut c = s.client();
    for (p, ct) in [
        ("/static/bty.css", "text/css"),
        ("/static/bty.js", "text/javascript"),
        ("/static/vendor/htmx-2.0.11.min.js", "text/javascript"),
        (
            "/static/vendor/htmx-ext-sse-2.2.4.min.js",
            "text/javascript",
        ),
    ] {
        let r = c.get(p);
        assert_eq!(r.status, 200, "{p}");
        assert!(
            r.header("content-type").unwrap_or("").starts_with(ct),
            "{p}"
        );
        assert!(!r.body.is_empty());
    }
    assert_eq!(c.get("/static/../Cargo.toml").status, 404);
    assert_eq!(c.get("/static/nothing.js").status, 404);
}

#[test]
fn catalog_upload_import_and_confirmed_delete() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let token = c.csrf();
    let toml = format!(
        "version = 1\n[[images]]\nname = \"alpha\"\nsrc = \"https://h.example/alpha.img.zst\"\nsha256 = \"{}\"\nsize_bytes = 1048576\n",
        "ab".repeat(32)
    );
    let (ct, body) = multipart(&[
        ("csrf", None, &token),
        ("file", Some("catalog.toml"), &toml),
    ]);
    let r = c.request("POST", "/ui/images/upload", &[], Some((&ct, body)));
    assert_eq!(r.status, 303, "{}", r.body);
    let page = c.get(r.header("location").unwrap()).body;
    assert!(
        page.contains("Imported 1 entries from upload:catalog.toml"),
        "{page}"
    );
    assert!(page.contains("alpha") && page.contains("1.0 MiB") && page.contains(&"ab".repeat(6)));
    // A broken file is explained next to the file field.
    let (ct, body) = multipart(&[
        ("csrf", None, &token),
        (
            "file",
            Some("bad.toml"),
            "version = 1\n[[images]]\nname = 3\n",
        ),
    ]);
    let r = c.request("POST", "/ui/images/upload", &[], Some((&ct, body)));
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"file-error\""), "{}", r.body);
    // Bind a machine to it: the delete page names it before anything is deleted.
    let entry = &c.get("/catalog/entries").json()[0];
    let image_ref = entry["bty_image_ref"].as_str().unwrap().to_string();
    let r = c.form(
        &format!("/ui/machines/{MAC}"),
        &[
            ("csrf", &token),
            ("boot_mode", "bty-flash-once"),
            ("bty_image_ref", &image_ref),
            ("target_disk_serial", "S1"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let src = "https://h.example/alpha.img.zst";
    let confirm = c.get(&format!("/ui/images/delete?src={}", common::urlencode(src)));
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("1 machine is bound to this image"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains(MAC));
    assert_eq!(
        c.get("/catalog/entries").json().as_array().unwrap().len(),
        1,
        "not yet deleted"
    );
    let r = c.form("/ui/images/delete", &[("csrf", &token), ("src", src)]);
    assert_eq!(r.status, 303);
    assert_eq!(
        c.get("/catalog/entries").json().as_array().unwrap().len(),
        0
    );
    let deleted = c.get("/events?kind=catalog.entry.deleted").json();
    assert_eq!(deleted["events"][0]["details"]["machines_bound"][0], MAC);
}

#[test]
fn events_page_search_and_paging() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let mut anon = s.client();
    // 30 first contacts: 60 events (discovered + offered), plus the sign-in.
    for i in 0..30 {
        assert_eq!(
            anon.get(&format!("/pxe/52:54:00:00:01:{i:02x}")).status,
            200
        );
    }
    let first = c.get("/ui/events").body;
    let older = first
        .split("before_id=")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("an Older link")
        .to_string();
    let rows = |page: &str| {
        page.matches("data-label=\"When (UTC)\" class=\"nowrap\">2")
            .count()
    };
    assert_eq!(rows(&first), 50);
    let second = c.get(&format!("/ui/events?before_id={older}")).body;
    assert_eq!(rows(&second), 11, "61 events in all");
    assert!(
        !second.contains("before_id="),
        "no Older link on the last page"
    );
    assert!(second.contains("Newest"));
    // Search: one machine's events only.
    let one = c.get("/ui/events?q=52:54:00:00:01:1d").body;
    assert_eq!(rows(&one), 2, "{one}");
}

#[test]
fn settings_show_sources_and_mask_secrets() {
    let s = Server::start_with(&[("BTY_ADMIN_PASSWORD", "very-secret-pass")]);
    let mut c = s.signed_in("very-secret-pass");
    let page = c.get("/ui/settings").body;
    assert!(!page.contains("very-secret-pass"), "the password is masked");
    assert!(page.contains("********"));
    assert!(page.contains("env BTY_ADMIN_PASSWORD"), "{page}");
    assert!(page.contains("server.port") && page.contains("default"));
    // The default-password banner is off with a configured password.
    assert!(
        !c.get("/ui/dashboard")
            .body
            .contains("default admin password is in use")
    );
}

#[test]
fn bulk_binding_keeps_each_disk_and_checks_the_count() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let token = c.csrf();
    let put = |c: &mut common::Client, mac: &str, body: serde_json::Value| {
        let r = c.json("PUT", &format!("/machines/{mac}"), &body);
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let (a, b, other) = (
        "52:54:00:00:03:01",
        "52:54:00:00:03:02",
        "52:54:00:00:03:03",
    );
    put(
        &mut c,
        a,
        serde_json::json!({"labels": ["rack-1"], "target_disk_serial": "SER-A", "hostname": "a1"}),
    );
    put(&mut c, b, serde_json::json!({"labels": ["rack-1"]}));
    put(
        &mut c,
        other,
        serde_json::json!({"labels": ["rack-2"], "target_disk_serial": "SER-C"}),
    );
    let r = c.json(
        "POST",
        "/catalog/entries",
        &serde_json::json!({"image_url": "http://127.0.0.1:9/fleet.raw.zst"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let image = r.json()["bty_image_ref"].as_str().unwrap().to_string();
    let page = c.get("/ui/machines?label=rack-1").body;
    assert!(page.contains("name=\"count\" value=\"2\""), "{page}");
    assert!(page.contains("Change all 2 machines shown (filtered)"));

    // A count that no longer matches: nothing changes.
    let form = |count: &str| {
        vec![
            ("csrf", token.clone()),
            ("label", "rack-1".to_string()),
            ("q", String::new()),
            ("boot_mode", "bty-flash-once".to_string()),
            ("bty_image_ref", image.clone()),
            ("count", count.to_string()),
        ]
    };
    let send = |c: &mut common::Client, f: Vec<(&str, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.form("/ui/machines/bulk", &f)
    };
    let r = send(&mut c, form("3"));
    assert_eq!(r.status, 303);
    let shown = c.get(r.header("location").unwrap()).body;
    assert!(
        shown.contains("Nothing changed: the filter now matches 2 machines, not the 3"),
        "{shown}"
    );
    assert_eq!(
        c.get(&format!("/machines/{a}")).json()["boot_mode"],
        "ipxe-exit"
    );

    // The right count: a is bound (keeping its disk and host name), b has no disk and is named.
    let r = send(&mut c, form("2"));
    let shown = c.get(r.header("location").unwrap()).body;
    assert!(
        shown.contains("Set 1 machines to bty-flash-once."),
        "{shown}"
    );
    assert!(shown.contains(&format!(
        "Skipped 1: {b} (required for boot_mode bty-flash-once"
    )));
    let ma = c.get(&format!("/machines/{a}")).json();
    assert_eq!(ma["boot_mode"], "bty-flash-once");
    assert_eq!(ma["bty_image_ref"], image.as_str());
    assert_eq!(ma["target_disk_serial"], "SER-A");
    assert_eq!(ma["hostname"], "a1");
    assert_eq!(ma["labels"], serde_json::json!(["rack-1"]));
    assert_eq!(
        c.get(&format!("/machines/{b}")).json()["boot_mode"],
        "ipxe-exit"
    );
    let mo = c.get(&format!("/machines/{other}")).json();
    assert_eq!(
        (mo["boot_mode"].as_str(), mo["bty_image_ref"].as_str()),
        (Some("ipxe-exit"), None)
    );
}
