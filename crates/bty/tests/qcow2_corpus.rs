//! qcow2 images of every supported kind, made by the tests with `qemu-img` and `qemu-io`: the
//! bytes bty writes must equal `qemu-img convert -O raw` exactly, onto regular files and onto
//! loop devices pre-filled with random bytes.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const VIRTUAL: usize = 10 * MIB + 3 * 512;

/// The raw image every converted variant starts from.
fn base_raw(dir: &Path) -> PathBuf {
    let raw = dir.join("base.raw");
    if !raw.exists() {
        write(&raw, &sample_image(VIRTUAL, 61));
    }
    raw
}

/// Scripts that make one qcow2 variant at `$Q` (with `$RAW` the base image) in a shell.
const VARIANTS: &[(&str, &str)] = &[
    ("v3", "qemu-img convert -f raw -O qcow2 \"$RAW\" \"$Q\""),
    (
        "v2 (compat=0.10)",
        "qemu-img convert -f raw -O qcow2 -o compat=0.10 \"$RAW\" \"$Q\"",
    ),
    (
        "512-byte clusters",
        "qemu-img convert -f raw -O qcow2 -o cluster_size=512 \"$RAW\" \"$Q\"",
    ),
    (
        "2 MiB clusters",
        "qemu-img convert -f raw -O qcow2 -o cluster_size=2M \"$RAW\" \"$Q\"",
    ),
    (
        "zlib-compressed",
        "qemu-img convert -f raw -O qcow2 -c \"$RAW\" \"$Q\"",
    ),
    (
        "zstd-compressed",
        "qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd \"$RAW\" \"$Q\"",
    ),
    (
        "v2 compressed, 4 KiB clusters",
        "qemu-img convert -f raw -O qcow2 -c -o compat=0.10,cluster_size=4k \"$RAW\" \"$Q\"",
    ),
    (
        "extended L2 with subclusters",
        "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k \"$Q\" 9M && \
         qemu-io -c 'write -P 0xab 0 4k' -c 'write -P 0xcd 70k 8k' -c 'write -z 200k 16k' \
                 -c 'write -P 0x11 1M 300k' -c 'write -P 0x22 8388000 1000' \"$Q\" >/dev/null",
    ),
    (
        "extended L2, zstd-compressed",
        "qemu-img convert -f raw -O qcow2 -c -o extended_l2=on,cluster_size=64k,compression_type=zstd \"$RAW\" \"$Q\"",
    ),
    (
        "preallocation=metadata",
        "qemu-img create -q -f qcow2 -o preallocation=metadata \"$Q\" 12M && \
         qemu-io -c 'write -P 0x5a 100k 300k' -c 'write -P 0x6b 5M 1M' \"$Q\" >/dev/null",
    ),
    (
        "preallocation=falloc",
        "qemu-img create -q -f qcow2 -o preallocation=falloc \"$Q\" 12M && \
         qemu-io -c 'write -P 0x5a 0 64k' -c 'write -P 0x6b 7M 33k' \"$Q\" >/dev/null",
    ),
    (
        "zero clusters and zero flags",
        "qemu-img convert -f raw -O qcow2 \"$RAW\" \"$Q\" && \
         qemu-io -c 'write -z 0 2M' -c 'write -z 5M 512k' \"$Q\" >/dev/null",
    ),
    (
        "internal snapshots (active state written)",
        "qemu-img convert -f raw -O qcow2 \"$RAW\" \"$Q\" && qemu-img snapshot -c first \"$Q\" && \
         qemu-io -c 'write -P 0x77 1M 2M' \"$Q\" >/dev/null && qemu-img snapshot -c second \"$Q\" && \
         qemu-io -c 'write -z 4M 1M' -c 'write -P 0x88 9M 4k' \"$Q\" >/dev/null",
    ),
    (
        "lazy refcounts, left dirty",
        "qemu-img create -q -f qcow2 -o lazy_refcounts=on \"$Q\" 6M && \
         (qemu-io -c 'write -P 0x99 64k 1M' -c abort \"$Q\" >/dev/null 2>&1 || true)",
    ),
    (
        "odd virtual size",
        "qemu-img create -q -f qcow2 \"$Q\" 4097k && qemu-io -c 'write -P 0x42 4096k 1k' \"$Q\" >/dev/null",
    ),
];

