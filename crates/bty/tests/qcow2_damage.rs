//! Damaged and unsupported qcow2 images: truncations, header fields out of range, table entries
//! past the end of the file or with reserved bits, unknown incompatible features, the corrupt
//! bit, backing files, encryption, external data files. Each is refused with a specific
//! message and no panic, and the target never holds a partial image.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn be64(d: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(d[at..at + 8].try_into().unwrap())
}

fn put_be64(d: &mut [u8], at: usize, v: u64) {
    d[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn put_be32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A v3 qcow2 (64 KiB clusters) holding 6 MiB of sample data in 8 MiB.
fn good(dir: &Path, extra: &str) -> Vec<u8> {
    let raw = dir.join("good.raw");
    let mut img = sample_image(8 * MIB, 19);
    img[6 * MIB..].fill(0);
    img[7 * MIB] = 1;
    write(&raw, &img);
    let q = dir.join("good.qcow2");
    sh(&format!(
        "qemu-img convert -f raw -O qcow2 {extra} '{}' '{}'",
        raw.display(),
        q.display()
    ));
    std::fs::read(q).unwrap()
}

fn l1_offset(d: &[u8]) -> usize {
    be64(d, 40) as usize
}

fn first_l2_offset(d: &[u8]) -> usize {
    (be64(d, l1_offset(d)) & 0x00ff_ffff_ffff_fe00) as usize
}

/// Flash `data` as a qcow2 onto a random-filled file; check the target invariant.
fn check(dir: &Path, data: &[u8], what: &str, expect: &str) -> Run {
    let src = dir.join("damaged.qcow2");
    write(&src, data);
    let target = dir.join("target.img");
    let before = random_bytes(9 * MIB, 5);
    write(&target, &before);
    let run = flash_yes(&src, &target, &[]);
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
    let after = std::fs::read(&target).unwrap();
    match run.code {
        2 => assert_same(
            &after,
            &before,
            &format!("{what}: refused before writing, untouched"),
        ),
        1 => assert!(
            after[..MIB].iter().all(|&b| b == 0),
            "{what}: failed after writing began, first MiB wiped"
        ),
        c => panic!(
            "{what}: expected a refusal, got exit {c}: {}{}",
            run.stdout, run.stderr
        ),
    }
    assert!(
        run.stderr.contains(expect),
        "{what}: expected {expect:?} in: {}",
        run.stderr
    );
    run
}

#[test]
fn truncated_files_are_refused_without_substituting_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let d = good(dir.path(), "");
    let l1 = l1_offset(&d);
    for cut in [
        50,
        100,
        l1 + 4,
        first_l2_offset(&d) + 100,
        d.len() / 2,
        d.len() - 1,
    ] {
        let run = check(
            dir.path(),
            &d[..cut],
            &format!("cut at {cut} of {}", d.len()),
            "qcow2",
        );
        assert_eq!(
            run.code, 2,
            "cut at {cut}: the map is validated before writing: {}",
            run.stderr
        );
    }
    let c = good(dir.path(), "-c");
    for cut in [c.len() / 3, c.len() * 2 / 3, c.len() - 700] {
        check(
            dir.path(),
            &c[..cut],
            &format!("compressed cut at {cut} of {}", c.len()),
            "qcow2",
        );
    }
}

#[test]
fn header_fields_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = good(dir.path(), "");
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "version 4",
            Box::new(|d| put_be32(d, 4, 4)),
            "unknown version 4",
        ),
        (
            "cluster_bits 30",
            Box::new(|d| put_be32(d, 20, 30)),
            "cluster_bits 30",
        ),
        (
            "cluster_bits 8",
            Box::new(|d| put_be32(d, 20, 8)),
            "cluster_bits 8",
        ),
        (
            "L1 too small",
            Box::new(|d| put_be32(d, 36, 0)),
            "the L1 table has 0 entries",
        ),
        (
            "virtual size 0",
            Box::new(|d| put_be64(d, 24, 0)),
            "virtual size 0",
        ),
        (
            "huge virtual size",
            Box::new(|d| put_be64(d, 24, u64::MAX)),
            "out of range",
        ),
        (
            "misaligned L1",
            Box::new(|d| {
                let v = be64(d, 40) + 512;
                put_be64(d, 40, v)
            }),
            "not cluster-aligned",
        ),
        (
            "L1 past the end",
            Box::new(|d| put_be64(d, 40, 1 << 40)),
            "past the end of the file",
        ),
        (
            "header length",
            Box::new(|d| put_be32(d, 100, 12)),
            "header_length",
        ),
        (
            "refcount order",
            Box::new(|d| put_be32(d, 96, 9)),
            "refcount_order",
        ),
        (
            "unknown incompatible bit",
            Box::new(|d| put_be64(d, 72, 1 << 10)),
            "unknown incompatible feature bits",
        ),
        (
            "corrupt bit",
            Box::new(|d| put_be64(d, 72, 1 << 1)),
            "marked corrupt",
        ),
        (
            "zstd bit without type",
            Box::new(|d| put_be64(d, 72, 1 << 3)),
            "compression type",
        ),
    ];
    for (what, patch, expect) in cases {
        let mut bad = d.clone();
        patch(&mut bad);
        let run = check(dir.path(), &bad, what, expect);
        assert_eq!(run.code, 2, "{what}");
    }
}

