//! The server-driven agent against a real bty-web on 127.0.0.1, with loop devices as disks
//! (given serials through the debug-only BTY_TEST_DISK_SERIALS): a flash plan, a wrong digest,
//! a missing and a duplicated serial, a server that comes up late, and `bty agent` reading the
//! kernel command line.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::server::TestServer;
use common::web::Web;
use common::{LoopDev, MIB, assert_same, compress, sample_image, write};
use serde_json::json;

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// `bty agent --server … --mac … --no-reboot EXTRA…`; with `upstream_flags`, upstream's
/// spelling `bty --server … --mac …` instead.
fn run_agent(
    web_base: &str,
    mac: &str,
    serials: &str,
    extra: &[&str],
    upstream_flags: bool,
) -> Output {
    let mut cmd = Command::new(common::bty_bin());
    if !upstream_flags {
        cmd.arg("agent");
    }
    cmd.args(["--server", web_base, "--mac", mac, "--no-reboot"])
        .args(extra)
        .env("BTY_TEST_DISK_SERIALS", serials)
        .env("BTY_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn agent(web_base: &str, mac: &str, serials: &str, extra: &[&str]) -> Output {
    run_agent(web_base, mac, serials, extra, false)
}

/// A zstd image served over HTTP; (image bytes, URL, sha256 of the published file).
fn published(server: &TestServer, len: usize, seed: u64) -> (Vec<u8>, String, String) {
    let image = sample_image(len, seed);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img");
    write(&raw, &image);
    let zst = compress("zstd", &raw);
    let sha = sha256_hex(&zst);
    server.put("/lab.img.zst", zst);
    (image, server.url("/lab.img.zst"), sha)
}

fn bind(web: &Web, mac: &str, url: &str, sha: &str, serial: &str) {
    let (s, e) = web.call(
        "POST",
        "/catalog/entries",
        Some(json!({"image_url": url, "sha256": sha})),
    );
    assert!(s == 201 || s == 409, "{s} {e}");
    let (_, list) = web.call("GET", "/catalog/entries", None);
    let r = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["src"] == url)
        .unwrap()["bty_image_ref"]
        .clone();
    let (s, m) = web.call(
        "PUT",
        &format!("/machines/{mac}"),
        Some(json!({"boot_mode": "bty-flash-once", "bty_image_ref": r, "target_disk_serial": serial})),
    );
    assert_eq!(s, 200, "{m}");
}

