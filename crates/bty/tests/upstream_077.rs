//! Cross-tests with upstream's newest release, PyPI's `bty-lab[all]==0.77.2` (a venv cached
//! outside the clone, see `tests/upstream/venv.sh`), each server on 127.0.0.1 with fresh state:
//! - upstream's agent (`bty --server --mac`, inventory plan, `systemctl reboot` faked) against
//!   our bty-web: the inventory is recorded;
//! - our agent against upstream's bty-web: the inventory is recorded (without `arch`, which
//!   upstream refuses, after one 422);
//! - our agent's terminal reports against upstream's `/status`: 0.77.2 serves flash plans only
//!   for images its withcache sidecar holds, so the agent's report path is exercised on its own —
//!   the plan upstream serves is replaced (debug-only `BTY_TEST_PLAN`) by a flash of a loopback
//!   image onto a loop device; the done and the failed report must be recorded by upstream.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::server::TestServer;
use common::web::{Web, upstream_venv};
use common::{LoopDev, MIB, compress, sample_image, write};
use serde_json::json;

const UPSTREAM: &str = "0.77.2";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A folder with a `systemctl` that does nothing: upstream's agent reboots through it.
fn fake_systemctl() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("systemctl");
    std::fs::write(&p, "#!/bin/sh\necho \"systemctl $*\" >&2\nexit 0\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn our_agent(base: &str, mac: &str, serials: &str, plan: Option<&serde_json::Value>) -> Output {
    let mut cmd = Command::new(common::bty_bin());
    cmd.args([
        "agent",
        "--server",
        base,
        "--mac",
        mac,
        "--no-reboot",
        "--retries",
        "0",
    ])
    .env("BTY_TEST_DISK_SERIALS", serials)
    .env("BTY_LOG", "warn")
    .stdin(std::process::Stdio::null());
    if let Some(p) = plan {
        cmd.env("BTY_TEST_PLAN", p.to_string());
    }
    cmd.output().unwrap()
}

fn machine(web: &Web, mac: &str) -> serde_json::Value {
    let (s, m) = web.call("GET", &format!("/machines/{mac}"), None);
    assert_eq!(s, 200, "{m}");
    m
}

#[test]
fn upstream_agent_posts_its_inventory_to_our_server() {
    let venv: PathBuf = upstream_venv(UPSTREAM);
    let web = Web::start(0);
    let mac = "52:54:00:77:10:01";
    let fake = fake_systemctl();
    let path = format!(
        "{}:{}:{}",
        fake.path().display(),
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // An unknown MAC is registered on /plan as bty-inventory, as upstream's server does.
    let out = Command::new(venv.join("bin/bty"))
        .args(["--server", &web.base, "--mac", mac])
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    let text = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("systemctl reboot"),
        "the reboot was not asked for: {text}"
    );
    let m = machine(&web, mac);
    assert!(
        m["known_disks_at"].is_string(),
        "inventory not recorded: {m}"
    );
    assert_eq!(m["boot_mode"], "bty-inventory");
    // Upstream's agent does not say the architecture: unknown, and binding is still allowed.
    assert!(m.get("arch").is_none_or(|a| a.is_null()), "{m}");
}

#[test]
fn our_agent_posts_its_inventory_to_upstream() {
    let up = Web::upstream(UPSTREAM);
    let mac = "52:54:00:77:10:02";
    let out = our_agent(&up.base, mac, "", None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("plan: inventory"), "{err}");
    assert!(err.contains("does not take the machine's arch"), "{err}");
    let m = machine(&up, mac);
    assert!(
        m["known_disks_at"].is_string(),
        "inventory not recorded: {m}"
    );
}

/// A zstd image on a loopback HTTP server; (URL, sha256 of the published file).
fn published(files: &TestServer, dir: &Path) -> (String, String) {
    use sha2::Digest;
    let raw = dir.join("img");
    write(&raw, &sample_image(2 * MIB, 77));
    let zst = compress("zstd", &raw);
    let sha = hex::encode(sha2::Sha256::digest(&zst));
    files.put("/up.img.zst", zst);
    (files.url("/up.img.zst"), sha)
}

#[test]
fn our_agents_done_and_failed_reach_upstreams_status_route() {
    let up = Web::upstream(UPSTREAM);
    let files = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, sha) = published(&files, dir.path());
    let disk = LoopDev::new(8 * MIB, 3);
    let serials = format!("{}=UP-077", disk.path.display());
    let mac = "52:54:00:77:10:03";
    let plan = |sha: &str| {
        json!({"mode": "flash", "image": url, "target_disk_serial": "UP-077",
               "name": "up.img.zst", "disk_image_sha": sha})
    };

    // done: /status accepts it (no fallback to /done, which 0.77.2 no longer has).
    let out = our_agent(&up.base, mac, &serials, Some(&plan(&sha)));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("reporting done failed"), "{err}");
    assert!(!err.contains("no status route"), "{err}");
    let m = machine(&up, mac);
    assert!(m["last_flashed_at"].is_string(), "done not recorded: {m}");

    // failed: a wrong digest; upstream records machine.flash_failed with the folded reason.
    let out = our_agent(&up.base, mac, &serials, Some(&plan(&"00".repeat(32))));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("FLASH FAILED while writing"), "{err}");
    let (s, ev) = up.call(
        "GET",
        &format!("/events?kind=machine.flash_failed&subject_id={mac}"),
        None,
    );
    assert_eq!(s, 200, "{ev}");
    let reason = ev["events"][0]["details"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.starts_with("writing: "), "{ev}");
    assert!(reason.chars().count() <= 500, "{reason}");
}
