//! The open PXE and agent routes against the real binary: script texts, boot artifacts (names,
//! ranges, ETags, uploads), inventory limits, progress, live updates, metrics, and a storm of
//! first contacts.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

#[test]
fn scripts_follow_the_host_or_the_public_url() {
    let s = Server::start();
    let mut c = s.client();
    let r = c.get("/pxe-bootstrap.ipxe");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.body,
        format!("#!ipxe\nchain {}/pxe/${{mac:hexhyp}} || exit\n", s.base)
    );
    // A Host header that is not host[:port] is never put into a script.
    let r = c.request(
        "GET",
        "/pxe-bootstrap.ipxe",
        &[("host", "evil;chain http://x")],
        None,
    );
    assert!(!r.body.contains("evil"), "{}", r.body);
    assert!(r.body.ends_with("exit\n"));
    let r = c.get("/pxe/52-54-00-12-34-56");
    assert!(
        r.body.contains(&format!("set bty-base {}\n", s.base)),
        "{}",
        r.body
    );
    assert!(r.body.contains("bty.mac=52:54:00:12:34:56"));
    assert!(r.body.contains("initrd=bty-netboot-x86_64.initrd"));
    assert!(r.body.contains("|| goto failed"));
    assert_eq!(c.get("/pxe/not-a-mac").status, 400);

    // The public URL wins; the upstream-live preset serves upstream's live-build chain.
    let s = Server::start_with(&[
        ("BTY_SERVER_PUBLIC_URL", "http://bty.lab:8080/"),
        ("BTY_NETBOOT_PRESET", "upstream-live"),
    ]);
    let mut c = s.client();
    assert_eq!(
        c.get("/pxe-bootstrap.ipxe").body,
        "#!ipxe\nchain http://bty.lab:8080/pxe/${mac:hexhyp} || exit\n"
    );
    let r = c.get("/pxe/52:54:00:12:34:57");
    // By default the newest upstream's names and serial consoles.
    assert!(r.body.contains("kernel ${bty-base}/boot/bty-netboot-pc-x86_64-v0.77.2.vmlinuz?mac=52:54:00:12:34:57 boot=live fetch=${bty-base}/boot/bty-netboot-pc-x86_64-v0.77.2.squashfs components console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200 modprobe.blacklist=nouveau,rndis_host "), "{}", r.body);
    assert!(
        r.body
            .contains("bty.server=${bty-base} bty.mac=52:54:00:12:34:57")
    );
    let plan = c.get("/pxe/52:54:00:12:34:57/plan").json();
    assert_eq!(plan, json!({"mode": "inventory"}));
    // An 0.47 netboot set: its names and command line.
    let s = Server::start_with(&[
        ("BTY_NETBOOT_PRESET", "upstream-live"),
        ("BTY_NETBOOT_UPSTREAM_VERSION", "0.47.0"),
    ]);
    let r = s.client().get("/pxe/52:54:00:12:34:58");
    assert!(r.body.contains("kernel ${bty-base}/boot/bty-netboot-x86_64-v0.47.0.vmlinuz?mac=52:54:00:12:34:58 boot=live fetch=${bty-base}/boot/bty-netboot-x86_64-v0.47.0.squashfs components console=tty0 console=ttyS0,115200 modprobe.blacklist=nouveau plymouth"), "{}", r.body);
}

