//! Damaged and unsuitable inputs: each gives a clear error and no panic, and the target is
//! either untouched (refused before writing, exit 2) or has its first MiB zeroed (failed after
//! writing began, exit 1) — never a partial image.

mod common;

use std::path::Path;

use common::*;

const IMAGE_LEN: usize = 6 * MIB + 4321;
const TARGET_LEN: usize = 8 * MIB;

/// Flash `source` onto a fresh random-filled file and check the target invariant. Returns the run.
fn flash_checked(dir: &Path, source: &Path, extra: &[&str], what: &str) -> Run {
    let target = dir.join("target.img");
    let before = random_bytes(TARGET_LEN, 4242);
    write(&target, &before);
    let run = flash_yes(source, &target, extra);
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: panic: {}",
        run.stderr
    );
    let after = std::fs::read(&target).unwrap();
    match run.code {
        2 => assert_same(
            &after,
            &before,
            &format!("{what}: exit 2 must leave the target untouched"),
        ),
        1 => {
            let head = &after[..after.len().min(MIB)];
            assert!(
                head.iter().all(|&b| b == 0),
                "{what}: exit 1 must leave the first MiB zeroed"
            );
            assert!(
                run.stderr.contains("wiped"),
                "{what}: must say the target was wiped: {}",
                run.stderr
            );
        }
        c => panic!(
            "{what}: expected exit 1 or 2, got {c}: {}{}",
            run.stdout, run.stderr
        ),
    }
    run
}

fn packaged(dir: &Path, tool: &str, name: &str) -> Vec<u8> {
    let raw = dir.join("image.raw");
    if !raw.exists() {
        write(&raw, &sample_image(IMAGE_LEN, 77));
    }
    let _ = name;
    compress_file(tool, &raw)
}

const CODECS: [(&str, &str); 4] = [
    ("gzip", "gzip -c"),
    ("xz", "xz -c -1"),
    ("zstd", "zstd -q -c"),
    ("bzip2", "bzip2 -c"),
];

#[test]
fn truncated_streams_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for (name, tool) in CODECS {
        let full = packaged(dir.path(), tool, name);
        for frac in [0.02, 0.5, 0.9, 0.999] {
            let cut = ((full.len() as f64) * frac) as usize;
            let src = dir.path().join(format!("cut-{name}"));
            write(&src, &full[..cut]);
            let run = flash_checked(
                dir.path(),
                &src,
                &[],
                &format!("{name} cut at {cut}/{}", full.len()),
            );
            assert!(
                run.stderr.contains("corrupt or truncated"),
                "{name}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn flipped_bits_in_checksummed_payloads_fail() {
    let dir = tempfile::tempdir().unwrap();
    for (name, tool) in CODECS {
        let mut data = packaged(dir.path(), tool, name);
        let at = data.len() / 2;
        data[at] ^= 0x10;
        let src = dir.path().join(format!("flip-{name}"));
        write(&src, &data);
        let run = flash_checked(dir.path(), &src, &[], &format!("{name} with a flipped bit"));
        assert_ne!(run.code, 0);
    }
}

#[test]
fn trailing_garbage_fails_after_writing_and_wipes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, tool) in CODECS {
        let mut data = packaged(dir.path(), tool, name);
        data.extend(b"this is not part of the stream");
        let src = dir.path().join(format!("trail-{name}"));
        write(&src, &data);
        let run = flash_checked(
            dir.path(),
            &src,
            &[],
            &format!("{name} with trailing garbage"),
        );
        assert_eq!(
            run.code, 1,
            "{name}: garbage is found at the end, after writing began"
        );
        assert!(
            run.stderr.contains("trailing data"),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn wrong_sha256_fails_and_wipes_right_one_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = packaged(dir.path(), "zstd -q -c", "zstd");
    let src = dir.path().join("img.zst");
    write(&src, &data);
    let wrong = "0".repeat(64);
    let run = flash_checked(dir.path(), &src, &["--sha256", &wrong], "wrong sha256");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("sha256 mismatch"), "{}", run.stderr);

    use sha2::Digest;
    let right = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
    let target = dir.path().join("ok.img");
    let run = flash_yes(&src, &target, &["--sha256", &right]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("matches --sha256"), "{}", run.stdout);

    let run = flash_checked(
        dir.path(),
        &src,
        &["--sha256", "not-a-digest"],
        "malformed sha256",
    );
    assert_eq!(run.code, 2);
}

#[test]
fn wrong_sha256_on_a_loop_device_wipes_first_and_last_mib() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.zst");
    write(&src, &packaged(dir.path(), "zstd -q -c", "zstd"));
    let dev = LoopDev::new(10 * MIB, 31);
    let run = flash_yes(
        &src,
        &dev.path,
        &[
            "--json",
            "--sha256",
            "1111111111111111111111111111111111111111111111111111111111111111",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let err = run.last_json();
    assert_eq!(err["type"], "error");
    assert_eq!(err["write_began"], true);
    assert_eq!(err["target_wiped"], true);
    assert!(dev.read(0, MIB).iter().all(|&b| b == 0), "first MiB zeroed");
    assert!(
        dev.read((9 * MIB) as u64, MIB).iter().all(|&b| b == 0),
        "last MiB zeroed"
    );
}

#[test]
fn archives_and_other_containers_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("disk.img");
    write(&raw, &sample_image(2 * MIB, 3));
    sh(&format!(
        "cd '{}' && tar -cf disk.tar disk.img && gzip -c disk.tar > disk.tar.gz && zstd -q -c disk.tar > disk.tar.zst",
        d.display()
    ));
    sh(&format!(
        "cd '{}' && python3 -c \"import zipfile; zipfile.ZipFile('disk.zip','w').write('disk.img')\"",
        d.display()
    ));
    sh(&format!(
        "cd '{}' && qemu-img create -q -f qcow2 disk.qcow2 16M && xz -c -1 disk.qcow2 > disk.qcow2.xz",
        d.display()
    ));
    write(&d.join("empty.img"), b"");
    write(&d.join("tiny.img"), &[7u8; 100]);
    write(
        &d.join("tiny.zst"),
        &compress_file("zstd -q -c", &d.join("tiny.img")),
    );
    let cases: [(&str, &str); 7] = [
        ("disk.tar", "extract it first"),
        ("disk.tar.gz", "tar archive (inside gzip)"),
        ("disk.tar.zst", "extract it first"),
        ("disk.zip", "zip archive"),
        ("disk.qcow2.xz", "random access"),
        ("empty.img", "empty"),
        ("tiny.zst", "implausibly tiny"),
    ];
    for (file, expect) in cases {
        let run = flash_checked(d, &d.join(file), &[], file);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(
            run.stderr.contains(expect),
            "{file}: expected {expect:?} in {}",
            run.stderr
        );
    }
    let run = flash_checked(d, &d.join("tiny.img"), &[], "tiny raw");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("implausibly tiny"), "{}", run.stderr);
}