#[test]
fn table_entries_past_the_end_or_with_reserved_bits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = good(dir.path(), "");
    let l1 = l1_offset(&d);
    let l2 = first_l2_offset(&d);
    let len = d.len() as u64;
    let cases: Vec<(&str, usize, u64, &str)> = vec![
        (
            "L1 entry past the end",
            l1,
            (1u64 << 63) | ((len + (1 << 20)) & !0xffff),
            "past the end of the file",
        ),
        (
            "L1 entry reserved bit",
            l1,
            be64(&d, l1) | 1,
            "reserved bits",
        ),
        (
            "L1 entry misaligned",
            l1,
            be64(&d, l1) + 512,
            "not cluster-aligned",
        ),
        (
            "L2 entry past the end",
            l2,
            (1u64 << 63) | ((len + (4 << 20)) & !0xffff),
            "past the end of the file",
        ),
        (
            "L2 entry reserved bit",
            l2,
            be64(&d, l2) | 0x100,
            "reserved bits",
        ),
        (
            "L2 entry reserved high bit",
            l2,
            be64(&d, l2) | (1 << 57),
            "reserved bits",
        ),
        (
            "L2 entry misaligned",
            l2,
            be64(&d, l2) + 4096,
            "not cluster-aligned",
        ),
        (
            "compressed entry past the end",
            l2,
            (1u64 << 62) | (len + 12345),
            "past the end of the file",
        ),
    ];
    for (what, at, value, expect) in cases {
        let mut bad = d.clone();
        put_be64(&mut bad, at, value);
        let run = check(dir.path(), &bad, what, expect);
        assert_eq!(run.code, 2, "{what}");
    }
}

#[test]
fn backing_files_encryption_and_external_data_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| -> PathBuf { dir.path().join(n) };
    sh(&format!(
        "cd '{}' && qemu-img create -q -f qcow2 base.qcow2 8M && \
         qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2 && \
         qemu-img create -q -f qcow2 --object secret,id=s0,data=hunter2 \
             -o encrypt.format=luks,encrypt.key-secret=s0 enc.qcow2 8M && \
         qemu-img create -q -f qcow2 -o data_file=ext.raw ext.qcow2 8M",
        dir.path().display()
    ));
    for (file, expect) in [
        ("overlay.qcow2", "backing file"),
        ("enc.qcow2", "encrypted"),
        ("ext.qcow2", "external data file"),
    ] {
        let data = std::fs::read(p(file)).unwrap();
        let run = check(dir.path(), &data, file, expect);
        assert_eq!(run.code, 2, "{file}");
        assert!(
            run.stderr.contains("qemu-img convert"),
            "{file}: says what to do: {}",
            run.stderr
        );
    }
}

#[test]
fn a_qcow2_on_a_pipe_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let d = good(dir.path(), "");
    let src = dir.path().join("img.qcow2");
    write(&src, &d);
    let out = std::process::Command::new(bty_bin())
        .args(["inspect", "-"])
        .stdin(std::fs::File::open(&src).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("random access"));
}