#[test]
fn boot_artifacts() {
    let s = Server::start_with(&[("BTY_TUNING_MAX_UPLOAD_BYTES", "100000")]);
    let boot = s.state_dir().join("boot");
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(boot.join("ipxe.efi"), &data).unwrap();
    let mut c = s.client();
    let r = c.get("/boot/ipxe.efi");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/octet-stream"))
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.body.len(),
        0,
        "binary bodies are not UTF-8; size via content-length"
    );
    assert_eq!(r.header("content-length"), Some("50000"));
    let etag = r.header("etag").unwrap().to_string();
    let r = c.request("GET", "/boot/ipxe.efi", &[("range", "bytes=100-199")], None);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/50000"));
    assert_eq!(r.header("content-length"), Some("100"));
    let r = c.request("GET", "/boot/ipxe.efi", &[("range", "bytes=-10")], None);
    assert_eq!(r.header("content-range"), Some("bytes 49990-49999/50000"));
    let r = c.request("GET", "/boot/ipxe.efi", &[("range", "bytes=60000-")], None);
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */50000"))
    );
    let r = c.request(
        "GET",
        "/boot/ipxe.efi",
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
        None,
    );
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");
    let r = c.request("GET", "/boot/ipxe.efi", &[("if-none-match", &etag)], None);
    assert_eq!(r.status, 304);
    let r = c.request("HEAD", "/boot/ipxe.efi", &[], None);
    assert_eq!((r.status, r.header("content-length")), (200, Some("50000")));
    assert_eq!(c.get("/boot/missing.efi").status, 404);
    for bad in ["..", "..%2F..%2Fetc%2Fpasswd", "a%5Cb", "x.partial"] {
        assert_eq!(c.get(&format!("/boot/{bad}")).status, 400, "{bad}");
    }
    std::os::unix::fs::symlink("/etc/hostname", boot.join("escape")).unwrap();
    assert_eq!(c.get("/boot/escape").status, 400);
    // Real bytes through a raw read.
    assert_eq!(
        raw_get(&s.base, "/boot/ipxe.efi", "bytes=1000-1999"),
        data[1000..2000]
    );

    // Uploads need a session; they land atomically; over the cap nothing is left behind.
    let r = c.request(
        "PUT",
        "/boot/new.efi",
        &[],
        Some(("application/octet-stream", vec![7u8; 1000])),
    );
    assert_eq!(r.status, 401);
    let mut admin = s.signed_in("bty-lab");
    let r = admin.request(
        "PUT",
        "/boot/new.efi",
        &[],
        Some(("application/octet-stream", vec![7u8; 60_000])),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["size_bytes"], 60_000);
    assert_eq!(
        std::fs::read(boot.join("new.efi")).unwrap(),
        vec![7u8; 60_000]
    );
    let r = admin.request(
        "PUT",
        "/boot/big.efi",
        &[],
        Some(("application/octet-stream", vec![7u8; 100_001])),
    );
    assert_eq!(r.status, 413);
    assert!(!boot.join("big.efi").exists() && !boot.join("big.efi.partial").exists());
    assert_eq!(
        admin
            .request(
                "PUT",
                "/boot/..",
                &[],
                Some(("application/octet-stream", vec![1]))
            )
            .status,
        400
    );
}

fn raw_get(base: &str, path: &str, range: &str) -> Vec<u8> {
    use std::io::Read;
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nRange: {range}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    all[split..].to_vec()
}

