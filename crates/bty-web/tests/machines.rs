//! The machines and events APIs against the real binary: status codes, JSON shapes,
//! full-replace semantics, MAC normalisation, validation with nothing written, body limits.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn machines_crud_and_shapes() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    assert_eq!(c.get("/machines").json(), json!([]));

    let r = c.json(
        "PUT",
        "/machines/AA-BB-CC-DD-EE-01",
        &json!({"hostname": "node-1", "labels": ["rack 2", "GPU", "gpu"], "sanboot_drive": "0x81"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let m = r.json();
    assert_eq!(m["mac"], "aa:bb:cc:dd:ee:01");
    assert_eq!(m["boot_mode"], "ipxe-exit");
    assert_eq!(m["labels"], json!(["GPU", "rack 2"]));
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "mac",
            "bty_image_ref",
            "hostname",
            "labels",
            "discovered_at",
            "last_seen_at",
            "last_seen_ip",
            "boot_mode",
            "sanboot_drive",
            "last_flashed_at",
            "known_disks",
            "known_disks_at",
            "target_disk_serial",
            "created_at",
            "updated_at",
            "flash_progress"
        ]
    );
    let created = m["created_at"].as_str().unwrap().to_string();
    assert!(
        created.ends_with("+00:00") && created.len() == 32,
        "{created}"
    );

    // Full replace: omitted fields go back to their defaults; created_at stays.
    let image = "ab".repeat(32);
    let r = c.json(
        "PUT",
        "/machines/aa:bb:cc:dd:ee:01",
        &json!({"boot_mode": "bty-flash-once", "bty_image_ref": image, "target_disk_serial": "S123"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let m = r.json();
    assert_eq!(
        (m["hostname"].clone(), m["labels"].clone()),
        (json!(null), json!([]))
    );
    assert_eq!(m["sanboot_drive"], json!(null));
    assert_eq!(m["created_at"], created);
    assert_eq!(
        c.get("/machines/aa-bb-cc-dd-ee-01").json()["target_disk_serial"],
        "S123"
    );
    assert_eq!(c.get("/machines").json().as_array().unwrap().len(), 1);

    // Stored blobs: none yet.
    assert_eq!(c.get("/machines/aa:bb:cc:dd:ee:01/lshw.json").status, 404);
    assert_eq!(c.get("/machines/aa:bb:cc:dd:ee:01/disks.json").status, 404);

    assert_eq!(c.delete("/machines/aa:bb:cc:dd:ee:01").status, 204);
    assert_eq!(c.delete("/machines/aa:bb:cc:dd:ee:01").status, 404);
    assert_eq!(c.get("/machines/aa:bb:cc:dd:ee:01").status, 404);

    let kinds = c.event_kinds("subject_kind=machine");
    assert_eq!(
        kinds,
        ["machine.deleted", "machine.upserted", "machine.created"]
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    for bad in ["aabbccddeeff", "aa:bb:cc:dd:ee", "zz:bb:cc:dd:ee:ff"] {
        let r = c.json("PUT", &format!("/machines/{bad}"), &json!({}));
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["detail"], format!("invalid MAC: '{bad}'"));
        assert_eq!(c.get(&format!("/machines/{bad}")).status, 400);
    }
    let mac = "/machines/aa:bb:cc:dd:ee:02";
    let cases = [
        (json!({"boot_mode": "bty-flash-once"}), "target_disk_serial"),
        (
            json!({"boot_mode": "bty-flash-always", "target_disk_serial": "  "}),
            "target_disk_serial",
        ),
        (json!({"bty_image_ref": "ABC"}), "bty_image_ref"),
        (json!({"hostname": "under_score"}), "hostname"),
        (json!({"sanboot_drive": "80"}), "sanboot_drive"),
        (json!({"labels": ["-bad"]}), "labels"),
    ];
    for (body, field) in cases {
        let r = c.json("PUT", mac, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.json()["detail"][0]["loc"][1], field, "{body}");
    }
    for body in [
        json!({"bogus": 1}),
        json!({"boot_mode": "ramboot"}),
        json!([]),
    ] {
        assert_eq!(c.json("PUT", mac, &body).status, 422, "{body}");
    }
    let r = c.request(
        "PUT",
        mac,
        &[],
        Some(("application/json", b"{not json".to_vec())),
    );
    assert_eq!(r.status, 400);
    let r = c.request("PUT", mac, &[], Some(("text/plain", b"{}".to_vec())));
    assert_eq!(
        r.status, 415,
        "JSON routes need Content-Type: application/json"
    );
    // A body over the limit is refused from its declared length, before it is read.
    let status = raw_put_status(&s.base, mac, c.cookie.as_deref().unwrap(), 2 << 20);
    assert_eq!(status, 413);
    assert_eq!(c.get(mac).status, 404, "nothing was written");
    assert!(
        c.get("/events?subject_kind=machine").json()["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn events_filters_paging_and_ack() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    for i in 0..12 {
        let r = c.json(
            "PUT",
            &format!("/machines/aa:bb:cc:dd:ee:{i:02x}"),
            &json!({}),
        );
        assert_eq!(r.status, 200);
    }
    let mut fails = s.client();
    fails.login("wrong");
    let all = c.get("/events?limit=500").json()["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 12 + 2); // machines, the failed login, the successful one
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let e = &all[0];
    for k in [
        "id",
        "ts",
        "kind",
        "subject_kind",
        "subject_id",
        "actor",
        "source_ip",
        "summary",
        "details",
        "acknowledged",
    ] {
        assert!(e.get(k).is_some(), "{k}");
    }
    assert_eq!(e["source_ip"], "127.0.0.1");

    let page1 = c.get("/events?kind=machine.created&limit=5").json()["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(page1.len(), 5);
    let last = page1[4]["id"].as_i64().unwrap();
    let page2 = c
        .get(&format!(
            "/events?kind=machine.created&limit=5&before_id={last}"
        ))
        .json()["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(page2.len(), 5);
    assert!(page2.iter().all(|e| e["id"].as_i64().unwrap() < last));
    assert_eq!(
        c.get("/events?limit=0").json()["events"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "limit clamps to 1"
    );

    let failed = c.get("/events?failed=1").json()["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["kind"], "auth.login.failed");
    assert_eq!(failed[0]["acknowledged"], false);
    let q = c.get("/events?q=ee:0b").json()["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["subject_id"], "aa:bb:cc:dd:ee:0b");
    assert_eq!(
        c.get("/events?q=100%25").json()["events"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "% is literal"
    );

    let id = failed[0]["id"].as_i64().unwrap();
    let r = c.request("POST", &format!("/events/{id}/ack"), &[], None);
    assert_eq!(r.json(), json!({"id": id, "acknowledged": true}));
    assert_eq!(
        c.get("/events?failed=1").json()["events"][0]["acknowledged"],
        true
    );
    assert_eq!(
        c.request("POST", "/events/999999/ack", &[], None).status,
        404
    );
    assert_eq!(c.request("POST", "/events/abc/ack", &[], None).status, 400);
}

/// PUT announcing `len` bytes of JSON without sending them; the status line's code.
fn raw_put_status(base: &str, path: &str, cookie: &str, len: usize) -> u16 {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
