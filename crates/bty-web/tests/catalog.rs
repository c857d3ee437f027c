//! The catalog API against the real binary: adding by URL (sha256 given, or read from a
//! sha256sum file served on 127.0.0.1), refs as upstream computes them, duplicates, deletes,
//! imports, and the open `/images` and `/catalog.toml` views.

mod common;

use common::{Server, serve_files, sha256_hex};
use serde_json::json;

#[test]
fn refs_are_sha256_of_the_canonical_src() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    // (as given, canonical form) — upstream's rules: scheme and host lower-cased, default port
    // dropped, path kept verbatim.
    let vectors = [
        (
            "HTTPS://Images.Example.COM:443/a/Disk.img.zst",
            "https://images.example.com/a/Disk.img.zst",
        ),
        (
            "http://h.example:80/x.img?y=1#z",
            "http://h.example/x.img?y=1#z",
        ),
        ("http://h.example:8080/x.img", "http://h.example:8080/x.img"),
        ("https://h.example/dir/", "https://h.example/dir/"),
    ];
    for (i, (given, canonical)) in vectors.iter().enumerate() {
        let r = c.json(
            "POST",
            "/catalog/entries",
            &json!({"image_url": given, "name": format!("img{i}"), "sha256": "ab".repeat(32)}),
        );
        assert_eq!(r.status, 201, "{given}: {}", r.body);
        assert_eq!(r.json()["bty_image_ref"], sha256_hex(canonical), "{given}");
    }
    // A given ref must match.
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": "https://h.example/y.img", "ref": "cd".repeat(32)}),
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("ref mismatch"));
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": "https://h.example/y.img", "ref": sha256_hex("https://h.example/y.img")}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn add_list_delete_and_views() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let digest = "0f".repeat(32);
    let files = serve_files(vec![(
        "/SHA256SUMS",
        format!(
            "{}  other.img.zst\n{digest}  disk.img.zst\n",
            "aa".repeat(32)
        ),
    )]);
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({
            "image_url": format!("{files}/images/disk.img.zst"),
            "sha_url": format!("{files}/SHA256SUMS"),
            "description": "Lab image"
        }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let e = r.json();
    assert_eq!(e["name"], "disk.img.zst");
    assert_eq!(e["disk_image_sha"], digest);
    assert_eq!(e["format"], "img.zst");
    for k in [
        "src",
        "bty_image_ref",
        "disk_image_sha",
        "name",
        "sha_url",
        "format",
        "size_bytes",
        "added_at",
    ] {
        assert!(e.get(k).is_some(), "{k}");
    }
    // Duplicate src: 409.
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": format!("{files}/images/disk.img.zst"), "sha256": digest}),
    );
    assert_eq!(r.status, 409);
    // A sha_url that does not list the file: 400, audited, nothing stored.
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": format!("{files}/images/missing.img"), "sha_url": format!("{files}/SHA256SUMS")}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("sha resolve failed"));
    // Bad input.
    for (body, status) in [
        (json!({"image_url": "ftp://h/x.img"}), 422),
        (json!({"image_url": "https://h.example/"}), 422),
        (
            json!({"image_url": "https://h.example/x.img", "sha256": "xyz"}),
            422,
        ),
        (
            json!({"image_url": "https://h.example/x.img", "extra": 1}),
            422,
        ),
        (json!({}), 422),
    ] {
        assert_eq!(
            c.json("POST", "/catalog/entries", &body).status,
            status,
            "{body}"
        );
    }
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": "https://h.example/plain.img"}),
    );
    assert_eq!(r.status, 201);

    let list = c.get("/catalog/entries").json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["disk.img.zst", "plain.img"]);

    // Open views, no session needed.
    let mut anon = s.client();
    let images = anon.get("/images").json();
    assert_eq!(images[0]["sha_short"], &digest[..12]);
    assert_eq!(images[0]["ref"], list[0]["bty_image_ref"]);
    assert_eq!(images[1]["sha_short"], json!(null));
    assert_eq!(images[1]["size_bytes"], 0);
    let toml_text = anon.get("/catalog.toml").body;
    let doc: toml::Table = toml::from_str(&toml_text).unwrap();
    assert_eq!(doc["version"].as_integer(), Some(1));
    let imgs = doc["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 2, "entries without a digest are listed too");
    assert_eq!(imgs[0]["sha256"].as_str(), Some(digest.as_str()));
    assert_eq!(imgs[0]["description"].as_str(), Some("Lab image"));

    // Delete: a machine bound to the entry is named in the event.
    let image_ref = list[0]["bty_image_ref"].as_str().unwrap().to_string();
    let r = c.json(
        "PUT",
        "/machines/aa:bb:cc:dd:ee:10",
        &json!({"bty_image_ref": image_ref, "boot_mode": "bty-flash-once", "target_disk_serial": "S"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(c.delete("/catalog/entries").status, 422);
    let src = common::urlencode(list[0]["src"].as_str().unwrap());
    assert_eq!(c.delete(&format!("/catalog/entries?src={src}")).status, 204);
    assert_eq!(c.delete(&format!("/catalog/entries?src={src}")).status, 404);
    let ev = c.get("/events?kind=catalog.entry.deleted").json()["events"][0].clone();
    assert_eq!(
        ev["details"]["machines_bound"],
        json!(["aa:bb:cc:dd:ee:10"])
    );
    let failed = c.get("/events?kind=catalog.entry.add.failed").json()["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(failed, 1);
}

#[test]
fn import_a_catalog_twice() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(
        &path,
        format!(
            "version = 1\n[[images]]\nname = \"a\"\nsrc = \"https://h.example/a.img.xz\"\nsha256 = \"{}\"\nsize_bytes = 5\n\
             [[images]]\nname = \"b\"\nsrc = \"http://h.example/b.qcow2\"\n",
            "12".repeat(32)
        ),
    )
    .unwrap();
    // A local path is never read by the server (a deliberate break from upstream 0.47).
    let local = format!(
        "/catalog/import?source={}",
        common::urlencode(&path.display().to_string())
    );
    assert_eq!(c.request("POST", &local, &[], None).status, 422);
    let url = common::serve_path(path.clone());
    let q = format!("/catalog/import?source={}", common::urlencode(&url));
    let r = c.request("POST", &q, &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(
        (j["imported"].as_u64(), j["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(j["errors"], json!([]));
    let j = c.request("POST", &q, &[], None).json();
    assert_eq!(
        (j["imported"].as_u64(), j["skipped"].as_u64()),
        (Some(0), Some(2))
    );
    let r = c.request(
        "POST",
        &format!(
            "/catalog/import?source={}",
            common::urlencode(
                &url.replace("catalog.toml", "none.toml")
                    .replace("127.0.0.1:", "127.0.0.1:1")
            )
        ),
        &[],
        None,
    );
    assert_eq!(r.status, 400);
    std::fs::write(&path, "version = 1\n[[images]]\nname = 3\n").unwrap();
    assert_eq!(c.request("POST", &q, &[], None).status, 400);
    // file:// sources are never served to machines: the whole catalog is refused, naming it.
    std::fs::write(
        &path,
        "version = 1\n[[images]]\nname = \"c\"\nsrc = \"file:///srv/c.img\"\n",
    )
    .unwrap();
    let r = c.request("POST", &q, &[], None);
    assert_eq!(r.status, 400);
    // Named by its place (a fetched catalog's text is never quoted back).
    assert!(
        r.body.contains("entry 1") && r.body.contains("file://"),
        "{}",
        r.body
    );
    assert_eq!(
        c.get("/catalog/entries").json().as_array().unwrap().len(),
        2
    );
}
