//! `bty disks`: on a captured machine (the bty-disk workstation fixture) and on this machine's
//! loop devices — hidden kinds only with --all, unsafe disks with their reasons, and the same
//! verdict refusing `bty flash`.

mod common;

use std::process::Command;

use common::*;

fn fixture() -> String {
    format!(
        "{}/../bty-disk/tests/fixtures/workstation",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn disks(args: &[&str], sysroot: Option<&str>) -> Run {
    let mut cmd = Command::new(bty_bin());
    cmd.arg("disks").args(args);
    if let Some(r) = sysroot {
        cmd.env("BTY_TEST_SYSROOT", r);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_listing_shows_identity_and_verdicts() {
    let root = fixture();
    let run = disks(&[], Some(&root));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = &run.stdout;
    assert!(
        text.contains("/dev/sdc")
            && text.contains("CT500MX500SSD1")
            && text.contains("2117E59AB123"),
        "{text}"
    );
    assert!(
        text.contains("UNSAFE: holds the running system's root filesystem"),
        "{text}"
    );
    assert!(
        !text.contains("/dev/loop0") && !text.contains("/dev/zram0"),
        "hidden without --all: {text}"
    );
    let all = disks(&["--all"], Some(&root));
    assert!(
        all.stdout.contains("/dev/loop0") && all.stdout.contains("[zram (compressed RAM)]"),
        "{}",
        all.stdout
    );

    let json = disks(&["--all", "--json"], Some(&root));
    let doc = json.last_json();
    assert_eq!(doc["schema_version"], 1);
    let list = doc["disks"].as_array().unwrap();
    let sdc = list.iter().find(|d| d["name"] == "sdc").unwrap();
    assert_eq!(sdc["transport"], "sata");
    assert_eq!(sdc["unsafe_reasons"].as_array().unwrap().len(), 0);
    let sdb = list.iter().find(|d| d["name"] == "sdb").unwrap();
    assert_eq!(sdb["removable"], true);
    assert!(sdb["unsafe_reasons"].to_string().contains("live medium"));
}

#[test]
fn a_mounted_loop_device_is_listed_unsafe_and_cannot_be_flashed() {
    let dev = LoopDev::new(32 * MIB, 93);
    let name = dev.path.file_name().unwrap().to_str().unwrap().to_string();
    let run = disks(&["--all", "--json"], None);
    let doc = run.last_json();
    let entry = |doc: &serde_json::Value| {
        doc["disks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name.as_str())
            .cloned()
    };
    let before = entry(&doc).expect("the loop device is listed with --all");
    assert_eq!(before["transport"], "loop");
    assert_eq!(
        before["unsafe_reasons"].as_array().unwrap().len(),
        0,
        "{before}"
    );
    assert!(
        !disks(&[], None).stdout.contains(&format!("/dev/{name} ")),
        "loop devices are hidden by default"
    );

    sh(&format!("mkfs.ext4 -q -F '{}'", dev.path.display()));
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount '{}' '{}'",
        dev.path.display(),
        mnt.path().display()
    ));
    let after = entry(&disks(&["--all", "--json"], None).last_json()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    write(&src, &sample_image(MIB, 94));
    let flash = flash_yes(&src, &dev.path, &[]);
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert!(
        after["unsafe_reasons"]
            .to_string()
            .contains("is mounted at"),
        "{after}"
    );
    assert_eq!(flash.code, 2);
    assert!(flash.stderr.contains("is mounted at"), "{}", flash.stderr);
}

#[test]
fn the_device_holding_root_is_refused_as_a_target() {
    // Whatever block device "/" is mounted from (a whole disk here, a partition elsewhere),
    // `bty flash` refuses it before writing, even with --yes.
    let root_dev = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .and_then(|l| {
            l.split(" - ")
                .nth(1)
                .and_then(|r| r.split_whitespace().nth(1))
                .map(str::to_string)
        })
        .unwrap_or_default();
    if !root_dev.starts_with("/dev/") || !std::path::Path::new(&root_dev).exists() {
        return; // The root filesystem is not on a block device here (e.g. overlay).
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    write(&src, &sample_image(MIB, 95));
    let run = bty(["flash", src.to_str().unwrap(), &root_dev, "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}
