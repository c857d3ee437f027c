//! The netboot environment's DHCP hook (`netboot/udhcpc.script`) run by `sh` with a fake `ip`
//! that records its arguments: a normal lease is configured; a link-local one (a BMC's own
//! DHCP on its virtual NIC) is not used and the NIC is taken down.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn run_hook(ip: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let fake = dir.path().join("ip");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"ip $*\" >>'{}'\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kmsg = dir.path().join("kmsg");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../netboot/udhcpc.script");
    let out = Command::new("sh")
        .arg(&script)
        .arg("bound")
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .env("interface", "eth9")
        .env("ip", ip)
        .env("mask", "24")
        .env("BTY_KMSG", &kmsg)
        .env("BTY_RESOLV_CONF", dir.path().join("resolv.conf"))
        .env("dns", "10.0.2.3")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&calls).unwrap_or_default(),
        std::fs::read_to_string(&kmsg).unwrap_or_default(),
    )
}

#[test]
fn a_link_local_lease_is_not_used() {
    let (calls, log) = run_hook("169.254.3.1");
    assert_eq!(calls.trim(), "ip link set eth9 down", "{calls}");
    assert!(log.contains("link-local 169.254.3.1"), "{log}");
}

#[test]
fn a_lan_lease_is_configured() {
    let (calls, log) = run_hook("10.0.2.15");
    assert!(
        calls.contains("ip addr add 10.0.2.15/24 dev eth9"),
        "{calls}"
    );
    assert!(log.contains("eth9 10.0.2.15"), "{log}");
}