fn events(web: &Web, mac: &str, kind: &str) -> Vec<serde_json::Value> {
    let (_, e) = web.call(
        "GET",
        &format!("/events?subject_id={mac}&kind={kind}"),
        None,
    );
    e["events"].as_array().unwrap().clone()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_flash_plan_is_carried_out() {
    let files = TestServer::start();
    let (image, url, sha) = published(&files, 5 * MIB + 333, 3);
    let web = Web::start(0);
    let disk = LoopDev::new(16 * MIB, 4);
    let other = LoopDev::new(16 * MIB, 5);
    let before_other = other.read(0, other.size);
    let mac = "52:54:00:aa:00:01";
    bind(&web, mac, &url, &sha, "AGENT-S1");
    let serials = format!(
        "{}=AGENT-S1,{}=OTHER-S2",
        disk.path.display(),
        other.path.display()
    );
    let out = run_agent(&web.base, mac, &serials, &[], true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("published sha256 verified"),
        "{}",
        stderr(&out)
    );
    assert_same(&disk.read(0, image.len()), &image, "flashed disk");
    assert_same(&other.read(0, other.size), &before_other, "the other disk");
    let (_, m) = web.call("GET", &format!("/machines/{mac}"), None);
    assert!(m["last_flashed_at"].is_string(), "{m}");
    let serials_seen: Vec<&str> = m["known_disks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["serial"].as_str())
        .collect();
    assert!(serials_seen.contains(&"AGENT-S1") && serials_seen.contains(&"OTHER-S2"));
    assert_eq!(events(&web, mac, "machine.flashed").len(), 1);
    let metrics = web.metrics();
    let progress = metrics
        .lines()
        .find(|l| {
            l.starts_with("bty_http_requests_total{route=\"/pxe/{mac}/progress\",status=\"204\"}")
        })
        .unwrap_or_else(|| panic!("no progress reached the server:\n{metrics}"));
    assert!(!progress.ends_with(" 0"));
}

#[test]
fn a_wrong_digest_is_reported_and_the_disk_wiped() {
    let files = TestServer::start();
    let (_, url, _) = published(&files, 3 * MIB, 6);
    // The agent's own check: with bty-web's cache off, the wrong bytes reach the agent.
    let web = Web::start_with(0, &[("BTY_CACHE_ENABLED", "false")]);
    let disk = LoopDev::new(8 * MIB, 7);
    let mac = "52:54:00:aa:00:02";
    bind(&web, mac, &url, &"ab".repeat(32), "AGENT-S3");
    let out = agent(
        &web.base,
        mac,
        &format!("{}=AGENT-S3", disk.path.display()),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("FLASH FAILED"), "{}", stderr(&out));
    // Reported through /status: the stage is folded into the reason.
    let failed = events(&web, mac, "machine.flash_failed");
    assert_eq!(failed.len(), 3, "first attempt and two retries");
    assert!(
        failed[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("writing: "),
        "{failed:?}"
    );
    assert!(
        failed[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("wiped")
    );
    let after = disk.read(0, disk.size);
    assert!(after[..MIB].iter().all(|&b| b == 0), "first MiB wiped");
    assert!(
        after[disk.size - MIB..].iter().all(|&b| b == 0),
        "last MiB wiped"
    );
    assert!(events(&web, mac, "machine.flashed").is_empty());
    drop(web);

    // Through the cache (the default), the cache refuses the blob first (binding prefetched
    // it): the agent is refused or its transfer cut short, it reports the failure, and the disk
    // is either untouched or wiped at both ends — never a clean end of wrong bytes.
    let web = Web::start(0);
    let disk = LoopDev::new(8 * MIB, 17);
    let before = disk.read(0, disk.size);
    bind(&web, mac, &url, &"ab".repeat(32), "AGENT-S3");
    let out = agent(
        &web.base,
        mac,
        &format!("{}=AGENT-S3", disk.path.display()),
        &["--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(events(&web, mac, "machine.flash_failed").len(), 1);
    let (_, refused) = web.call("GET", "/events?kind=cache.fill_failed", None);
    let refused = refused["events"].as_array().unwrap().clone();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["summary"]
            .as_str()
            .unwrap()
            .contains("not the expected"),
        "{refused:?}"
    );
    let after = disk.read(0, disk.size);
    let wiped =
        after[..MIB].iter().all(|&b| b == 0) && after[disk.size - MIB..].iter().all(|&b| b == 0);
    assert!(
        after == before || wiped,
        "the disk was written but not wiped"
    );
    assert!(events(&web, mac, "machine.flashed").is_empty());
}

#[test]
fn missing_and_duplicated_serials_are_refused() {
    let files = TestServer::start();
    let (_, url, sha) = published(&files, 2 * MIB, 8);
    let web = Web::start(0);
    let a = LoopDev::new(8 * MIB, 9);
    let b = LoopDev::new(8 * MIB, 10);
    let (before_a, before_b) = (a.read(0, a.size), b.read(0, b.size));

    let mac = "52:54:00:aa:00:03";
    bind(&web, mac, &url, &sha, "NOT-THERE");
    let serials = format!("{}=S-A,{}=S-B", a.path.display(), b.path.display());
    let out = agent(&web.base, mac, &serials, &["--retries", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no disk has serial \"NOT-THERE\"")
            && err.contains("S-A")
            && err.contains("S-B"),
        "{err}"
    );
    let reason = events(&web, mac, "machine.flash_failed")[0]["details"]["reason"].clone();
    assert!(
        reason.as_str().unwrap().starts_with("finding the disk: "),
        "{reason}"
    );

    let mac = "52:54:00:aa:00:04";
    bind(&web, mac, &url, &sha, "TWIN");
    let serials = format!("{}=TWIN,{}=TWIN", a.path.display(), b.path.display());
    let out = agent(&web.base, mac, &serials, &["--retries", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("2 disks have serial \"TWIN\"") && err.contains(&a.path.display().to_string()),
        "{err}"
    );
    assert_same(&a.read(0, a.size), &before_a, "disk a untouched");
    assert_same(&b.read(0, b.size), &before_b, "disk b untouched");
}

#[test]
fn the_server_coming_up_late_and_an_inventory_plan() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mac = "52:54:00:aa:00:05";
    let disk = LoopDev::new(4 * MIB, 11);
    let serials = format!("{}=LATE-S1", disk.path.display());
    let base = format!("http://127.0.0.1:{port}");
    let handle = {
        let (base, serials) = (base.clone(), serials.clone());
        std::thread::spawn(move || agent(&base, mac, &serials, &["--retries", "0"]))
    };
    std::thread::sleep(Duration::from_secs(2));
    let web = Web::start(port);
    let out = handle.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
    assert!(stderr(&out).contains("plan: inventory"), "{}", stderr(&out));
    let (_, m) = web.call("GET", &format!("/machines/{mac}"), None);
    assert_eq!(m["boot_mode"], "bty-inventory");
    assert_eq!(
        m["known_disks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["serial"] == "LATE-S1")
            .count(),
        1
    );
    assert_eq!(events(&web, mac, "machine.inventory").len(), 1);
}

#[test]
fn bty_agent_reads_the_kernel_command_line() {
    let web = Web::start(0);
    let mac = "52:54:00:aa:00:06";
    let (s, _) = web.call(
        "PUT",
        &format!("/machines/{mac}"),
        Some(json!({"boot_mode": "ipxe-exit"})),
    );
    assert_eq!(s, 200);
    let out = Command::new(common::bty_bin())
        .args(["agent", "--no-reboot"])
        .env(
            "BTY_TEST_CMDLINE",
            format!("console=ttyS0 bty.server={} bty.mac={mac}", web.base),
        )
        .env("BTY_TEST_DISK_SERIALS", "")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("plan: exit"), "{}", stderr(&out));
    let out = Command::new(common::bty_bin())
        .args(["agent", "--no-reboot"])
        .env("BTY_TEST_CMDLINE", "quiet")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Upstream 0.47 has no `failed` or `progress` routes: the agent notes the 404 and carries on.
#[test]
fn an_upstream_server_without_failed_or_progress_routes() {
    let files = TestServer::start();
    let (_, url, _) = published(&files, MIB, 12);
    let mac = "52:54:00:aa:00:07";
    // A stand-in for upstream: inventory and plan answer; failed and progress are 404.
    files.put(&format!("/pxe/{mac}/inventory"), Vec::new());
    let plan = json!({"mode": "flash", "image": url, "target_disk_serial": "UP-S1", "name": "lab.img.zst",
                      "disk_image_sha": "00".repeat(32)});
    files.put(&format!("/pxe/{mac}/plan"), plan.to_string().into_bytes());
    let disk = LoopDev::new(4 * MIB, 13);
    let out = agent(
        &files.url(""),
        mac,
        &format!("{}=UP-S1", disk.path.display()),
        &["--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("FLASH FAILED while writing"), "{err}");
    assert!(err.contains("has no /failed route"), "{err}");
}

/// What the stand-in saw: (path, status answered, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, u16, String)>>>;

/// A stand-in server that records what the agent posts: 422 for progress carrying the
/// download side (as bty-web before it did), 204 for other reports, `plan` for the plan.
fn recording_server(plan: serde_json::Value) -> (String, Seen) {
    use std::io::{Read, Write};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head, body) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(at) = text.find("\r\n\r\n") {
                    let head = text[..at].to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= at + 4 + len {
                        break (head, text[at + 4..at + 4 + len].to_string());
                    }
                }
            };
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, reply) = if path.ends_with("/plan") {
                (200, plan.to_string())
            } else if path.ends_with("/progress") && body.contains("bytes_read") {
                (
                    422,
                    r#"{"detail":"extra fields not permitted"}"#.to_string(),
                )
            } else {
                (204, String::new())
            };
            log.lock().unwrap().push((path, status, body));
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (base, seen)
}

#[test]
fn progress_without_the_download_side_after_one_refusal() {
    let files = TestServer::start();
    let (image, url, sha) = published(&files, 3 * MIB, 21);
    let mac = "52:54:00:aa:00:21";
    let plan = json!({"mode": "flash", "image": url, "target_disk_serial": "REC-S1",
                      "name": "lab.img.zst", "disk_image_sha": sha});
    let (base, seen) = recording_server(plan);
    let disk = LoopDev::new(8 * MIB, 22);
    let out = agent(&base, mac, &format!("{}=REC-S1", disk.path.display()), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&disk.read(0, image.len()), &image, "the image");
    let seen = seen.lock().unwrap().clone();
    let progress: Vec<&(String, u16, String)> = seen
        .iter()
        .filter(|(p, _, _)| p.ends_with("/progress"))
        .collect();
    let refused = progress.iter().filter(|(_, s, _)| *s == 422).count();
    assert_eq!(refused, 1, "one refusal, then lean reports: {progress:?}");
    assert!(
        progress
            .iter()
            .any(|(_, s, b)| *s == 204 && !b.contains("bytes_read")),
        "{progress:?}"
    );
    // The end of the flash went to /status (this server has it), not /done.
    let status: Vec<&(String, u16, String)> = seen
        .iter()
        .filter(|(p, _, _)| p.ends_with("/status"))
        .collect();
    assert_eq!(status.len(), 1, "{seen:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&status[0].2).unwrap(),
        json!({"status": "done"})
    );
    assert!(!seen.iter().any(|(p, _, _)| p.ends_with("/done")));
    // The inventory carried the architecture (this server took it).
    let inv = seen
        .iter()
        .find(|(p, _, _)| p.ends_with("/inventory"))
        .unwrap();
    assert!(inv.2.contains("\"arch\""), "{}", inv.2);
}

#[test]
fn a_plan_for_another_architecture_is_refused_before_writing() {
    let files = TestServer::start();
    let (_, url, sha) = published(&files, 2 * MIB, 23);
    let other = if cfg!(target_arch = "aarch64") {
        "x86_64"
    } else {
        "aarch64"
    };
    let plan = json!({"mode": "flash", "image": url, "target_disk_serial": "ARCH-S1",
                      "name": "lab.img.zst", "disk_image_sha": sha, "arch": other});
    let (base, seen) = recording_server(plan);
    let disk = LoopDev::new(8 * MIB, 24);
    let before = disk.read(0, disk.size);
    let out = agent(
        &base,
        "52:54:00:aa:00:23",
        &format!("{}=ARCH-S1", disk.path.display()),
        &["--retries", "0"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("FLASH REFUSED") && err.contains(other),
        "{err}"
    );
    assert!(disk.read(0, disk.size) == before, "the disk was written");
    let seen = seen.lock().unwrap().clone();
    let status = seen
        .iter()
        .find(|(p, _, _)| p.ends_with("/status"))
        .expect("a failed report");
    let body: serde_json::Value = serde_json::from_str(&status.2).unwrap();
    assert_eq!(body["status"], "failed");
    assert!(body["reason"].as_str().unwrap().contains(other), "{body}");
}
