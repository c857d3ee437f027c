//! Images and catalogs over HTTP from a real server on 127.0.0.1: streams that survive dropped
//! connections bit-identically, an object that changes mid-download (clear failure, target
//! wiped), qcow2 by Range requests with few requests and flat memory, catalogs with their
//! sha256 verified, and the failures an operator meets (404, refused, unresolvable, bad
//! catalogs) reported clearly before anything is written.

mod common;

use std::process::{Command, Stdio};

use common::server::{Faults, TestServer};
use common::*;

fn flash_url(url: &str, target: &std::path::Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "flash".into(),
        url.into(),
        target.display().to_string(),
        "--yes".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    bty(args)
}

#[test]
fn a_stream_survives_dropped_connections_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    let img = sample_image(12 * MIB + 99, 71);
    write(&raw, &img);
    let zst = compress_file("zstd -q -c", &raw);
    let server = TestServer::start();
    // Every one of the first three answers is cut after 1.5 MiB.
    server.put_with(
        "/img.zst",
        zst.clone(),
        Faults {
            drops: 3,
            drop_after: 1_500_000,
            ..Faults::default()
        },
    );
    server.put_with(
        "/img.raw",
        img.clone(),
        Faults {
            drops: 4,
            drop_after: 3 * MIB,
            ..Faults::default()
        },
    );
    // Redirects are followed (the probe, the sniff and the stream all go through it).
    server.redirect("/latest.zst", "/img.zst");
    for path in ["/img.zst", "/img.raw"] {
        let out = dir.path().join("out.img");
        let run = flash_url(&server.url(path), &out, &[]);
        assert_eq!(run.code, 0, "{path}: {}", run.stderr);
        assert!(
            run.stderr.contains("resuming"),
            "{path}: the resumes are logged: {}",
            run.stderr
        );
        assert_same(&std::fs::read(&out).unwrap(), &img, path);
    }
    let out = dir.path().join("out.img");
    let run = flash_url(&server.url("/latest.zst"), &out, &[]);
    assert_eq!(run.code, 0, "through a redirect: {}", run.stderr);
    assert_same(&std::fs::read(&out).unwrap(), &img, "redirected");
}

#[test]
fn an_object_that_changes_mid_download_fails_and_wipes() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample_image(8 * MIB, 72);
    let mut other = img.clone();
    other[5 * MIB] ^= 0xff;
    let server = TestServer::start();
    server.put_with(
        "/img.raw",
        img,
        Faults {
            drops: 2,
            drop_after: 4 * MIB,
            change_on_resume: Some(other),
            ..Faults::default()
        },
    );
    let out = dir.path().join("out.img");
    write(&out, &random_bytes(9 * MIB, 1));
    let run = flash_url(&server.url("/img.raw"), &out, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("changed on the server"),
        "{}",
        run.stderr
    );
    assert!(
        read_range(&out, 0, MIB).iter().all(|&b| b == 0),
        "first MiB wiped"
    );
}

/// Run `bty` and return (exit code, stderr, peak RSS in KiB). A small Python parent spawns it,
/// so the figure is bty's own and not inflated by this (large) test process before exec.
fn run_measured(args: &[String]) -> (i32, String, i64) {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)\n\
                  print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(bty_bin())
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
    let rss = it.next().and_then(|c| c.parse().ok()).unwrap_or(i64::MAX);
    (code, String::from_utf8_lossy(&out.stderr).into_owned(), rss)
}

#[test]
fn qcow2_over_http_is_exact_with_few_requests_and_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 2.5 GiB virtual, 48 MiB of data spread over it, plus a zlib-compressed variant.
    let q = dir.path().join("big.qcow2");
    let qc = dir.path().join("big-c.qcow2");
    sh(&format!(
        "qemu-img create -q -f qcow2 '{q}' 2560M && qemu-io -c 'write -P 0x11 0 16M' -c 'write -P 0x22 1G 16M' \
         -c 'write -P 0x33 2500M 16M' '{q}' >/dev/null && qemu-img convert -c -O qcow2 '{q}' '{qc}'",
        q = q.display(),
        qc = qc.display()
    ));
    let server = TestServer::start();
    for (name, path) in [("/big.qcow2", &q), ("/big-c.qcow2", &qc)] {
        let data = std::fs::read(path).unwrap();
        let compressed_len = data.len();
        server.put(name, data);
        let reference = dir.path().join("ref.raw");
        sh(&format!(
            "qemu-img convert -O raw '{}' '{}'",
            path.display(),
            reference.display()
        ));
        let out = dir.path().join("out.img");
        let before = server.requests();
        let (code, stderr, rss_kib) = run_measured(&[
            "flash".into(),
            server.url(name),
            out.display().to_string(),
            "--yes".into(),
        ]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let requests = server.requests() - before;
        // Metadata is coalesced, data runs are read in buffer-sized ranges, compressed clusters
        // through a read-ahead window: a few requests per 4 MiB of stored data, not one per cluster.
        let bound = 40 + 3 * compressed_len / (4 << 20);
        assert!(
            requests <= bound,
            "{name}: {requests} requests (bound {bound})"
        );
        assert!(rss_kib < 64 * 1024, "{name}: peak RSS {rss_kib} KiB");
        sh(&format!(
            "cmp '{}' '{}'",
            out.display(),
            reference.display()
        ));
    }
}

