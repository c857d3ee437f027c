//! `bty-web show-config`, and `export` / `import` of a state bundle.

mod common;

use std::process::Command;

use common::Server;
use serde_json::json;

fn bty_web(state: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bty-web"));
    cmd.args(args)
        .env("BTY_PATHS_STATE_DIR", state)
        .env_remove("BTY_ADMIN_PASSWORD")
        .env_remove("BTY_CONFIG_FILE")
        .env_remove("BTY_CONFIG_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn show_config_names_every_source_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bty.toml");
    std::fs::write(
        &file,
        "[server]\nport = 9123\n[admin]\npassword = \"hunter22\"\n",
    )
    .unwrap();
    let (code, out, err) = bty_web(
        dir.path(),
        &["show-config", "--config", file.to_str().unwrap()],
        &[("BTY_SERVER_HOST", "127.0.0.1")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "server.port = \"9123\"  # file {}",
            file.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("server.host = \"127.0.0.1\"  # env BTY_SERVER_HOST"),
        "{out}"
    );
    assert!(out.contains("admin.password = \"********\""), "{out}");
    assert!(!out.contains("hunter22"));
    assert!(out.contains("server.public_url = \"\"  # default"), "{out}");
    // A broken file or value stops with exit 2 and says why.
    std::fs::write(&file, "[server\n").unwrap();
    let (code, _, err) = bty_web(
        dir.path(),
        &["show-config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    let (code, _, err) = bty_web(
        dir.path(),
        &["show-config", "--config", "/nonexistent.toml"],
        &[("BTY_SERVER_PORT", "x")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("server.port"), "{err}");
}

#[test]
fn export_then_import_keeps_machines_and_catalog() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let r = c.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": "https://h.example/a.img.zst", "sha256": "ab".repeat(32)}),
    );
    assert_eq!(r.status, 201);
    let image_ref = r.json()["bty_image_ref"].as_str().unwrap().to_string();
    let r = c.json(
        "PUT",
        "/machines/aa:bb:cc:dd:ee:20",
        &json!({"bty_image_ref": image_ref, "boot_mode": "bty-flash-always", "target_disk_serial": "S9", "labels": ["rack 1"]}),
    );
    assert_eq!(r.status, 200);
    let bundle = tempfile::tempdir().unwrap();
    let (code, out, err) = bty_web(
        &s.state_dir(),
        &["export", bundle.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 1 machines"), "{out}");
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.path().join("inventory.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["bty_export_version"], 3);
    assert_eq!(doc["machines"][0]["mac"], "aa:bb:cc:dd:ee:20");

    let fresh = tempfile::tempdir().unwrap();
    let (code, out, err) = bty_web(
        fresh.path(),
        &["import", bundle.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported 1 machines and 1 new catalog entries"),
        "{out}"
    );
    let db = rusqlite::Connection::open(fresh.path().join("state.db")).unwrap();
    let (mode, serial, r): (String, String, String) = db
        .query_row(
            "SELECT boot_mode, target_disk_serial, bty_image_ref FROM machines WHERE mac = 'aa:bb:cc:dd:ee:20'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (mode.as_str(), serial.as_str(), r),
        ("bty-flash-always", "S9", image_ref)
    );
    let label: String = db
        .query_row("SELECT label FROM machine_labels", [], |r| r.get(0))
        .unwrap();
    assert_eq!(label, "rack 1");
}

#[test]
fn import_reads_upstream_bundles_and_refuses_others() {
    let bundle = tempfile::tempdir().unwrap();
    // As upstream writes it: inventory only, columns as native JSON or JSON strings.
    let doc = json!({
        "bty_export_version": 3,
        "exported_at": "2026-06-01T00:00:00.000000+00:00",
        "exported_by_bty_version": "0.47.0",
        "machines": [
            {"mac": "AA-BB-CC-DD-EE-30", "known_disks": [{"path": "/dev/sda", "serial": "X"}], "known_disks_at": "t", "hw_lshw": "{\"id\": \"box\"}", "hw_lshw_at": "t"},
            {"mac": "aa:bb:cc:dd:ee:31", "known_disks": null, "known_disks_at": null, "hw_lshw": null, "hw_lshw_at": null}
        ]
    });
    std::fs::write(bundle.path().join("inventory.json"), doc.to_string()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, _, err) = bty_web(
        state.path(),
        &["import", bundle.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let db = rusqlite::Connection::open(state.path().join("state.db")).unwrap();
    let (mode, disks, lshw): (String, String, String) = db
        .query_row(
            "SELECT boot_mode, known_disks, hw_lshw FROM machines WHERE mac = 'aa:bb:cc:dd:ee:30'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(mode, "bty-inventory");
    assert!(disks.contains("/dev/sda"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&lshw).unwrap()["id"],
        "box"
    );

    for bad in [
        json!({"bty_export_version": 2, "machines": []}),
        json!({"bty_export_version": 3, "machines": [{"mac": "nope"}]}),
    ] {
        std::fs::write(bundle.path().join("inventory.json"), bad.to_string()).unwrap();
        let (code, _, err) = bty_web(
            state.path(),
            &["import", bundle.path().to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 1, "{bad}: {err}");
    }
    // An 0.77 bundle with a diskless machine: refused with the reason, nothing imported.
    let ramboot = json!({"bty_export_version": 3, "machines": [
        {"mac": "aa:bb:cc:dd:ee:40", "boot_mode": "ramboot", "bty_image_ref": "ab".repeat(32)}
    ]});
    std::fs::write(bundle.path().join("inventory.json"), ramboot.to_string()).unwrap();
    let (code, _, err) = bty_web(
        state.path(),
        &["import", bundle.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("aa:bb:cc:dd:ee:40") && err.contains("diskless"),
        "{err}"
    );
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM machines WHERE mac = 'aa:bb:cc:dd:ee:40'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = bty_web(
        state.path(),
        &["import", empty.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("inventory.json"), "{err}");
}

/// Logs fit a service: no ANSI colour codes when stderr is not a terminal, one JSON object a
/// line with `BTY_LOG_FORMAT=json`.
#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let s = Server::start_with(&[("BTY_LOG", "info")]);
    let warning = s
        .startup
        .iter()
        .find(|l| l.contains("admin password is the default"))
        .unwrap_or_else(|| panic!("no default-password warning in {:?}", s.startup));
    assert!(!warning.contains('\u{1b}'), "ANSI codes in {warning:?}");
    assert!(warning.contains("WARN"), "{warning}");
    drop(s);
    let s = Server::start_with(&[("BTY_LOG", "info"), ("BTY_LOG_FORMAT", "json")]);
    let line = s
        .startup
        .iter()
        .find(|l| l.contains("admin password is the default"))
        .unwrap_or_else(|| panic!("no default-password warning in {:?}", s.startup));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN");
    assert!(v["fields"]["message"].as_str().unwrap().contains("bty-lab"));
}

/// A state database written by a newer release is refused at start, untouched.
#[test]
fn a_newer_schema_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
    }
    let (code, _, err) = bty_web(
        dir.path(),
        &["--config", "/nonexistent.toml"],
        &[("BTY_SERVER_HOST", "127.0.0.1"), ("BTY_SERVER_PORT", "0")],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("schema version 999") && err.contains("newer release"),
        "{err}"
    );
    let c = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999);
}
