//! Adding an `oras://` entry resolves it through a real registry (Debian's docker-registry on
//! 127.0.0.1) and freezes the disk layer's digest in the entry.

mod common;

#[path = "../../bty/tests/common/registry.rs"]
#[allow(dead_code)]
mod registry;

#[path = "common/expiring_tokens.rs"]
mod expiring_tokens;

use common::Server;
use common::origin::{fetch, header, pattern};
use registry::{Registry, sha256_digest};
use serde_json::json;

#[test]
fn oras_entries_get_the_layer_digest() {
    let reg = Registry::start();
    let disk = vec![0x42u8; 300_000];
    reg.push_artifact(
        "lab/debian",
        "13",
        &[
            (
                "application/vnd.bty.disk.raw.zst",
                "debian-13.img.zst",
                &disk,
            ),
            ("text/plain", "README", b"notes"),
        ],
    );
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let src = format!(
        "oras://{}/lab/debian:13",
        reg.base().trim_start_matches("http://")
    );
    let r = c.json("POST", "/catalog/entries", &json!({ "image_url": src }));
    assert_eq!(r.status, 201, "{}", r.body);
    let e = r.json();
    let want = sha256_digest(&disk);
    assert_eq!(e["disk_image_sha"], want.trim_start_matches("sha256:"));
    assert_eq!(e["size_bytes"], 300_000);
    // The blob proxy: whole, ranged and HEAD, by ref or by digest; only for oras entries.
    let image_ref = e["bty_image_ref"].as_str().unwrap().to_string();
    let digest = e["disk_image_sha"].as_str().unwrap().to_string();
    let mut anon = s.client();
    let r = anon.get(&format!("/images/{image_ref}/debian-13.img.zst"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_bytes(), &disk[..]);
    assert_eq!(
        r.header("etag"),
        Some(format!("\"sha256:{digest}\"").as_str())
    );
    let r = anon.request(
        "GET",
        &format!("/images/{digest}"),
        &[("range", "bytes=1000-1999")],
        None,
    );
    assert_eq!((r.status, r.body.len()), (206, 1000));
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    let r = anon.request("HEAD", &format!("/images/{image_ref}"), &[], None);
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("300000"))
    );
    assert_eq!(anon.get(&format!("/images/{}", "0".repeat(64))).status, 404);
    assert_eq!(anon.get("/images/xyz").status, 404);

    // A missing tag: 400, audited.
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({ "image_url": format!("oras://{}/lab/debian:nope", reg.base().trim_start_matches("http://")) }),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("oras resolve failed"));
    // A given sha256 that disagrees with the registry's layer digest is refused.
    reg.push_artifact(
        "lab/debian",
        "13-copy",
        &[(
            "application/vnd.bty.disk.raw.zst",
            "debian-13.img.zst",
            &disk,
        )],
    );
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({ "image_url": format!("oras://{}/lab/debian:13-copy", reg.base().trim_start_matches("http://")), "sha256": "00".repeat(32) }),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("differs"), "{}", r.body);
    assert_eq!(
        c.get("/catalog/entries").json().as_array().unwrap().len(),
        1
    );

    // With the cache off, `/images` streams from the registry on every request.
    let off = Server::start_with(&[("BTY_CACHE_ENABLED", "false")]);
    let mut c = off.signed_in("bty-lab");
    let r = c.json("POST", "/catalog/entries", &json!({ "image_url": src }));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c.request(
        "GET",
        &format!("/images/{digest}"),
        &[("range", "bytes=1000-1999")],
        None,
    );
    assert_eq!((r.status, r.body.len()), (206, 1000));
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    assert_eq!(r.header("x-bty-cache"), None);
    assert_eq!(c.get(&format!("/images/{}", "0".repeat(64))).status, 404);
    assert!(c.get("/cache").json().as_array().unwrap().is_empty());
}