#[test]
fn catalogs_over_http_give_images_with_verified_digests() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("img.raw");
    let img = sample_image(3 * MIB, 73);
    write(&raw, &img);
    let xz = compress_file("xz -c -1", &raw);
    use sha2::Digest;
    let good = hex::encode(sha2::Sha256::digest(&xz));
    let server = TestServer::start();
    server.put("/img.xz", xz);
    let catalog = format!(
        "version = 1\n[[images]]\nname = \"good\"\nsrc = \"{u}\"\nsha256 = \"{good}\"\ndescription = \"verified\"\n\
         [[images]]\nname = \"tampered\"\nsrc = \"{u}?v=2\"\nsha256 = \"{bad}\"\n",
        u = server.url("/img.xz"),
        bad = "0".repeat(64)
    );
    server.put("/catalog.toml", catalog.into_bytes());
    let empty_root = dir.path().join("no-images");
    let list = Command::new(bty_bin())
        .args(["catalog", &server.url("/catalog.toml"), "--json"])
        .env("BTY_IMAGE_ROOT", &empty_root)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["images"][0]["name"], "good");
    assert_eq!(doc["images"][0]["sha256"], good);

    let out = dir.path().join("out.img");
    let flash = |name: &str| {
        Command::new(bty_bin())
            .args([
                "flash",
                "--catalog",
                &server.url("/catalog.toml"),
                "--image",
                name,
            ])
            .arg(&out)
            .arg("--yes")
            .env("BTY_IMAGE_ROOT", &empty_root)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = flash("good");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("matches"),
        "the entry's sha256 was checked"
    );
    assert_same(&std::fs::read(&out).unwrap(), &img, "catalog image");
    let bad = flash("tampered");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sha256 mismatch"));
    let missing = flash("nope");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no image named \"nope\""));
}

#[test]
fn network_failures_are_clear_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    write(&out, b"keep me");
    let server = TestServer::start();
    // A port with nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (server.url("/missing.img"), "not found (HTTP 404)"),
        (format!("http://127.0.0.1:{closed}/img.raw"), "connection"),
        (
            "http://no-such-host.invalid/img.raw".to_string(),
            "cannot resolve the host name",
        ),
        ("gopher://example.com/x".to_string(), "unsupported scheme"),
    ];
    for (url, want) in cases {
        let run = flash_url(&url, &out, &[]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert!(
            run.stderr.contains(want),
            "{url}: expected {want:?} in {}",
            run.stderr
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"keep me",
            "{url}: target untouched"
        );
    }
}

#[test]
fn bad_catalogs_are_refused_with_the_entry_and_field_named() {
    let server = TestServer::start();
    let cases: [(&str, String, &str); 5] = [
        ("/dup.toml", "version = 1\n[[images]]\nname='a'\nsrc='https://x/a'\n[[images]]\nname='a'\nsrc='https://x/b'\n".into(), "entry 2 (\"a\"): duplicate image name"),
        ("/nosrc.toml", "version = 1\n[[images]]\nname='a'\n".into(), "missing required field 'src'"),
        ("/version.toml", "version = 7\n".into(), "version = 7"),
        ("/big.toml", format!("version = 1\n# {}\n", "x".repeat(5 << 20)), "larger than 4194304 bytes"),
        ("/garbage.toml", "this is not toml [".into(), "not valid TOML"),
    ];
    for (path, body, want) in cases {
        server.put(path, body.into_bytes());
        let run = bty(["catalog", &server.url(path), "--no-local"]);
        assert_eq!(run.code, 2, "{path}");
        assert!(
            run.stderr.contains(want),
            "{path}: expected {want:?} in {}",
            run.stderr
        );
    }
}

#[test]
fn the_local_image_folder_is_listed_first_and_its_sidecars_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    std::fs::create_dir_all(&root).unwrap();
    let raw = dir.path().join("x.raw");
    let img = sample_image(2 * MIB + 5, 74);
    write(&raw, &img);
    let zst = compress_file("zstd -q -c", &raw);
    write(&root.join("good.img.zst"), &zst);
    use sha2::Digest;
    write(
        &root.join("good.img.zst.sha256"),
        format!(
            "{}  good.img.zst\n",
            hex::encode(sha2::Sha256::digest(&zst))
        )
        .as_bytes(),
    );
    write(&root.join("bad.img.zst"), &zst);
    write(&root.join("bad.img.zst.sha256"), "2".repeat(64).as_bytes());
    write(&root.join("readme.tar"), b"");
    let server = TestServer::start();
    server.put(
        "/catalog.toml",
        format!(
            "version = 1\n[[images]]\nname = \"remote\"\nsrc = \"{}\"\n",
            server.url("/r.img")
        )
        .into_bytes(),
    );
    let env_root = root.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bty_bin())
            .args(args)
            .env("BTY_IMAGE_ROOT", env_root)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = run(&["catalog", &server.url("/catalog.toml"), "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let names: Vec<&str> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bad.img.zst", "good.img.zst", "remote"],
        "local images first, the empty file skipped"
    );
    let out = dir.path().join("out.img");
    let (code, _, stderr) = run(&[
        "flash",
        "--image",
        "good.img.zst",
        out.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_same(&std::fs::read(&out).unwrap(), &img, "local folder image");
    let (code, _, stderr) = run(&[
        "flash",
        "--image",
        "bad.img.zst",
        out.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, 1, "the sidecar digest is checked: {stderr}");
    assert!(stderr.contains("sha256 mismatch"));
}
