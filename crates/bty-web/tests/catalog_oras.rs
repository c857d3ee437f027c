//! Adding an `oras://` entry resolves it through a real registry (Debian's docker-registry on
//! 127.0.0.1) and freezes the disk layer's digest in the entry.

mod common;

#[path = "../../bty/tests/common/registry.rs"]
#[allow(dead_code)]
mod registry;

use common::Server;
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
}
