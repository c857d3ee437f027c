//! The UI in a real browser: Debian's headless Chromium driven by `browser/ui.mjs` (Node with
//! playwright-core, which drives the system Chromium; no browser is downloaded) against a fresh
//! bty-web. Screenshots of every page land in the target folder's `ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[test]
fn ui_scenarios_in_chromium() {
    let dir = browser_dir();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium package is needed (./run-tests installs it)"
    );
    if !dir.join("node_modules/playwright-core").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) is needed for the browser tests");
        assert!(st.success(), "npm ci in {}", dir.display());
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("ui-screenshots");
    let s = Server::start();
    let out = Command::new("node")
        .arg(dir.join("ui.mjs"))
        .env("BTY_URL", &s.base)
        .env("BTY_SHOTS", &shots)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser scenarios failed (screenshot of the failure in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    assert!(stdout.contains("ok: all browser scenarios passed"));
    for page in [
        "login",
        "dashboard",
        "machines",
        "machine",
        "images",
        "image-delete",
        "events",
        "netboot",
        "settings",
        "account",
        "machines-375",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "{page}.png");
    }
}
