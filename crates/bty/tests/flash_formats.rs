//! Every supported format and variant, made with the system compressors, flashed onto regular
//! files and loop devices pre-filled with random bytes: the result must equal the
//! decompressor's own output exactly (which also proves zero runs really read as zero).

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// One way of packaging the raw image.
struct Variant {
    name: &'static str,
    /// Builds the packaged file from the raw image path; returns its bytes.
    make: fn(&Path, &Path) -> Vec<u8>,
    /// Command that decompresses stdin to stdout, giving the reference bytes.
    reference: &'static str,
}

fn halves(dir: &Path, raw: &Path) -> (PathBuf, PathBuf) {
    let data = std::fs::read(raw).unwrap();
    let mid = data.len() / 3;
    let (a, b) = (dir.join("part-a"), dir.join("part-b"));
    write(&a, &data[..mid]);
    write(&b, &data[mid..]);
    (a, b)
}

fn concat(mut a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    a.extend(b);
    a
}

fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "raw",
            make: |_, raw| std::fs::read(raw).unwrap(),
            reference: "cat",
        },
        Variant {
            name: "gzip",
            make: |_, raw| compress_file("gzip -c -6", raw),
            reference: "gzip -dc",
        },
        Variant {
            name: "gzip multi-member",
            make: |d, raw| {
                let (a, b) = halves(d, raw);
                concat(
                    compress_file("gzip -c -1", &a),
                    compress_file("gzip -c -9", &b),
                )
            },
            reference: "gzip -dc",
        },
        Variant {
            name: "xz",
            make: |_, raw| compress_file("xz -c -T1 -3", raw),
            reference: "xz -dc",
        },
        Variant {
            name: "xz multi-block",
            make: |_, raw| compress_file("xz -c -T2 --block-size=1MiB -1", raw),
            reference: "xz -dc",
        },
        Variant {
            name: "xz multi-stream with padding",
            make: |d, raw| {
                let (a, b) = halves(d, raw);
                let mut v = compress_file("xz -c -1", &a);
                v.extend([0u8; 8]);
                concat(v, compress_file("xz -c -1", &b))
            },
            reference: "xz -dc",
        },
        Variant {
            name: "zstd",
            make: |_, raw| compress_file("zstd -q -c -3", raw),
            reference: "zstd -dc",
        },
        Variant {
            name: "zstd multi-frame with skippable frames",
            make: |d, raw| {
                let (a, b) = halves(d, raw);
                let mut v = vec![
                    0x50, 0x2a, 0x4d, 0x18, 6, 0, 0, 0, b'b', b't', b'y', 0, 1, 2,
                ];
                v.extend(compress_file("zstd -q -c -1", &a));
                v.extend([0x5a, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
                concat(v, compress_file("zstd -q -c -9", &b))
            },
            reference: "zstd -dc",
        },
        Variant {
            name: "zstd streamed (no content size)",
            make: |_, raw| compress("zstd -q -c --no-check", raw),
            reference: "zstd -dc",
        },
        Variant {
            name: "bzip2",
            make: |_, raw| compress_file("bzip2 -c -9", raw),
            reference: "bzip2 -dc",
        },
        Variant {
            name: "bzip2 multi-stream",
            make: |d, raw| {
                let (a, b) = halves(d, raw);
                concat(
                    compress_file("bzip2 -c -1", &a),
                    compress_file("bzip2 -c -1", &b),
                )
            },
            reference: "bzip2 -dc",
        },
        Variant {
            name: "gzip of zstd (nested)",
            make: |d, raw| {
                let z = d.join("inner.zst");
                write(&z, &compress_file("zstd -q -c", raw));
                compress_file("gzip -c", &z)
            },
            reference: "gzip -dc | zstd -dc",
        },
    ]
}

/// Builds every variant of one sample image in `dir`: (name, packaged path, reference bytes).
fn build_all(dir: &Path, image_len: usize, seed: u64) -> Vec<(&'static str, PathBuf, Vec<u8>)> {
    let raw = dir.join("image.raw");
    write(&raw, &sample_image(image_len, seed));
    variants()
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let work = dir.join(format!("work-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let packaged = dir.join(format!("image-{i}.bin"));
            write(&packaged, &(v.make)(&work, &raw));
            let reference = decompress(v.reference, &packaged);
            (v.name, packaged, reference)
        })
        .collect()
}

/// An odd length (not a multiple of 512) exercises the unaligned tail on block devices.
const IMAGE_LEN: usize = 6 * MIB + 12_345;

#[test]
fn every_format_round_trips_onto_a_prefilled_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, packaged, reference) in build_all(dir.path(), IMAGE_LEN, 1) {
        let target = dir.path().join("target.img");
        // Longer than the image and full of random bytes: the result must be exactly the image.
        write(&target, &random_bytes(IMAGE_LEN + 3 * MIB, 99));
        let run = flash_yes(&packaged, &target, &["--json"]);
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stderr, run.stdout);
        let result = run.last_json();
        assert_eq!(result["type"], "result", "{name}");
        assert_eq!(result["schema_version"], 1);
        assert_eq!(
            result["flash"]["image_bytes"],
            reference.len() as u64,
            "{name}"
        );
        assert_same(&std::fs::read(&target).unwrap(), &reference, name);
    }
}

