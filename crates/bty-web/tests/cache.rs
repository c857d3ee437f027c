//! The image cache against the real binary and a loopback origin that counts what it sends:
//! single flight for concurrent cold clients, ranges inside and far beyond a fill's
//! watermark, resuming after a dropped origin connection and after `kill -9` of bty-web,
//! refusing damaged and short fills, eviction under the cap with pinned blobs kept, a changed
//! origin object becoming a new blob, and the fill-slot limit.

mod common;

use std::time::{Duration, Instant};

use common::origin::{Fetched, Origin, fetch, fetch_together, header, pattern};
use common::{Client, Server, metric, sha256_hex_bytes};
use serde_json::json;

const MIB: usize = 1 << 20;

fn add(c: &mut Client, url: &str, sha: Option<&str>) -> serde_json::Value {
    let mut body = json!({ "image_url": url });
    if let Some(s) = sha {
        body["sha256"] = json!(s);
    }
    let r = c.json("POST", "/catalog/entries", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn cache_rows(c: &mut Client) -> Vec<serde_json::Value> {
    let r = c.get("/cache");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default()
}

/// Wait until `ok` holds for the `/cache` rows.
fn wait_rows(
    c: &mut Client,
    what: &str,
    ok: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = cache_rows(c);
        if ok(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metrics(s: &Server) -> String {
    s.client().get("/metrics").body
}

#[test]
fn sixteen_cold_clients_make_one_origin_fetch() {
    let body = pattern(8 * MIB, 1);
    let sha = sha256_hex_bytes(&body);
    let origin = Origin::start(body.clone());
    // Slow enough that every client joins while the fill runs.
    origin.pause(Some(Duration::from_millis(4)));
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    add(&mut c, &origin.url("disk.img"), Some(&sha));
    let url = format!("{}/cache/sha256/{sha}/disk.img", s.base);
    for got in fetch_together(&url, 16) {
        let (status, h, got) = got.expect("a whole transfer");
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-length"), Some("8388608"));
        assert_eq!(got.len(), body.len());
        assert!(got == body, "a client got other bytes");
    }
    // Once, plus the one-byte probe.
    assert!(
        origin.sent() >= body.len() as u64 && origin.sent() <= body.len() as u64 + 16,
        "origin sent {} for {} bytes: {:?}",
        origin.sent(),
        body.len(),
        origin.requests()
    );
    let full: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r == "GET -")
        .collect();
    assert_eq!(full.len(), 1, "{:?}", origin.requests());
    let rows = wait_rows(&mut c, "complete", |r| {
        r.iter().any(|b| b["state"] == "complete")
    });
    assert_eq!(rows[0]["digest"], sha);
    assert_eq!(rows[0]["size"], 8 * MIB);
    // A later client is a hit: no origin bytes.
    let before = origin.sent();
    let (_, h, got) = fetch(&url, None).unwrap();
    assert_eq!(header(&h, "x-bty-cache"), Some("hit"));
    assert!(got == body);
    assert_eq!(origin.sent(), before);
    let m = metrics(&s);
    assert_eq!(metric(&m, "bty_cache_misses_total"), 1);
    assert_eq!(metric(&m, "bty_cache_fills_total"), 1);
    assert!(metric(&m, "bty_cache_hits_total") >= 16);
    assert!(metric(&m, "bty_cache_served_bytes_total") >= 17 * 8 * MIB as u64);
    assert_eq!(metric(&m, "bty_cache_origin_bytes_total"), 8 * MIB as u64);
    // /images says cached; the catalog points at the blob route.
    let images = c.get("/images").json();
    assert_eq!(images[0]["cached"], true);
    let toml = c.get("/catalog.toml").body;
    assert!(toml.contains(&format!("src = \"{url}\"")), "{toml}");
    // The UI: the Cache page lists the blob, the Images page says it is cached.
    let page = c.get("/ui/cache").body;
    assert!(
        page.contains(&sha[..12]) && page.contains("complete") && page.contains("8.0 MiB"),
        "{page}"
    );
    assert!(!page.contains("hx-trigger"), "no running fill, no polling");
    let images = c.get("/ui/images").body;
    assert!(images.contains(">cached<"), "{images}");
}

#[test]
fn ranges_inside_the_watermark_and_far_beyond_it() {
    let body = pattern(100 * MIB, 2);
    let sha = sha256_hex_bytes(&body);
    let origin = Origin::start(body.clone());
    origin.pause(Some(Duration::from_millis(20)));
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let e = add(&mut c, &origin.url("big.qcow2"), Some(&sha));
    let r = c.json(
        "POST",
        "/cache/prefetch",
        &json!({"bty_image_ref": e["bty_image_ref"]}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["state"], "filling");
    wait_rows(&mut c, "a first MiB", |r| {
        r.iter().any(|b| b["filled"].as_u64() >= Some(MIB as u64))
    });
    // While it fills, the Cache page shows progress and follows it.
    let page = c.get("/ui/cache").body;
    assert!(
        page.contains("<progress") && page.contains("hx-trigger=\"every 2s\""),
        "{page}"
    );
    let url = format!("{}/cache/sha256/{sha}/big.qcow2", s.base);
    let (status, h, got) = fetch(&url, Some("bytes=1000-1999")).unwrap();
    assert_eq!((status, got.len()), (206, 1000));
    assert_eq!(
        header(&h, "content-range"),
        Some("bytes 1000-1999/104857600")
    );
    assert_eq!(header(&h, "x-bty-cache"), Some("fill"));
    assert!(got == body[1000..2000]);
    // A qcow2 reader seeking to its tables near the end is not parked behind the fill.
    let far = 95 * MIB;
    let (status, h, got) = fetch(&url, Some(&format!("bytes={far}-{}", far + 4095))).unwrap();
    assert_eq!((status, got.len()), (206, 4096));
    assert_eq!(header(&h, "x-bty-cache"), Some("origin"));
    assert!(got == body[far..far + 4096]);
    assert_eq!(metric(&metrics(&s), "bty_cache_passthrough_total"), 1);
    let (status, _, _) = fetch(&url, Some("bytes=200000000-")).unwrap();
    assert_eq!(status, 416);
    origin.pause(None);
    wait_rows(&mut c, "complete", |r| {
        r.iter().any(|b| b["state"] == "complete")
    });
    // The origin sent the image once, the far range, and probes.
    let extra = origin.sent() - body.len() as u64;
    assert!(
        extra <= 4096 + 16,
        "extra origin bytes {extra}: {:?}",
        origin.requests()
    );
}

#[test]
fn a_dropped_origin_connection_resumes() {
    let body = pattern(6 * MIB, 3);
    let sha = sha256_hex_bytes(&body);
    let origin = Origin::start(body.clone());
    origin.drop_once_after(2 * MIB as u64 + 123);
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    add(&mut c, &origin.url("disk.img.zst"), Some(&sha));
    let (status, _, got) =
        fetch(&format!("{}/cache/sha256/{sha}/disk.img.zst", s.base), None).unwrap();
    assert_eq!(status, 200);
    assert!(got == body);
    let reqs = origin.requests();
    assert!(
        reqs.iter()
            .any(|r| r == &format!("GET bytes={}-", 2 * MIB + 123)),
        "no resume from the drop: {reqs:?}"
    );
    assert!(origin.sent() <= body.len() as u64 + 16, "{}", origin.sent());
}

#[test]
fn an_expired_presigned_redirect_is_renewed_on_resume() {
    let body = pattern(5 * MIB, 7);
    let sha = sha256_hex_bytes(&body);
    let origin = Origin::start(body.clone());
    origin.drop_once_after(3 * MIB as u64);
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    add(&mut c, &origin.url("presign/disk.img"), Some(&sha));
    let (status, _, got) = fetch(&format!("{}/cache/sha256/{sha}/disk.img", s.base), None).unwrap();
    assert_eq!(status, 200);
    assert!(got == body);
    // Probe, the first body (dropped), the resume: three one-time URLs, none used twice.
    let reqs = origin.requests();
    assert!(
        reqs.iter().any(|r| r == &format!("GET bytes={}-", 3 * MIB)),
        "{reqs:?}"
    );
    assert!(origin.sent() <= body.len() as u64 + 16, "{}", origin.sent());
}

/// A transfer must not end cleanly with the wrong bytes: an error, or fewer bytes than the
/// Content-Length promised (ureq reports that as an error too).
fn assert_cut_short(r: Fetched) {
    if let Ok((status, h, got)) = r {
        assert!(
            status >= 400,
            "a clean {status} with {} wrong bytes ({h:?})",
            got.len()
        );
    }
}

#[test]
fn damaged_and_short_origins_are_refused() {
    let body = pattern(3 * MIB, 4);
    let sha = sha256_hex_bytes(&body);
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let damaged = Origin::start(body.clone());
    damaged.damage_at(2 * MIB as u64);
    damaged.pause(Some(Duration::from_millis(2)));
    add(&mut c, &damaged.url("a.img"), Some(&sha));
    let url = format!("{}/cache/sha256/{sha}/a.img", s.base);
    for got in fetch_together(&url, 4) {
        assert_cut_short(got);
    }
    wait_rows(&mut c, "the blob dropped", |r| r.is_empty());
    assert!(
        c.event_kinds("kind=cache.fill_failed").len() == 1,
        "{:?}",
        c.event_kinds("")
    );
    assert_eq!(metric(&metrics(&s), "bty_cache_fill_failures_total"), 1);
    assert!(
        std::fs::read_dir(s.state_dir().join("cache/part"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(
        std::fs::read_dir(s.state_dir().join("cache/sha256"))
            .unwrap()
            .next()
            .is_none()
    );

    // A truncated publication: the origin's whole object is short.
    let body2 = pattern(3 * MIB, 5);
    let sha2 = sha256_hex_bytes(&body2);
    let short = Origin::start(body2.clone());
    short.truncate_to(body2.len() as u64 - 100);
    add(&mut c, &short.url("b.img"), Some(&sha2));
    assert_cut_short(fetch(
        &format!("{}/cache/sha256/{sha2}/b.img", s.base),
        None,
    ));
    wait_rows(&mut c, "the short blob dropped", |r| r.is_empty());
    assert_eq!(metric(&metrics(&s), "bty_cache_fill_failures_total"), 2);
    // A retry soon after is refused without fetching the wrong bytes again.
    let sent = damaged.sent();
    let (status, _, text) = fetch(&url, None).unwrap();
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&text).contains("not the expected"));
    assert_eq!(damaged.sent(), sent);
    // The origin is fixed and the operator says so: the next request fills afresh.
    damaged.damage_at(u64::MAX);
    damaged.pause(None);
    assert_eq!(c.delete(&format!("/cache/{sha}")).status, 204);
    let (status, _, got) = fetch(&url, None).unwrap();
    assert_eq!(status, 200);
    assert!(got == body);
}

#[test]
fn a_killed_server_resumes_a_pinned_fill_where_the_disk_says() {
    let body = pattern(48 * MIB, 6);
    let sha = sha256_hex_bytes(&body);
    let origin = Origin::start(body.clone());
    origin.pause(Some(Duration::from_millis(8)));
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let e = add(&mut c, &origin.url("disk.img"), Some(&sha));
    // Binding a machine in a flash mode prefetches and pins.
    let r = c.json(
        "PUT",
        "/machines/52:54:00:00:00:01",
        &json!({"bty_image_ref": e["bty_image_ref"], "boot_mode": "bty-flash-once", "target_disk_serial": "S1"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = wait_rows(&mut c, "20 MiB", |r| {
        r.iter()
            .any(|b| b["filled"].as_u64() >= Some(20 * MIB as u64))
    });
    assert_eq!(rows[0]["pinned"], true);
    let s = s.restart(&[("BTY_LOG", "warn")]); // SIGKILL, same state folder
    std::thread::sleep(Duration::from_millis(300));
    let sent_before = origin.sent();
    assert!(
        sent_before < body.len() as u64,
        "the fill ended before the kill"
    );
    origin.pause(Some(Duration::from_millis(1)));
    let mut c = s.signed_in("bty-lab");
    // No request: a pinned fill resumes at start.
    wait_rows(&mut c, "complete after restart", |r| {
        r.iter().any(|b| b["state"] == "complete")
    });
    let resumed: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET bytes=") && r != "GET bytes=0-0")
        .collect();
    assert_eq!(resumed.len(), 1, "{:?}", origin.requests());
    let from: u64 = resumed[0]
        .trim_start_matches("GET bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from >= 16 * MIB as u64, "resumed from {from}");
    // Not everything again: the second run sent the rest after the durable watermark.
    let second = origin.sent() - sent_before;
    assert!(
        second <= body.len() as u64 - from + 16,
        "second run sent {second}"
    );
    let (_, _, got) = fetch(&format!("{}/cache/sha256/{sha}/disk.img", s.base), None).unwrap();
    assert!(got == body);
    // A complete blob survives the next restart: a hit, no origin bytes.
    let s = s.restart(&[("BTY_LOG", "warn")]);
    let before = origin.sent();
    let (_, h, got) = fetch(&format!("{}/cache/sha256/{sha}/disk.img", s.base), None).unwrap();
    assert_eq!(header(&h, "x-bty-cache"), Some("hit"));
    assert!(got == body);
    assert_eq!(origin.sent(), before);
}

#[test]
fn eviction_keeps_pinned_and_served_blobs() {
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| pattern(MIB + MIB / 4, 10 + i)).collect();
    let s = Server::start_with(&[("BTY_CACHE_MAX_BYTES", "3145728")]);
    let mut c = s.signed_in("bty-lab");
    let mut keys = Vec::new();
    let mut origins = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        let o = Origin::start(b.clone());
        let sha = sha256_hex_bytes(b);
        let e = add(&mut c, &o.url(&format!("i{i}.img")), Some(&sha));
        if i == 0 {
            let r = c.json(
                "PUT",
                "/machines/52:54:00:00:00:02",
                &json!({"bty_image_ref": e["bty_image_ref"], "boot_mode": "bty-flash-always", "target_disk_serial": "S1"}),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            wait_rows(&mut c, "the pinned prefetch", |r| {
                r.iter().any(|b| b["state"] == "complete")
            });
        }
        let (st, _, got) = fetch(&format!("{}/cache/sha256/{sha}/i{i}.img", s.base), None).unwrap();
        assert_eq!(st, 200);
        assert!(got == *b);
        keys.push(sha);
        origins.push(o);
        std::thread::sleep(Duration::from_millis(1100)); // distinct last-used seconds
    }
    let rows = wait_rows(&mut c, "an eviction", |r| r.len() == 2);
    let held: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert!(
        held.contains(&keys[0].as_str()),
        "the pinned blob went: {held:?}"
    );
    assert!(
        held.contains(&keys[2].as_str()),
        "the newest blob went: {held:?}"
    );
    assert_eq!(metric(&metrics(&s), "bty_cache_evictions_total"), 1);
    assert_eq!(c.event_kinds("kind=cache.evicted").len(), 1);
    // Pinned: the operator cannot delete it either; the other one may go.
    assert_eq!(c.delete(&format!("/cache/{}", keys[0])).status, 409);
    assert_eq!(c.delete(&format!("/cache/{}", keys[2])).status, 204);
    assert_eq!(c.delete(&format!("/cache/{}", keys[2])).status, 404);
    // The evicted one fills again on request.
    let (st, _, got) = fetch(&format!("{}/cache/sha256/{}/i1.img", s.base, keys[1]), None).unwrap();
    assert_eq!(st, 200);
    assert!(got == bodies[1]);
}

#[test]
fn pinned_blobs_over_the_cap_still_fill_and_the_dashboard_says_so() {
    // Three pinned images of 1.25 MiB under a 3 MiB cap.
    let s = Server::start_with(&[("BTY_CACHE_MAX_BYTES", "3145728")]);
    let mut c = s.signed_in("bty-lab");
    let mut origins = Vec::new();
    for i in 0..3u8 {
        let body = pattern(MIB + MIB / 4, 50 + i as u64);
        let o = Origin::start(body.clone());
        let e = add(
            &mut c,
            &o.url(&format!("p{i}.img")),
            Some(&sha256_hex_bytes(&body)),
        );
        let r = c.json(
            "PUT",
            &format!("/machines/52:54:00:00:01:0{i}"),
            &json!({"bty_image_ref": e["bty_image_ref"], "boot_mode": "bty-flash-once", "target_disk_serial": "S1"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        wait_rows(&mut c, "the pinned fill", |r| {
            r.iter().filter(|b| b["state"] == "complete").count() == i as usize + 1
        });
        origins.push(o);
    }
    let rows = cache_rows(&mut c);
    assert!(rows.iter().all(|b| b["pinned"] == true), "{rows:?}");
    let dash = c.get("/ui/dashboard").body;
    assert!(dash.contains("over its cap"), "{dash}");
    // An unpinned image is refused rather than evicting the fleet's.
    let body = pattern(MIB, 60);
    let sha = sha256_hex_bytes(&body);
    let o = Origin::start(body);
    add(&mut c, &o.url("extra.img"), Some(&sha));
    let (status, _, text) =
        fetch(&format!("{}/cache/sha256/{sha}/extra.img", s.base), None).unwrap();
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&text).contains("no room under the cache's cap"));
    assert_eq!(cache_rows(&mut c).len(), 3);
}

#[test]
fn a_changed_origin_object_becomes_a_new_blob() {
    let v1 = pattern(MIB, 20);
    let origin = Origin::start(v1.clone());
    let s = Server::start_with(&[("BTY_CACHE_REVALIDATE_SECS", "0")]);
    let mut c = s.signed_in("bty-lab");
    let e = add(&mut c, &origin.url("nightly.img"), None);
    let r = e["bty_image_ref"].as_str().unwrap().to_string();
    let url = format!("{}/cache/sha256/{r}/nightly.img", s.base);
    let (_, _, got) = fetch(&url, None).unwrap();
    assert!(got == v1);
    let first = wait_rows(&mut c, "v1 complete", |r| {
        r.iter().any(|b| b["state"] == "complete")
    });
    assert_eq!(first[0]["digest"], sha256_hex_bytes(&v1));
    // Unchanged: a conditional request, answered 304, and a hit.
    let (_, h, got) = fetch(&url, None).unwrap();
    assert_eq!(header(&h, "x-bty-cache"), Some("hit"));
    assert!(got == v1);
    assert!(
        origin
            .requests()
            .iter()
            .filter(|q| q.starts_with("GET bytes=0-0"))
            .count()
            >= 2
    );
    // Changed at the origin: a new blob, an event, the old one kept.
    let v2 = pattern(MIB, 21);
    origin.replace(v2.clone(), "\"v2\"");
    let (_, _, got) = fetch(&url, None).unwrap();
    assert!(got == v2, "the changed object was not served");
    let rows = wait_rows(&mut c, "two blobs", |r| {
        r.len() == 2 && r.iter().all(|b| b["state"] == "complete")
    });
    assert!(rows.iter().any(|b| b["digest"] == sha256_hex_bytes(&v2)));
    assert_eq!(c.event_kinds("kind=cache.origin_changed").len(), 1);
}

#[test]
fn a_fill_never_crosses_the_free_space_floor() {
    let body = pattern(MIB, 40);
    let sha = sha256_hex_bytes(&body);
    let origin = Origin::start(body);
    // A floor no filesystem here can satisfy.
    let s = Server::start_with(&[("BTY_CACHE_MIN_FREE_BYTES", "1000000000000000000")]);
    let mut c = s.signed_in("bty-lab");
    add(&mut c, &origin.url("x.img"), Some(&sha));
    let (status, _, text) = fetch(&format!("{}/cache/sha256/{sha}/x.img", s.base), None).unwrap();
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&text).contains("min_free_bytes"));
    assert_eq!(c.event_kinds("kind=cache.fill_failed").len(), 1);
    wait_rows(&mut c, "no row left", |r| r.is_empty());
}

#[test]
fn fill_slots_are_limited_and_the_cache_can_be_off() {
    let a = Origin::start(pattern(4 * MIB, 30));
    a.pause(Some(Duration::from_millis(10)));
    let b = Origin::start(pattern(MIB, 31));
    let s = Server::start_with(&[("BTY_CACHE_MAX_CONCURRENT_FILLS", "1")]);
    let mut c = s.signed_in("bty-lab");
    let ea = add(&mut c, &a.url("a.img"), None);
    let eb = add(&mut c, &b.url("b.img"), None);
    let r = c.json(
        "POST",
        "/cache/prefetch",
        &json!({"bty_image_ref": ea["bty_image_ref"]}),
    );
    assert_eq!(r.status, 202);
    let (st, h, _) = fetch(
        &format!(
            "{}/cache/sha256/{}/b.img",
            s.base,
            eb["bty_image_ref"].as_str().unwrap()
        ),
        None,
    )
    .unwrap();
    assert_eq!(st, 503);
    assert!(header(&h, "content-type").is_some());
    assert_eq!(
        c.json(
            "POST",
            "/cache/prefetch",
            &json!({"bty_image_ref": "0".repeat(64)})
        )
        .status,
        404
    );
    // Unauthenticated callers cannot see or delete cache rows.
    assert_eq!(s.client().get("/cache").status, 401);

    // An entry that says `cache = false` (an origin on the LAN) is listed with its own URL.
    let lan = Origin::start(pattern(MIB, 32));
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": lan.url("lan.img"), "cache": false}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["cache"], false);
    let toml = c.get("/catalog.toml").body;
    assert!(
        toml.contains(&format!("src = \"{}\"", lan.url("lan.img"))),
        "{toml}"
    );
    let (st, _, _) = fetch(
        &format!(
            "{}/cache/sha256/{}/lan.img",
            s.base,
            r.json()["bty_image_ref"].as_str().unwrap()
        ),
        None,
    )
    .unwrap();
    assert_eq!(st, 404);
    drop(s);

    // Off: the catalog and plans point at the origin again, and the blob route is gone.
    let s = Server::start_with(&[("BTY_CACHE_ENABLED", "false")]);
    let mut c = s.signed_in("bty-lab");
    let e = add(&mut c, &b.url("b.img"), None);
    let toml = c.get("/catalog.toml").body;
    assert!(
        toml.contains(&format!("src = \"{}\"", b.url("b.img"))),
        "{toml}"
    );
    let (st, _, _) = fetch(
        &format!(
            "{}/cache/sha256/{}/b.img",
            s.base,
            e["bty_image_ref"].as_str().unwrap()
        ),
        None,
    )
    .unwrap();
    assert_eq!(st, 404);
}
