//! What an unauthenticated LAN host can make bty-web do over the PXE routes and TFTP, on
//! loopback (127.0.0.2 stands for a second host): new machines capped and rate-limited per
//! address, oversized lshw dropped with the disks kept, inventory posts per MAC limited,
//! repeated contacts folded into one event, reports from an address other than the arming one
//! flagged (refused under strict_reports), live UI renders bounded under a contact storm, and
//! unanswered TFTP requests bounded in retries, in number and in files held.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Server, http_from, metric};
use serde_json::json;

const KERNEL: &str = "bty-netboot-x86_64.vmlinuz";

/// A GET from the local address `from` (a second host on loopback).
fn get_from(from: &str, s: &Server, path: &str) -> (u16, String) {
    http_from(from, s.addr(), "GET", path, &[], b"")
}

/// A JSON post from the local address `from`.
fn post_from(from: &str, s: &Server, path: &str, json: &[u8]) -> (u16, String) {
    let h = [("Content-Type", "application/json")];
    http_from(from, s.addr(), "POST", path, &h, json)
}

fn mac(n: u32) -> String {
    format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        n >> 16,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

#[test]
fn unknown_clients_are_capped_and_rate_limited() {
    let s = Server::start_with(&[
        ("BTY_LIMITS_MAX_DISCOVERED", "8"),
        ("BTY_LIMITS_DISCOVER_PER_MINUTE", "5"),
    ]);
    let mut recorded = 0;
    for n in 0..8 {
        let (code, body) = get_from("127.0.0.1", &s, &format!("/pxe/{}", mac(n)));
        assert_eq!(code, 200);
        if !body.contains("not recording new machines") {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 5, "5 a minute from one address");
    // Another address has its own rate, until the cap on unknown machines is reached.
    for n in 100..106 {
        get_from("127.0.0.2", &s, &format!("/pxe/{}", mac(n)));
    }
    let mut admin = s.signed_in("bty-lab");
    assert_eq!(admin.get("/machines").json().as_array().unwrap().len(), 8);
    let (code, _) = get_from("127.0.0.3", &s, &format!("/pxe/{}/plan", mac(200)));
    assert_eq!(code, 429, "plans for unrecorded machines wait");
    // Known machines are still served; the refusals cost one event, not one each.
    let (_, body) = get_from("127.0.0.1", &s, &format!("/pxe/{}", mac(0)));
    assert!(!body.contains("not recording"), "{body}");
    assert_eq!(admin.event_kinds("kind=pxe.discovery.refused").len(), 1);
    let dash = admin.get("/ui/dashboard").body;
    assert!(
        dash.contains("max_discovered"),
        "the dashboard warns near the cap"
    );
    // A machine the operator claims no longer counts against the cap.
    let r = admin.json(
        "PUT",
        &format!("/machines/{}", mac(0)),
        &json!({"boot_mode": "ipxe-exit"}),
    );
    assert!(r.status < 300, "{}", r.body);
    // (the count of discovered machines is trusted for a second)
    std::thread::sleep(Duration::from_millis(1100));
    let (_, body) = get_from("127.0.0.4", &s, &format!("/pxe/{}", mac(300)));
    assert!(!body.contains("not recording"), "{body}");
}

#[test]
fn inventory_lshw_and_contact_events_are_bounded() {
    let s = Server::start();
    let mut c = s.client();
    let m = mac(1);
    c.get(&format!("/pxe/{m}"));
    // An lshw over the cap (1 MiB by default) is dropped; the disks are kept.
    let big = json!({"disks": [{"path": "/dev/sda", "serial": "REAL-1"}], "lshw": {"blob": "x".repeat(2 << 20)}});
    assert_eq!(
        c.json("POST", &format!("/pxe/{m}/inventory"), &big).status,
        204
    );
    let mut admin = s.signed_in("bty-lab");
    let got = admin.get(&format!("/machines/{m}")).json();
    assert_eq!(got["known_disks"][0]["serial"], "REAL-1");
    assert_eq!(admin.get(&format!("/machines/{m}/lshw.json")).status, 404);
    let ev = admin
        .get(&format!("/events?kind=machine.inventory&subject_id={m}"))
        .json();
    assert!(
        ev["events"][0]["details"]["lshw_dropped_bytes"]
            .as_u64()
            .unwrap()
            > 2 << 20
    );
    // Inventory posts per MAC are limited (upstream's agent posts twice per boot).
    let small = json!({"disks": []});
    let codes: Vec<u16> = (0..8)
        .map(|_| {
            c.json("POST", &format!("/pxe/{m}/inventory"), &small)
                .status
        })
        .collect();
    assert_eq!(&codes[..5], &[204; 5], "{codes:?}");
    assert_eq!(codes[7], 429, "{codes:?}");
    // A machine PXE-booting in a loop costs one event row, with the count.
    let m2 = mac(2);
    for _ in 0..6 {
        c.get(&format!("/pxe/{m2}"));
    }
    let ev = admin
        .get(&format!("/events?kind=netboot.pxe.offered&subject_id={m2}"))
        .json();
    let list = ev["events"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{ev}");
    assert_eq!(list[0]["details"]["repeats"], 6);
}

/// A machine in bty-inventory mode with its cycle armed from 127.0.0.1.
fn armed(s: &Server, m: &str) {
    std::fs::write(s.state_dir().join("boot").join(KERNEL), vec![1u8; 4096]).unwrap();
    let (code, _) = get_from("127.0.0.1", s, &format!("/pxe/{m}"));
    assert_eq!(code, 200);
    let (code, _) = get_from("127.0.0.1", s, &format!("/boot/{KERNEL}?mac={m}"));
    assert_eq!(code, 200);
}

#[test]
fn reports_from_another_address_are_flagged() {
    let s = Server::start();
    let m = mac(7);
    armed(&s, m.as_str());
    // A stranger posts inventory and done for the machine: accepted (leases can differ), but
    // recorded and shown.
    let (code, _) = post_from(
        "127.0.0.2",
        &s,
        &format!("/pxe/{m}/inventory"),
        br#"{"disks":[{"path":"/dev/sda","serial":"LIE"}]}"#,
    );
    assert_eq!(code, 204);
    let (code, _) = post_from("127.0.0.2", &s, &format!("/pxe/{m}/done"), b"");
    assert_eq!(code, 204);
    let mut admin = s.signed_in("bty-lab");
    let kinds = admin.event_kinds(&format!("kind=pxe.report.suspect&subject_id={m}"));
    assert_eq!(kinds.len(), 2, "inventory and done: {kinds:?}");
    let page = admin.get(&format!("/ui/machines/{m}")).body;
    assert!(
        page.contains("report-warning") && page.contains("127.0.0.2"),
        "{page}"
    );
    let dash = admin.get("/ui/dashboard").body;
    assert!(dash.contains("lan-warnings") && dash.contains(&m), "{dash}");
    // The operator saving the machine clears the warning.
    let r = admin.json(
        "PUT",
        &format!("/machines/{m}"),
        &json!({"boot_mode": "bty-inventory"}),
    );
    assert!(r.status < 300, "{}", r.body);
    assert!(
        !admin
            .get(&format!("/ui/machines/{m}"))
            .body
            .contains("report-warning")
    );
    // Armed again from a second address in one cycle: flagged too.
    let m2 = mac(8);
    armed(&s, m2.as_str());
    get_from("127.0.0.2", &s, &format!("/boot/{KERNEL}?mac={m2}"));
    assert_eq!(
        admin
            .event_kinds(&format!("kind=pxe.report.suspect&subject_id={m2}"))
            .len(),
        1
    );
}

#[test]
fn strict_reports_refuse_other_addresses() {
    let s = Server::start_with(&[("BTY_PXE_STRICT_REPORTS", "true")]);
    let m = mac(9);
    armed(&s, m.as_str());
    let (code, body) = post_from("127.0.0.2", &s, &format!("/pxe/{m}/done"), b"");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("strict_reports") && body.contains("127.0.0.1"),
        "{body}"
    );
    let (code, _) = post_from(
        "127.0.0.2",
        &s,
        &format!("/pxe/{m}/progress"),
        br#"{"bytes_done":1}"#,
    );
    assert_eq!(code, 403);
    // The arming address is still heard.
    let (code, _) = post_from("127.0.0.1", &s, &format!("/pxe/{m}/done"), b"");
    assert_eq!(code, 204);
    let mut admin = s.signed_in("bty-lab");
    assert_eq!(
        admin
            .event_kinds(&format!("kind=machine.flashed&subject_id={m}"))
            .len(),
        1
    );
}

#[test]
fn live_renders_are_bounded_under_a_contact_storm() {
    let s = Server::start_with(&[("BTY_LIMITS_DISCOVER_PER_MINUTE", "100000")]);
    // 3,000 machines, created as unknown clients would.
    let base = s.base.clone();
    let makers: Vec<_> = (0..10u32)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for i in 0..300 {
                    let _ = agent
                        .get(&format!("{base}/pxe/{}", mac(t * 300 + i)))
                        .call();
                }
            })
        })
        .collect();
    for h in makers {
        h.join().unwrap();
    }
    let mut admin = s.signed_in("bty-lab");
    assert_eq!(
        admin.get("/machines").json().as_array().unwrap().len(),
        3000
    );
    let cookie = admin.cookie.clone().unwrap();
    // Five open machine tables.
    let streams: Vec<_> = (0..5)
        .map(|_| {
            use std::io::Write;
            let mut t = std::net::TcpStream::connect(s.addr()).unwrap();
            write!(
                t,
                "GET /ui/live/machines HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
            )
            .unwrap();
            let reader = t.try_clone().unwrap();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut r = reader;
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            });
            t
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let renders =
        |c: &mut common::Client| metric(&c.get("/metrics").body, "bty_ui_live_renders_total");
    let before = renders(&mut admin);
    assert!(
        before >= 5,
        "each stream rendered once on connect ({before})"
    );
    // 50 contacts a second for 4 seconds.
    let start = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for i in 0..200u32 {
        let due = start + Duration::from_millis(20 * u64::from(i));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = agent
            .get(&format!("{}/pxe/{}", s.base, mac(i * 13 % 3000)))
            .call();
    }
    std::thread::sleep(Duration::from_secs(1));
    let elapsed = start.elapsed().as_secs_f64();
    let during = renders(&mut admin) - before;
    // At most one render per stream per 300 ms, plus the one in flight at each end.
    let bound = (5.0 * (elapsed / 0.3 + 2.0)) as u64;
    eprintln!(
        "200 contacts in {elapsed:.1} s with 5 live tables of 3,000 machines: {during} renders (bound {bound})"
    );
    assert!(during <= bound, "{during} renders > {bound}");
    assert!(during >= 5, "the streams stayed live ({during})");
    drop(streams);
}