#[test]
fn inventory_done_failed_and_progress() {
    let s = Server::start();
    let mut c = s.client();
    let mac = "52:54:00:00:07:01";
    // Unknown machines: 404, recorded as orphans.
    assert_eq!(
        c.json(
            "POST",
            &format!("/pxe/{mac}/inventory"),
            &json!({"disks": []})
        )
        .status,
        404
    );
    assert_eq!(
        c.request("POST", &format!("/pxe/{mac}/done"), &[], None)
            .status,
        404
    );
    assert_eq!(
        c.json(
            "POST",
            &format!("/pxe/{mac}/progress"),
            &json!({"bytes_done": 1})
        )
        .status,
        404
    );
    c.get(&format!("/pxe/{mac}"));

    let disk = |i: usize| json!({"path": format!("/dev/sd{i}"), "serial": format!("S{i}"), "model": "M", "extra": "ignored"});
    let many: Vec<_> = (0..65).map(disk).collect();
    assert_eq!(
        c.json(
            "POST",
            &format!("/pxe/{mac}/inventory"),
            &json!({"disks": many})
        )
        .status,
        422
    );
    // An lshw over the cap is dropped, as upstream does; the disks are still kept.
    let big = json!({"disks": [disk(1)], "lshw": {"blob": "x".repeat(4 << 20)}});
    assert_eq!(
        c.json("POST", &format!("/pxe/{mac}/inventory"), &big)
            .status,
        204
    );
    assert_eq!(
        c.json(
            "POST",
            &format!("/pxe/{mac}/inventory"),
            &json!({"disks": [], "bogus": 1})
        )
        .status,
        422
    );
    let long = json!({"disks": [{"path": "/dev/sda", "serial": "s".repeat(129)}]});
    assert_eq!(
        c.json("POST", &format!("/pxe/{mac}/inventory"), &long)
            .status,
        422
    );
    let ok = json!({"disks": [disk(0), disk(1)], "lshw": {"id": "box", "children": []}});
    assert_eq!(
        c.json("POST", &format!("/pxe/{mac}/inventory"), &ok).status,
        204
    );

    let mut admin = s.signed_in("bty-lab");
    let m = admin.get(&format!("/machines/{mac}")).json();
    assert_eq!(m["known_disks"][1]["serial"], "S1");
    assert!(m["known_disks"][0].get("extra").is_none());
    let lshw = admin.get(&format!("/machines/{mac}/lshw.json"));
    assert_eq!(lshw.json()["id"], "box");
    assert!(
        lshw.header("content-disposition")
            .unwrap()
            .contains("52-54-00-00-07-01-lshw.json")
    );

    // Progress shows on the machine, is rate-limited, and ends with the flash.
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/progress"),
        &json!({"bytes_done": 1000, "bytes_total": 4000, "rate": 500.0, "stage": "writing"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/progress"),
        &json!({"bytes_done": 1100}),
    );
    assert_eq!(r.status, 429);
    // Fields a newer agent adds are ignored, not refused (the download side is kept).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/progress"),
        &json!({"bytes_done": 1000, "bytes_total": 4000, "bytes_read": 700, "read_total": 2000, "from_the_future": 1}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let p = admin.get(&format!("/machines/{mac}")).json()["flash_progress"].clone();
    assert_eq!(
        (p["bytes_done"].as_u64(), p["bytes_total"].as_u64()),
        (Some(1000), Some(4000))
    );
    let metrics = c.get("/metrics").body;
    assert!(metrics.contains("bty_flashes_in_progress 1"), "{metrics}");
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/failed"),
        &json!({"stage": "writing", "reason": "EIO"}),
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        admin.get(&format!("/machines/{mac}")).json()["flash_progress"],
        json!(null)
    );
    // Upstream's spelling; the old one still filters.
    for kind in ["machine.flash_failed", "machine.flash.failed"] {
        let ev = admin
            .get(&format!("/events?kind={kind}&subject_id={mac}"))
            .json();
        assert_eq!(ev["events"][0]["kind"], "machine.flash_failed");
        assert_eq!(
            ev["events"][0]["details"],
            json!({"stage": "writing", "reason": "EIO"})
        );
    }
    assert_eq!(
        c.request("POST", &format!("/pxe/{mac}/done"), &[], None)
            .status,
        204
    );
    let metrics = c.get("/metrics").body;
    for line in [
        "bty_flashes_done_total 1",
        "bty_flashes_failed_total 1",
        "bty_pxe_contacts_total 1",
        "bty_machines{boot_mode=\"bty-inventory\"} 1",
        // 65 disks, unknown keys, an over-long serial (an oversized lshw is dropped, 204).
        "bty_http_requests_total{route=\"/pxe/{mac}/inventory\",status=\"422\"} 3",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
}

#[test]
fn live_updates_arrive_within_a_second() {
    let s = Server::start();
    let admin = s.signed_in("bty-lab");
    assert_eq!(s.client().get("/events/machines").status, 401);
    let host = s.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "GET /events/machines HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\nAccept: text/event-stream\r\n\r\n",
        admin.cookie.as_deref().unwrap()
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // Until the hello event: the subscription is live.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("event: hello") {
            break;
        }
    }
    let started = Instant::now();
    s.client().get("/pxe/52:54:00:00:08:01");
    let mut got = None;
    while started.elapsed() < Duration::from_secs(5) {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.starts_with("data: ") && line.contains("52:54:00:00:08:01") {
            got = Some(started.elapsed());
            break;
        }
    }
    let took = got.expect("no machine event");
    assert!(line.contains("\"discovered\":true"), "{line}");
    // Generous for a loaded CI machine; typically a few milliseconds.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_thousand_first_contacts_at_once() {
    // One address creating a thousand machines in a second is a storm the creation rate
    // limit exists for; lifted here to test that discovery is race-free.
    let s = Server::start_with(&[("BTY_LIMITS_DISCOVER_PER_MINUTE", "100000")]);
    let base = s.base.clone();
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut bad = Vec::new();
                for i in 0..20 {
                    let n = t * 20 + i;
                    let url = format!("{base}/pxe/02:00:00:00:{:02x}:{:02x}", n / 256, n % 256);
                    match agent.get(&url).call() {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => bad.push(format!("{url}: {}", r.status())),
                        Err(e) => bad.push(format!("{url}: {e}")),
                    }
                }
                bad
            })
        })
        .collect();
    let bad: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        bad.is_empty(),
        "{} errors, first: {:?}",
        bad.len(),
        bad.first()
    );
    let mut admin = s.signed_in("bty-lab");
    assert_eq!(
        admin.get("/machines").json().as_array().unwrap().len(),
        1000
    );
    let mut discovered = 0;
    let mut before = String::new();
    loop {
        let page = admin
            .get(&format!(
                "/events?kind=machine.discovered&limit=500{before}"
            ))
            .json()["events"]
            .clone();
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        discovered += page.len();
        before = format!("&before_id={}", page.last().unwrap()["id"]);
    }
    assert_eq!(discovered, 1000);
    // The same MACs again: no new machines, no new discoveries.
    let mut c = s.client();
    c.get("/pxe/02:00:00:00:00:00");
    assert_eq!(
        admin.get("/machines").json().as_array().unwrap().len(),
        1000
    );
}

