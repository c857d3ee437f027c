//! `bty inspect`: layers, sizes (exact where the container records it, unknown otherwise) and
//! partition table, as text and as JSON with a schema version.

mod common;

use common::*;

#[test]
fn reports_layers_and_exact_or_unknown_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.img");
    let img = sample_image(3 * MIB + 99, 5);
    write(&raw, &img);
    let len = img.len() as u64;
    let cases: [(&str, Vec<u8>, &str, Option<u64>); 6] = [
        ("raw", img.clone(), "raw", Some(len)),
        (
            "zst",
            compress_file("zstd -q -c", &raw),
            "zstd → raw",
            Some(len),
        ),
        (
            "zst-stream",
            compress("zstd -q -c", &raw),
            "zstd → raw",
            None,
        ),
        (
            "xz",
            compress_file("xz -c -T2 --block-size=1MiB", &raw),
            "xz → raw",
            Some(len),
        ),
        ("gz", compress_file("gzip -c", &raw), "gzip → raw", None),
        ("bz2", compress_file("bzip2 -c", &raw), "bzip2 → raw", None),
    ];
    for (name, data, chain, size) in cases {
        let path = dir.path().join(format!("disk.{name}"));
        write(&path, &data);
        let run = bty(["inspect".as_ref(), path.as_os_str(), "--json".as_ref()]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let doc = run.last_json();
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["type"], "inspect");
        assert_eq!(doc["source_size"], data.len() as u64, "{name}");
        assert_eq!(doc["output_size"], serde_json::json!(size), "{name}");
        assert_eq!(doc["output_size_exact"], size.is_some(), "{name}");
        assert_eq!(doc["partition_table"], "mbr", "{name}");
        let text = bty(["inspect".as_ref(), path.as_os_str()]);
        assert!(text.stdout.contains(chain), "{name}: {}", text.stdout);
        if size.is_none() {
            assert!(text.stdout.contains("unknown"), "{name}: {}", text.stdout);
        }
    }
}

#[test]
fn refusals_are_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.tar");
    sh(&format!(
        "cd '{}' && head -c 4096 /dev/zero > f && tar -cf x.tar f",
        dir.path().display()
    ));
    let run = bty(["inspect".as_ref(), p.as_os_str(), "--json".as_ref()]);
    assert_eq!(run.code, 2);
    let doc = run.last_json();
    assert_eq!(doc["type"], "error");
    assert!(doc["message"].as_str().unwrap().contains("tar archive"));
}
