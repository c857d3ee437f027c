//! Targets that must be refused before a byte is written: a mounted device, a device too small
//! for an image of known size, a read-only device, the source itself, and any overwrite without
//! confirmation when there is no terminal to ask on.

mod common;

use std::process::Command;

use common::*;

#[test]
fn a_mounted_loop_device_is_refused() {
    let dev = LoopDev::new(32 * MIB, 1);
    sh(&format!("mkfs.ext4 -q -F '{}'", dev.path.display()));
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mount '{}' '{}'",
        dev.path.display(),
        mnt.path().display()
    ));
    let before = dev.read(0, 2 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    write(&src, &sample_image(4 * MIB, 2));
    let run = flash_yes(&src, &dev.path, &[]);
    // Read before unmounting: unmounting rewrites the ext4 superblock itself.
    let after = dev.read(0, 2 * MIB);
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    assert!(
        run.stderr.contains("mounted at"),
        "names the mount: {}",
        run.stderr
    );
    assert_same(&after, &before, "mounted device untouched");
}

#[test]
fn a_target_too_small_for_a_known_size_is_refused_before_writing() {
    let dev = LoopDev::new(4 * MIB, 3);
    let before = dev.read(0, 4 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    write(&raw, &sample_image(6 * MIB, 4));
    let zst = dir.path().join("img.zst");
    write(&zst, &compress_file("zstd -q -c", &raw));
    for src in [&raw, &zst] {
        let run = flash_yes(src, &dev.path, &[]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("does not fit"), "{}", run.stderr);
        assert_same(&dev.read(0, 4 * MIB), &before, "too-small target untouched");
    }
}

#[test]
fn an_image_of_unknown_size_stops_at_the_end_of_the_target() {
    let dev = LoopDev::new(4 * MIB, 5);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    write(&raw, &sample_image(6 * MIB, 6));
    let bz = dir.path().join("img.bz2");
    write(&bz, &compress_file("bzip2 -c", &raw));
    let run = flash_yes(&bz, &dev.path, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("past the end of the target"),
        "{}",
        run.stderr
    );
    assert!(dev.read(0, MIB).iter().all(|&b| b == 0), "first MiB wiped");
    assert!(
        dev.read((3 * MIB) as u64, MIB).iter().all(|&b| b == 0),
        "last MiB wiped"
    );
}

#[test]
fn a_read_only_device_is_refused() {
    let dev = LoopDev::with_options(4 * MIB, 7, &["--read-only"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    write(&src, &sample_image(MIB, 8));
    let run = flash_yes(&src, &dev.path, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_overwritten() {
    let dev = LoopDev::new(4 * MIB, 9);
    let before = dev.read(0, 4 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    write(&src, &sample_image(2 * MIB, 10));
    let run = bty(["flash".as_ref(), src.as_os_str(), dev.path.as_os_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_same(
        &dev.read(0, 4 * MIB),
        &before,
        "unconfirmed target untouched",
    );

    // The same for an existing file; a new file needs no confirmation.
    let existing = dir.path().join("existing.img");
    write(&existing, b"precious");
    let run = bty(["flash".as_ref(), src.as_os_str(), existing.as_os_str()]);
    assert_eq!(run.code, 2);
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    let fresh = dir.path().join("fresh.img");
    let run = bty(["flash".as_ref(), src.as_os_str(), fresh.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_file_cannot_be_flashed_onto_itself() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    let img = sample_image(2 * MIB, 11);
    write(&src, &img);
    let run = flash_yes(&src, &src, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("same file"), "{}", run.stderr);
    assert_eq!(std::fs::read(&src).unwrap(), img);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(bty(["flash"]).code, 2);
    assert_eq!(bty(["flash", "a", "b", "--zeroes", "sometimes"]).code, 2);
    let run = bty(["flash", "/nonexistent/image.img", "/tmp/x", "--yes"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    write(&src, &sample_image(MIB, 1));
    let run = bty([
        "flash".as_ref(),
        src.as_os_str(),
        "/nonexistent-dir/out.img".as_ref(),
        "--yes".as_ref(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}