#[test]
fn every_format_round_trips_onto_a_prefilled_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let dev = LoopDev::new(16 * MIB, 7);
    for (i, (name, packaged, reference)) in
        build_all(dir.path(), IMAGE_LEN, 2).into_iter().enumerate()
    {
        dev.refill(100 + i as u64);
        let run = flash_yes(&packaged, &dev.path, &["--verify"]);
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stderr, run.stdout);
        assert!(run.stdout.contains("verified"), "{name}: {}", run.stdout);
        assert_same(&dev.read(0, reference.len()), &reference, name);
    }
}

#[test]
fn zero_runs_are_not_written_but_read_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("sparse.raw");
    // 1 MiB of data at the start, 10 MiB of zeros, 1 MiB of data at the end.
    let mut img = random_bytes(12 * MIB, 5);
    img[MIB..11 * MIB].fill(0);
    write(&raw, &img);
    let zst = dir.path().join("sparse.zst");
    write(&zst, &compress_file("zstd -q -c", &raw));
    let dev = LoopDev::new(16 * MIB, 8);
    let run = flash_yes(&zst, &dev.path, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let flash = &run.last_json()["flash"];
    assert_eq!(
        flash["zeroed_bytes"],
        (10 * MIB) as u64,
        "zero runs become BLKZEROOUT: {flash}"
    );
    assert_eq!(flash["data_bytes"], (2 * MIB) as u64);
    assert_same(
        &dev.read(0, img.len()),
        &img,
        "sparse image on a loop device",
    );

    // Onto a file, zero runs are holes: far fewer blocks allocated than the image's length.
    let file = dir.path().join("sparse.out");
    let run = flash_yes(&zst, &file, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.len(), img.len() as u64);
    assert!(
        meta.blocks() * 512 < (4 * MIB) as u64,
        "expected holes, {} bytes allocated",
        meta.blocks() * 512
    );
    assert_same(
        &std::fs::read(&file).unwrap(),
        &img,
        "sparse image in a file",
    );
}

#[test]
fn zeroes_write_writes_everything_and_skip_leaves_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    let mut img = random_bytes(8 * MIB, 11);
    img[2 * MIB..6 * MIB].fill(0);
    write(&raw, &img);
    let dev = LoopDev::new(12 * MIB, 12);

    let run = flash_yes(&raw, &dev.path, &["--json", "--zeroes", "write"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.last_json()["flash"]["data_bytes"], img.len() as u64);
    assert_eq!(run.last_json()["flash"]["zeroed_bytes"], 0);
    assert_same(&dev.read(0, img.len()), &img, "--zeroes=write");

    dev.refill(13);
    let before = dev.read(0, img.len());
    let run = flash_yes(&raw, &dev.path, &["--zeroes", "skip", "--verify"]);
    assert_eq!(
        run.code, 0,
        "skip + verify compares only non-zero ranges: {}",
        run.stderr
    );
    assert!(
        run.stdout.contains("left as they were"),
        "skip mode says so: {}",
        run.stdout
    );
    let after = dev.read(0, img.len());
    assert_same(
        &after[..2 * MIB],
        &img[..2 * MIB],
        "data before the zero run",
    );
    assert_same(
        &after[6 * MIB..],
        &img[6 * MIB..],
        "data after the zero run",
    );
    assert_same(
        &after[2 * MIB..6 * MIB],
        &before[2 * MIB..6 * MIB],
        "the zero run keeps the old bytes",
    );
}

#[test]
fn standard_input_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    let img = sample_image(3 * MIB + 777, 21);
    write(&raw, &img);
    let xz = dir.path().join("img.xz");
    write(&xz, &compress_file("xz -c -1", &raw));
    let out = dir.path().join("out.img");
    let status = std::process::Command::new(bty_bin())
        .args(["flash", "-"])
        .arg(&out)
        .arg("--yes")
        .stdin(std::fs::File::open(&xz).unwrap())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_same(&std::fs::read(&out).unwrap(), &img, "flash from stdin");
}

#[test]
fn the_reported_digest_matches_the_documented_definition() {
    // scripts/bty-digest.py implements the definition in docs/cli.md ("Image digest") independently, in Python.
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    let img = sample_image(5 * MIB + 1234, 33);
    write(&raw, &img);
    let zst = dir.path().join("img.zst");
    write(&zst, &compress_file("zstd -q -c", &raw));
    let out = dir.path().join("out.img");
    let run = flash_yes(&zst, &out, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let flash = &run.last_json()["flash"];
    assert_eq!(flash["image_digest_algorithm"], "sha256-tree-v1");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bty-digest.py");
    let py = std::process::Command::new("python3")
        .arg(script)
        .arg(&raw)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        flash["image_digest"],
        String::from_utf8_lossy(&py.stdout).trim()
    );
}

#[test]
fn holes_in_a_sparse_raw_file_are_not_read_but_still_verified() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("sparse.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(40 * MIB as u64).unwrap();
    let a = random_bytes(MIB, 1);
    let b = random_bytes(3 * MIB + 17, 2);
    f.write_all_at(&a, 0).unwrap();
    f.write_all_at(&b, 20 * MIB as u64).unwrap();
    drop(f);
    let image = std::fs::read(&raw).unwrap();
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&image));
    let dev = LoopDev::new(48 * MIB, 3);
    let run = flash_yes(&raw, &dev.path, &["--json", "--verify", "--sha256", &sha]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let flash = &run.last_json()["flash"];
    assert_eq!(flash["source_sha256"], sha, "holes are hashed as zeros");
    assert!(
        flash["zeroed_bytes"].as_u64().unwrap() >= 35 * MIB as u64,
        "{flash}"
    );
    assert_same(&dev.read(0, image.len()), &image, "sparse raw file");
}
