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

/// The secrets `init` wrote into DIR/bty.toml.
fn init_secrets(dir: &std::path::Path) -> (String, String) {
    let t: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("bty.toml")).unwrap()).unwrap();
    (
        t["admin"]["password"].as_str().unwrap().to_string(),
        t["server"]["session_secret"].as_str().unwrap().to_string(),
    )
}

/// `init` for each style: the files, their modes, secrets once each, output stable apart from
/// the secrets (compared with `tests/fixtures/init/`; `BTY_UPDATE_FIXTURES=1` rewrites them),
/// existing files kept unless `--force`, and the configuration usable as it is.
#[test]
fn init_writes_a_private_config_and_the_service_files() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/init");
    let update = std::env::var_os("BTY_UPDATE_FIXTURES").is_some();
    for (flag, service) in [
        ("--unit", "bty-web.service"),
        ("--quadlet", "bty-web.container"),
        ("--compose", "compose.yaml"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let (code, stdout, err) = bty_web(dir.path(), &["init", out.to_str().unwrap(), flag], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("the admin password is in"), "{stdout}");
        assert_eq!(common::file_mode(&out.join("bty.toml")), 0o600);
        assert_eq!(common::file_mode(&out.join(service)), 0o644);
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want = vec!["bty.toml".to_string(), service.to_string()];
        want.sort();
        assert_eq!(names, want, "nothing else is written");
        let (pw, key) = init_secrets(&out);
        let all: String = names
            .iter()
            .map(|n| std::fs::read_to_string(out.join(n)).unwrap())
            .collect();
        assert_eq!(all.matches(&pw).count(), 1, "the password is written once");
        assert_eq!(
            all.matches(&key).count(),
            1,
            "the session secret is written once"
        );
        for n in &names {
            let text = std::fs::read_to_string(out.join(n))
                .unwrap()
                .replace(&pw, "<admin-password>")
                .replace(&key, "<session-secret>");
            let fixture = fixtures.join(flag.trim_start_matches("--")).join(n);
            if update {
                std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
                std::fs::write(&fixture, &text).unwrap();
            }
            let expected = std::fs::read_to_string(&fixture).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (BTY_UPDATE_FIXTURES=1 writes it)",
                    fixture.display()
                )
            });
            assert_eq!(
                text, expected,
                "{flag} {n} changed; BTY_UPDATE_FIXTURES=1 rewrites the fixture"
            );
        }
        // Kept unless --force; --force makes new secrets.
        let (code, _, err) = bty_web(dir.path(), &["init", out.to_str().unwrap(), flag], &[]);
        assert_eq!(code, 2);
        assert!(err.contains("already exist"), "{err}");
        assert_eq!(init_secrets(&out), (pw.clone(), key.clone()));
        let (code, _, _) = bty_web(
            dir.path(),
            &["init", out.to_str().unwrap(), flag, "--force"],
            &[],
        );
        assert_eq!(code, 0);
        assert_ne!(init_secrets(&out).0, pw);
        // The configuration loads; show-config masks both secrets and names the file.
        let (code, shown, err) = bty_web(
            dir.path(),
            &[
                "--config",
                out.join("bty.toml").to_str().unwrap(),
                "show-config",
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let (pw, key) = init_secrets(&out);
        assert!(!shown.contains(&pw) && !shown.contains(&key), "{shown}");
        assert!(shown.contains("admin.password = \"********\""), "{shown}");
        let from_file = format!(
            "server.session_secret = \"********\"  # file {}",
            out.join("bty.toml").display()
        );
        assert!(shown.contains(&from_file), "{shown}");
    }
}

/// The unit passes `systemd-analyze verify` with no warning (unknown keys, bad values), with
/// its ExecStart pointed at the binary under test.
#[test]
fn the_systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = bty_web(dir.path(), &["init", out.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let unit = std::fs::read_to_string(out.join("bty-web.service"))
        .unwrap()
        .replace("/usr/bin/bty-web", env!("CARGO_BIN_EXE_bty-web"));
    let path = dir.path().join("bty-web.service");
    std::fs::write(&path, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (run-tests installs systemd)");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("bty-web.service"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");
}