/// A private `oras://` entry through the image cache: bty-web pulls with the same credential
/// sources the client uses (here `BTY_REGISTRY_USER`/`_PASSWORD`, through a registry front end
/// that wants a bearer token), fills once, serves hits, and never shows the credentials.
#[test]
fn private_oras_entries_fill_the_cache_once() {
    let reg = Registry::start();
    let disk = pattern(2_000_000, 1);
    reg.push_artifact(
        "lab/private",
        "1",
        &[("application/vnd.bty.disk.raw.zst", "private.img.zst", &disk)],
    );
    let front = registry::TokenProxy::start(reg.port, Some(("alice", "s3cret-pw")));
    let s = Server::start_with(&[
        ("BTY_REGISTRY_USER", "alice"),
        ("BTY_REGISTRY_PASSWORD", "s3cret-pw"),
    ]);
    let mut c = s.signed_in("bty-lab");
    let src = format!("oras://127.0.0.1:{}/lab/private:1", front.port);
    let r = c.json("POST", "/catalog/entries", &json!({ "image_url": src }));
    assert_eq!(r.status, 201, "{}", r.body);
    let digest = r.json()["disk_image_sha"].as_str().unwrap().to_string();
    let url = format!("{}/cache/sha256/{digest}/private.img.zst", s.base);
    for expect in ["fill", "hit"] {
        let (status, h, got) = fetch(&url, None).unwrap();
        assert_eq!(status, 200);
        let via = header(&h, "x-bty-cache").unwrap_or("").to_string();
        assert!(got == disk, "other bytes through the cache");
        if expect == "hit" {
            assert_eq!(via, "hit");
        }
    }
    let rows = c.get("/cache").json();
    assert_eq!(rows[0]["state"], "complete", "{rows}");
    assert_eq!(rows[0]["digest"], digest.as_str());
    // Upstream's `/images/<ref>/<name>` route reads the same blob.
    let image_ref = rows[0]["bty_image_ref"].as_str().unwrap().to_string();
    let r = c.request(
        "GET",
        &format!("/images/{image_ref}/private.img.zst"),
        &[("range", "bytes=0-9")],
        None,
    );
    assert_eq!((r.status, r.header("x-bty-cache")), (206, Some("hit")));
    let m = s.client().get("/metrics").body;
    assert_eq!(common::metric(&m, "bty_cache_fills_total"), 1);
    for page in [
        "/cache",
        "/events?limit=200",
        "/metrics",
        "/catalog/entries",
    ] {
        assert!(
            !c.get(page).body.contains("s3cret-pw"),
            "{page} shows the password"
        );
    }
}

/// A fill that outlives its registry token: the blob download is dropped midway after the
/// token expired; the cache opens the registry afresh (a new token) and resumes from where it
/// was, instead of failing or starting over.
#[test]
fn an_expired_registry_token_is_renewed_on_resume() {
    use std::sync::atomic::Ordering;
    let reg = Registry::start();
    let disk = pattern(5_000_000, 2);
    reg.push_artifact(
        "lab/long",
        "1",
        &[("application/vnd.bty.disk.raw.zst", "long.img.zst", &disk)],
    );
    let front = expiring_tokens::Front::start(reg.port);
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let src = format!("oras://127.0.0.1:{}/lab/long:1", front.port);
    let r = c.json("POST", "/catalog/entries", &json!({ "image_url": src }));
    assert_eq!(r.status, 201, "{}", r.body);
    let digest = r.json()["disk_image_sha"].as_str().unwrap().to_string();
    let minted_before = front.seen.minted.load(Ordering::SeqCst);
    let (status, _, got) = fetch(
        &format!("{}/cache/sha256/{digest}/long.img.zst", s.base),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(got == disk, "other bytes through the cache");
    assert!(
        front.seen.expired.load(Ordering::SeqCst) >= 1,
        "the resume never met an expired token"
    );
    assert!(
        front.seen.minted.load(Ordering::SeqCst) >= minted_before + 2,
        "no new token was minted for the resume"
    );
    let m = s.client().get("/metrics").body;
    assert_eq!(common::metric(&m, "bty_cache_fills_total"), 1);
    assert_eq!(common::metric(&m, "bty_cache_fill_failures_total"), 0);
    // Resumed, not restarted: the origin bytes are the blob once plus the probes.
    let origin = common::metric(&m, "bty_cache_origin_bytes_total");
    assert_eq!(origin, disk.len() as u64);
}
