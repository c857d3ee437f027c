//! `oras://` against a real OCI registry (Debian's docker-registry on 127.0.0.1): disk layers
//! chosen over signatures, zstd and qcow2 blobs flashed exactly (qcow2 by Range requests), a
//! multi-platform index, digest references, the bearer-token flow anonymously and with
//! credentials from the Docker config or the environment, catalogs published as artifacts, and
//! clear refusals.

mod common;

use std::process::{Command, Stdio};

use common::registry::{Registry, TOKEN, TokenProxy, sha256_digest};
use common::*;

const ZST: &str = "application/vnd.bty.disk.raw.zst";
const QCOW2: &str = "application/vnd.bty.disk.qcow2";
const SIG: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn bty_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bty_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("BTY_REGISTRY_USER")
        .env_remove("BTY_REGISTRY_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn image_and_zst(dir: &std::path::Path, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let raw = dir.join(format!("img-{seed}.raw"));
    let img = sample_image(4 * MIB + 321, seed);
    write(&raw, &img);
    let zst = compress_file("zstd -q -c", &raw);
    (img, zst)
}

#[test]
fn disk_layers_flash_exactly_and_signatures_are_passed_over() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (img, zst) = image_and_zst(dir.path(), 81);
    // A signature layer larger than the disk layer: size alone would pick the wrong one.
    let sig = vec![b's'; zst.len() * 2];
    let manifest_digest = reg.push_artifact(
        "bty/disk",
        "v1",
        &[(SIG, "disk.img.zst.sig", &sig), (ZST, "disk.img.zst", &zst)],
    );
    let url = format!("oras://127.0.0.1:{}/bty/disk:v1", reg.port);

    let run = bty(["inspect", &url]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("@{manifest_digest}")),
        "pinned digest shown: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("chosen because its title \"disk.img.zst\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&sha256_digest(&zst)), "{}", run.stdout);

    let out = dir.path().join("out.img");
    let run = bty(["flash", &url, out.to_str().unwrap(), "--yes", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The layer digest was verified in-stream as the source digest.
    assert_eq!(
        run.last_json()["flash"]["source_sha256"],
        sha256_digest(&zst).trim_start_matches("sha256:")
    );
    assert_same(&std::fs::read(&out).unwrap(), &img, "oras zstd layer");

    // The same by manifest digest.
    let by_digest = format!("oras://127.0.0.1:{}/bty/disk@{manifest_digest}", reg.port);
    let run = bty(["flash", &by_digest, out.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let wrong = format!(
        "oras://127.0.0.1:{}/bty/disk@sha256:{}",
        reg.port,
        "0".repeat(64)
    );
    let run = bty(["flash", &wrong, out.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn qcow2_layers_are_read_by_range_and_match_qemu_img() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("d.qcow2");
    let reference = dir.path().join("d.raw");
    sh(&format!(
        "qemu-img create -q -f qcow2 '{0}' 64M && qemu-io -c 'write -P 0x5a 1M 3M' -c 'write -P 0x6b 40M 2M' '{0}' >/dev/null && \
         qemu-img convert -O raw '{0}' '{1}'",
        q.display(),
        reference.display()
    ));
    reg.push_artifact(
        "bty/qcow",
        "latest",
        &[(QCOW2, "disk.qcow2", &std::fs::read(&q).unwrap())],
    );
    let out = dir.path().join("out.img");
    let run = bty([
        "flash",
        &format!("oras://127.0.0.1:{}/bty/qcow:latest", reg.port),
        out.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    sh(&format!(
        "cmp '{}' '{}'",
        out.display(),
        reference.display()
    ));
}

#[test]
fn an_index_gives_this_machines_platform_or_the_one_asked_for() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (img_amd, zst_amd) = image_and_zst(dir.path(), 82);
    let (img_arm, zst_arm) = image_and_zst(dir.path(), 83);
    let amd = reg.push_artifact("bty/multi", "amd64", &[(ZST, "disk.img.zst", &zst_amd)]);
    let arm = reg.push_artifact("bty/multi", "arm64", &[(ZST, "disk.img.zst", &zst_arm)]);
    let entry = |digest: &str, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
            "platform": { "os": "linux", "architecture": arch }
        })
    };
    // Sizes in an index must be right for the registry to accept it.
    let size_of = |tag: &str| {
        let resp = ureq::get(&format!("{}/v2/bty/multi/manifests/{tag}", reg.base()))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .unwrap();
        resp.into_body().read_to_vec().unwrap().len()
    };
    let mut a = entry(&arm, "arm64");
    a["size"] = serde_json::json!(size_of("arm64"));
    let mut b = entry(&amd, "amd64");
    b["size"] = serde_json::json!(size_of("amd64"));
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [a, b]
    });
    reg.push_manifest(
        "bty/multi",
        "latest",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let url = format!("oras://127.0.0.1:{}/bty/multi:latest", reg.port);
    let out = dir.path().join("out.img");
    let run = bty(["flash", &url, out.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = if std::env::consts::ARCH == "aarch64" {
        &img_arm
    } else {
        &img_amd
    };
    assert_same(
        &std::fs::read(&out).unwrap(),
        expected,
        "this machine's platform",
    );
    let run = bty([
        "flash",
        &url,
        out.to_str().unwrap(),
        "--yes",
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same(
        &std::fs::read(&out).unwrap(),
        &img_arm,
        "--platform linux/arm64",
    );
    let run = bty([
        "flash",
        &url,
        out.to_str().unwrap(),
        "--yes",
        "--platform",
        "linux/riscv64",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no manifest for linux/riscv64"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_token_flow_works_anonymously_and_with_credentials() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (img, zst) = image_and_zst(dir.path(), 84);
    reg.push_artifact("team/disk", "v2", &[(ZST, "disk.img.zst", &zst)]);
    let out = dir.path().join("out.img");

    let anonymous = TokenProxy::start(reg.port, None);
    let url = format!("oras://127.0.0.1:{}/team/disk:v2", anonymous.port);
    let run = bty_env(&["flash", &url, out.to_str().unwrap(), "--yes"], &[]);
    assert_eq!(run.code, 0, "anonymous bearer flow: {}", run.stderr);
    assert_same(
        &std::fs::read(&out).unwrap(),
        &img,
        "through the token proxy",
    );
    assert!(
        !run.stderr.contains(TOKEN),
        "the token never appears in output"
    );

    let private = TokenProxy::start(reg.port, Some(("alice", "s3cret")));
    let url = format!("oras://127.0.0.1:{}/team/disk:v2", private.port);
    let run = bty_env(
        &["flash", &url, out.to_str().unwrap(), "--yes"],
        &[("DOCKER_CONFIG", "/nonexistent")],
    );
    assert_eq!(run.code, 2, "no credentials: {}", run.stderr);
    assert!(run.stderr.contains("access denied"), "{}", run.stderr);

    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let docker = docker_config(
        &dir.path().join("docker"),
        private.port,
        &format!("{{\"auth\":\"{auth}\"}}"),
    );
    let run = bty_env(
        &["flash", &url, out.to_str().unwrap(), "--yes"],
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "Docker config credentials: {}", run.stderr);
    let run = bty_env(
        &["flash", &url, out.to_str().unwrap(), "--yes"],
        &[
            ("DOCKER_CONFIG", "/nonexistent"),
            ("BTY_REGISTRY_USER", "alice"),
            ("BTY_REGISTRY_PASSWORD", "s3cret"),
        ],
    );
    assert_eq!(run.code, 0, "environment credentials: {}", run.stderr);
    assert!(!run.stderr.contains("s3cret"));

    // An identity token in the Docker config is exchanged by the OAuth2 refresh-token grant.
    let oauth = TokenProxy::start_oauth(reg.port, "refresh-42");
    let url = format!("oras://127.0.0.1:{}/team/disk:v2", oauth.port);
    let docker2 = docker_config(
        &dir.path().join("docker2"),
        oauth.port,
        "{\"auth\":\"\",\"identitytoken\":\"refresh-42\"}",
    );
    let run = bty_env(
        &["flash", &url, out.to_str().unwrap(), "--yes"],
        &[("DOCKER_CONFIG", docker2.to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "identity token: {}", run.stderr);
    let run = bty_env(
        &["flash", &url, out.to_str().unwrap(), "--yes"],
        &[("DOCKER_CONFIG", "/nonexistent")],
    );
    assert_eq!(run.code, 2, "without the identity token: {}", run.stderr);
}

/// A Docker config folder whose `config.json` has one entry for `127.0.0.1:PORT`.
fn docker_config(dir: &std::path::Path, port: u16, entry: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!("{{\"auths\":{{\"127.0.0.1:{port}\":{entry}}}}}"),
    )
    .unwrap();
    dir.to_path_buf()
}

#[test]
fn catalogs_published_as_artifacts_and_refusals() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (img, zst) = image_and_zst(dir.path(), 85);
    reg.push_artifact("bty/disk", "v1", &[(ZST, "disk.img.zst", &zst)]);
    reg.push_artifact("bty/sigonly", "v1", &[(SIG, "disk.sig", b"signature")]);
    let disk = format!("oras://127.0.0.1:{}/bty/disk:v1", reg.port);
    let catalog = format!(
        "version = 1\n[[images]]\nname = \"disk\"\nsrc = \"{disk}\"\n[[images]]\nname = \"liar\"\nsrc = \"{disk}\"\nsha256 = \"{}\"\n",
        "1".repeat(64)
    );
    // Both entries share a src; bty keeps the first, so publish the liar in its own catalog.
    let (good, liar) = catalog.split_at(catalog.find("[[images]]\nname = \"liar\"").unwrap());
    reg.push_artifact(
        "bty/catalog",
        "v1",
        &[("application/toml", "catalog.toml", good.as_bytes())],
    );
    reg.push_artifact(
        "bty/catalog",
        "liar",
        &[(
            "application/toml",
            "catalog.toml",
            format!("version = 1\n{liar}").as_bytes(),
        )],
    );

    let empty_root = dir.path().join("none");
    let env = [("BTY_IMAGE_ROOT", empty_root.to_str().unwrap())];
    let cat = format!("oras://127.0.0.1:{}/bty/catalog:v1", reg.port);
    let run = bty_env(&["catalog", &cat, "--json"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.last_json()["images"][0]["name"], "disk");

    let out = dir.path().join("out.img");
    let run = bty_env(
        &[
            "flash",
            "--catalog",
            &cat,
            "--image",
            "disk",
            out.to_str().unwrap(),
            "--yes",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_same(&std::fs::read(&out).unwrap(), &img, "catalog → oras");

    write(&out, b"keep");
    let liar_cat = format!("oras://127.0.0.1:{}/bty/catalog:liar", reg.port);
    let run = bty_env(
        &[
            "flash",
            "--catalog",
            &liar_cat,
            "--image",
            "liar",
            out.to_str().unwrap(),
            "--yes",
        ],
        &env,
    );
    assert_eq!(
        run.code, 2,
        "a catalog digest that contradicts the registry: {}",
        run.stderr
    );
    assert!(run.stderr.contains("says sha256"), "{}", run.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");

    let run = bty([
        "flash",
        &format!("oras://127.0.0.1:{}/bty/sigonly:v1", reg.port),
        out.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no disk-image layer"), "{}", run.stderr);
    let run = bty([
        "flash",
        &format!("oras://127.0.0.1:{}/bty/missing:v1", reg.port),
        out.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"keep",
        "nothing written on refusals"
    );
}