/// A TFTP read request for `name` with options.
fn rrq(name: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, 1];
    for part in [name, "octet"] {
        p.extend_from_slice(part.as_bytes());
        p.push(0);
    }
    for (k, v) in opts {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

#[test]
fn unanswered_tftp_requests_are_bounded() {
    let s = Server::start_with(&[
        ("BTY_TFTP_ENABLED", "true"),
        ("BTY_TFTP_BIND", "127.0.0.1:0"),
        ("BTY_LIMITS_TFTP_PER_CLIENT", "3"),
    ]);
    let port = s.tftp_port();
    let boot = s.state_dir().join("boot");
    std::fs::write(boot.join("undionly.kpxe"), vec![7u8; 70_000]).unwrap();
    let server: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // Three requests never acknowledged (one asks for a 255 s timeout).
    let socks: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks[0]
        .send_to(
            &rrq(
                "undionly.kpxe",
                &[("timeout", "255"), ("tsize", "0"), ("windowsize", "64")],
            ),
            server,
        )
        .unwrap();
    socks[1]
        .send_to(&rrq("undionly.kpxe", &[]), server)
        .unwrap();
    socks[2]
        .send_to(&rrq("undionly.kpxe", &[]), server)
        .unwrap();
    // The client's timeout is declined and its windowsize capped: the OACK carries tsize, a
    // windowsize of 8 and no timeout.
    socks[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = socks[0].recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 6], "an OACK");
    let oack = String::from_utf8_lossy(&buf[2..n]).to_string();
    assert!(
        oack.contains("tsize") && !oack.contains("timeout"),
        "{oack:?}"
    );
    assert!(
        oack.contains("windowsize\u{0}8\u{0}"),
        "windowsize capped: {oack:?}"
    );
    // A fourth from the same address is refused: the per-address cap.
    let extra = UdpSocket::bind("127.0.0.1:0").unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    extra.send_to(&rrq("undionly.kpxe", &[]), server).unwrap();
    let (n, _) = extra.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 5], "an error packet");
    assert!(String::from_utf8_lossy(&buf[4..n]).contains("busy"));
    // No transfer holds the file open while it waits.
    let held: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|p| p.ends_with("undionly.kpxe"))
        .collect();
    assert!(held.is_empty(), "{held:?}");
    // A block is sent a few times, then the transfer is dropped.
    socks[1]
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let mut sends = 0;
    let mut packets = 0;
    while socks[1].recv_from(&mut buf).is_ok() {
        packets += 1;
        assert!(packets < 10, "too many retransmissions");
        // Data blocks; the transfer ends with an error packet saying it gave up.
        if buf[..2] == [0, 3] {
            sends += 1;
        }
    }
    assert!((2..=5).contains(&sends), "{sends} sends of the first block");
    // Their slots are free again: a new request is answered with data.
    std::thread::sleep(Duration::from_secs(2));
    extra.send_to(&rrq("undionly.kpxe", &[]), server).unwrap();
    let (_, _) = extra.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 3], "a data block");
}