#[test]
fn a_refused_flash_does_not_create_the_target_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty.img");
    write(&src, b"");
    let target = dir.path().join("new.img");
    let run = flash_yes(&src, &target, &[]);
    assert_eq!(run.code, 2);
    assert!(
        !target.exists(),
        "a refused flash must not leave a new file behind"
    );
}

#[test]
fn a_file_under_a_loop_device_or_a_lock_is_refused() {
    let lo = LoopDev::new(4 * MIB, 9);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("image.raw");
    write(&src, &sample_image(2 * MIB, 3));
    let before = std::fs::read(&lo.backing).unwrap();
    let run = flash_yes(&src, &lo.backing, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(lo.path.to_str().unwrap()),
        "{}",
        run.stderr
    );
    assert_same(&std::fs::read(&lo.backing).unwrap(), &before, "untouched");
    // A file another process holds a lock on (as QEMU does on its images).
    let target = dir.path().join("vm.img");
    write(&target, &random_bytes(4 * MIB, 5));
    /// The lock holder, stopped however the test ends.
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = Holder(
        std::process::Command::new("flock")
            .arg("--no-fork")
            .arg(&target)
            .args(["sleep", "30"])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let run = flash_yes(&src, &target, &[]);
    drop(holder);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("locked by pid"), "{}", run.stderr);
}

#[test]
fn endless_character_devices_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.img");
    let run = flash_yes(Path::new("/dev/zero"), &target, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("character device"), "{}", run.stderr);
    assert!(!target.exists(), "nothing created");
}

#[test]
fn a_file_bty_created_is_removed_when_the_flash_fails() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("image.raw");
    write(&raw, &sample_image(IMAGE_LEN, 11));
    let src = dir.path().join("image.raw.zst");
    write(&src, &compress_file("zstd -q -c", &raw));
    let target = dir.path().join("new.img");
    // The wrong digest is found only after the whole image was written.
    let run = flash_yes(&src, &target, &["--sha256", &"00".repeat(32)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!target.exists(), "the half-made file is gone");
}