#[test]
fn the_status_route_of_upstream_0_77() {
    let s = Server::start();
    let mut c = s.client();
    let mut admin = s.signed_in("bty-lab");
    let mac = "52:54:00:77:00:01";
    // Unknown machine: 404 with upstream's text (agents tell it from a missing route by it).
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/status"),
        &json!({"status": "done"}),
    );
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no machine record"), "{}", r.body);
    assert_eq!(c.get(&format!("/pxe/{mac}/plan")).status, 200);
    // Exactly upstream's model: unknown keys or values, an over-long reason → 422.
    for bad in [
        json!({"status": "done", "stage": "writing"}),
        json!({"status": "finished"}),
        json!({"reason": "x"}),
        json!({"status": "failed", "reason": "é".repeat(501)}),
        json!(["done"]),
    ] {
        let r = c.json("POST", &format!("/pxe/{mac}/status"), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    // 500 characters (multi-byte) are accepted and recorded whole.
    let reason = format!("write: {}", "é".repeat(493));
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/status"),
        &json!({"status": "failed", "reason": reason}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let m = admin.get(&format!("/machines/{mac}")).json();
    assert!(m["last_failed_at"].is_string(), "{m}");
    let ev = admin
        .get(&format!(
            "/events?kind=machine.flash_failed&subject_id={mac}"
        ))
        .json();
    assert_eq!(ev["events"][0]["details"]["reason"], json!(reason));
    let r = c.json(
        "POST",
        &format!("/pxe/{mac}/status"),
        &json!({"status": "done"}),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(admin.get(&format!("/machines/{mac}")).json()["last_flashed_at"].is_string());
}
