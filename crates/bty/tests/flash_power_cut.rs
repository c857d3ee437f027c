//! A flash killed with SIGKILL (as a power cut, the OOM killer or a PDU reboot would stop it)
//! after image data reached the target must leave nothing bootable: no `55 AA` boot signature,
//! no `EFI PART` header at LBA 1, at the disk's last LBA, or where the old image's primary header
//! said its backup was. The source is a FIFO fed by hand and left open, so the flash is caught
//! mid-way without depending on timing. Targets: a loop device and a regular file, each holding
//! an old GPT image made by `sfdisk`; new images smaller than the target and exactly its size.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TARGET: usize = 32 * MIB;
const OLD_IMAGE: usize = 12 * MIB;

/// A GPT disk image of `len` bytes: random contents, then `sfdisk`'s protective MBR, primary
/// and backup tables, and one partition.
fn gpt_image(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let path = dir.join(name);
    write(&path, &random_bytes(len, seed));
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sfdisk (./run-tests installs fdisk)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: gpt\n,4M,L\n")
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    std::fs::read(&path).unwrap()
}

fn alternate_lba(image: &[u8]) -> u64 {
    assert_eq!(&image[512..520], b"EFI PART", "sfdisk made no GPT");
    u64::from_le_bytes(image[512 + 32..512 + 40].try_into().unwrap())
}

/// The target as a previous flash left it: an old GPT image at the start, and the backup
/// header of an older same-size image at the last LBA.
fn old_layout(path: &Path, old: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(old, 0).unwrap();
    let last = (TARGET - 512) as u64;
    f.write_all_at(&old[old.len() - 512..], last).unwrap();
    f.sync_all().unwrap();
}

fn read_at(path: &Path, off: usize, len: usize) -> Vec<u8> {
    let _ = Command::new("blockdev")
        .arg("--flushbufs")
        .arg(path)
        .stderr(Stdio::null())
        .status();
    read_range(path, off as u64, len)
}

/// Flash `new` from a FIFO fed with its first `feed` bytes (left open), wait until the writer
/// has received nearly all of them, check data reached the target, SIGKILL it, and check nothing bootable
/// is left.
fn killed_mid_flash(target: &Path, old: &[u8], new: &[u8], feed: usize, what: &str) {
    let old_alt = alternate_lba(old) as usize * 512;
    assert!(
        old_alt > MIB && old_alt < TARGET - MIB,
        "{what}: test setup"
    );
    old_layout(target, old);
    assert_eq!(&read_at(target, 510, 2), &[0x55, 0xAA], "{what}: setup");
    assert_eq!(&read_at(target, old_alt, 8), b"EFI PART", "{what}: setup");
    assert_eq!(
        &read_at(target, TARGET - 512, 8),
        b"EFI PART",
        "{what}: setup"
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("image.fifo");
    sh(&format!("mkfifo '{}'", fifo.display()));
    let mut child = Command::new(bty_bin())
        .arg("flash")
        .arg(&fifo)
        .arg(target)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut feeder = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    feeder.write_all(&new[..feed]).unwrap();

    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The decoder hands on whole 4 MiB buffers: the last partial one stays with it.
    let mut received = 0;
    while (received as usize) + 4 * MIB < feed {
        assert!(Instant::now() < deadline, "{what}: no progress from bty");
        let line = lines.next().expect("bty exited early").unwrap();
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        if doc["type"] == "progress" {
            received = doc["bytes_written"].as_u64().unwrap_or(0);
        }
    }
    // New data is on the target: everything but the newest MiB of what was fed.
    let mid = 2 * MIB;
    let len = received as usize - MIB - mid;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_at(target, mid, len) != new[mid..mid + len] {
        assert!(
            Instant::now() < deadline,
            "{what}: data never reached the target"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(feeder);

    let mbr = read_at(target, 0, 512);
    assert_ne!(
        &mbr[510..512],
        &[0x55, 0xAA],
        "{what}: a boot signature survived"
    );
    for (name, at) in [
        ("LBA 1", 512),
        ("the last LBA", TARGET - 512),
        ("the old backup header", old_alt),
    ] {
        assert_ne!(
            &read_at(target, at, 8),
            b"EFI PART",
            "{what}: a GPT header survived at {name}"
        );
    }
    // A same-size image's own backup header (at the last LBA) is held back with its last MiB.
    if new.len() == TARGET {
        assert_eq!(&new[TARGET - 512..TARGET - 504], b"EFI PART");
    }
}

fn scenarios(target: &Path, kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let old = gpt_image(dir.path(), "old.img", OLD_IMAGE, 1);
    let smaller = gpt_image(dir.path(), "small.img", 20 * MIB, 2);
    killed_mid_flash(
        target,
        &old,
        &smaller,
        14 * MIB,
        &format!("{kind}, smaller image"),
    );
    // The whole same-size image is fed; only the missing end of the stream holds it back.
    let same = gpt_image(dir.path(), "same.img", TARGET, 3);
    killed_mid_flash(
        target,
        &old,
        &same,
        TARGET,
        &format!("{kind}, same-size image"),
    );
}

#[test]
fn sigkill_mid_flash_leaves_no_bootable_layout_on_a_loop_device() {
    let dev = LoopDev::new(TARGET, 5);
    scenarios(&dev.path, "loop device");
}

#[test]
fn sigkill_mid_flash_leaves_no_bootable_layout_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.img");
    write(&file, &random_bytes(TARGET, 6));
    scenarios(&file, "file");
}