/// Make every variant: (name, qcow2 path, reference raw bytes from qemu-img).
fn corpus(dir: &Path) -> Vec<(&'static str, PathBuf, Vec<u8>)> {
    let raw = base_raw(dir);
    VARIANTS
        .iter()
        .enumerate()
        .map(|(i, (name, script))| {
            let q = dir.join(format!("v{i}.qcow2"));
            let r = dir.join(format!("v{i}.ref"));
            sh(&format!(
                "export RAW='{}' Q='{}'; {script} && qemu-img convert -O raw \"$Q\" '{}'",
                raw.display(),
                q.display(),
                r.display()
            ));
            (*name, q, std::fs::read(&r).unwrap())
        })
        .collect()
}

#[test]
fn every_qcow2_variant_equals_qemu_img_convert_on_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, q, reference) in corpus(dir.path()) {
        let target = dir.path().join("out.img");
        write(&target, &random_bytes(reference.len() + MIB, 3));
        let run = flash_yes(&q, &target, &["--verify"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_same(&std::fs::read(&target).unwrap(), &reference, name);
    }
}

#[test]
fn every_qcow2_variant_equals_qemu_img_convert_on_loop_devices() {
    let dir = tempfile::tempdir().unwrap();
    let dev = LoopDev::new(16 * MIB, 4);
    for (i, (name, q, reference)) in corpus(dir.path()).into_iter().enumerate() {
        dev.refill(50 + i as u64);
        let run = flash_yes(&q, &dev.path, &["--json"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_same(&dev.read(0, reference.len()), &reference, name);
    }
}

#[test]
fn write_cost_follows_the_data_and_inspect_shows_the_details() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("sparse.qcow2");
    // 64 MiB virtual, 1 MiB of data.
    sh(&format!(
        "qemu-img create -q -f qcow2 '{0}' 64M && qemu-io -c 'write -P 0x31 0 512k' -c 'write -P 0x32 40M 512k' '{0}' >/dev/null",
        q.display()
    ));
    let run = bty(["inspect".as_ref(), q.as_os_str(), "--json".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = run.last_json();
    assert_eq!(doc["payload"], "qcow2");
    assert_eq!(doc["output_size"], 64 * MIB as u64);
    assert_eq!(doc["qcow2"]["version"], 3);
    assert_eq!(doc["qcow2"]["cluster_size"], 65536);
    assert_eq!(doc["qcow2"]["allocated_bytes"], MIB as u64);
    assert_eq!(doc["qcow2"]["compression_type"], "zlib");

    let dev = LoopDev::new(80 * MIB, 9);
    let run = flash_yes(&q, &dev.path, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let flash = &run.last_json()["flash"];
    // The held-back first MiB is always written; the rest of the writes follow the data.
    assert!(
        flash["data_bytes"].as_u64().unwrap() <= 2 * MIB as u64,
        "{flash}"
    );
    assert_eq!(
        flash["data_bytes"].as_u64().unwrap() + flash["zeroed_bytes"].as_u64().unwrap(),
        64 * MIB as u64
    );
}

#[test]
fn sha256_of_a_qcow2_file_is_checked_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let raw = base_raw(dir.path());
    let q = dir.path().join("img.qcow2");
    sh(&format!(
        "qemu-img convert -f raw -O qcow2 -c '{}' '{}'",
        raw.display(),
        q.display()
    ));
    use sha2::Digest;
    let right = hex::encode(sha2::Sha256::digest(std::fs::read(&q).unwrap()));
    let out = dir.path().join("out.img");
    let run = flash_yes(&q, &out, &["--sha256", &right]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let wrong = "ab".repeat(32);
    write(&out, &random_bytes(12 * MIB, 1));
    let run = flash_yes(&q, &out, &["--sha256", &wrong]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("sha256 mismatch"), "{}", run.stderr);
    assert!(
        read_range(&out, 0, MIB).iter().all(|&b| b == 0),
        "first MiB wiped"
    );
}
