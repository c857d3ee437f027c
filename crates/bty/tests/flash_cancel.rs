//! Ctrl-C during a flash: the source is a FIFO the test feeds by hand, so the flash is caught
//! mid-way without depending on timing; SIGINT must stop it, wipe the target's first and last
//! MiB, and exit 1 — even though the source has stalled.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn ctrl_c_mid_flash_wipes_the_target_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("image.fifo");
    sh(&format!("mkfifo '{}'", fifo.display()));
    let dev = LoopDev::new(16 * MIB, 41);

    let mut child = Command::new(bty_bin())
        .arg("flash")
        .arg(&fifo)
        .arg(&dev.path)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Feed 10 MiB of a raw image and keep the FIFO open: the flash stalls mid-way.
    let mut feeder = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    feeder.write_all(&random_bytes(10 * MIB, 42)).unwrap();

    // Wait until the writer reports more than the held-back first MiB handled.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut written = 0;
    while written < 4 * MIB as u64 {
        assert!(Instant::now() < deadline, "no progress from bty");
        let line = lines.next().expect("bty exited early").unwrap();
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        if doc["type"] == "progress" {
            written = doc["bytes_written"].as_u64().unwrap_or(0);
        }
    }
    // Bytes past the first MiB really are on the device now.
    assert!(dev.read(MIB as u64, MIB).iter().any(|&b| b != 0));

    sh(&format!("kill -INT {}", child.id()));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    drop(feeder);
    assert_eq!(
        status.code(),
        Some(1),
        "cancelled after writing began; output: {rest:?}"
    );
    let last: serde_json::Value =
        serde_json::from_str(rest.last().expect("an error document")).unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["target_wiped"], true);
    assert!(
        last["message"].as_str().unwrap_or("").contains("cancelled"),
        "{last}"
    );
    assert!(dev.read(0, MIB).iter().all(|&b| b == 0), "first MiB wiped");
    assert!(
        dev.read((15 * MIB) as u64, MIB).iter().all(|&b| b == 0),
        "last MiB wiped"
    );
}
