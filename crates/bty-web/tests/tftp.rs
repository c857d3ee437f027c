//! The built-in TFTP server with a real client (curl's tftp://): whole files equal with the
//! default and negotiated block sizes, several transfers at once, traversal refused, a clear
//! error for missing files; and `/netboot` reporting what is there.

mod common;

use std::process::Command;

use common::Server;

fn curl_tftp(port: u16, path: &str, extra: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--path-as-is", "--max-time", "30"])
        .args(extra)
        .arg(format!("tftp://127.0.0.1:{port}/{path}"))
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tftp_serves_the_boot_folder() {
    let s = Server::start_with(&[
        ("BTY_TFTP_ENABLED", "true"),
        ("BTY_TFTP_BIND", "127.0.0.1:0"),
    ]);
    let port = s.tftp_port();
    let boot = s.state_dir().join("boot");
    let kpxe: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let efi: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(boot.join("undionly.kpxe"), &kpxe).unwrap();
    std::fs::write(boot.join("ipxe.efi"), &efi).unwrap();
    // Exactly a multiple of the 512-byte block: the transfer ends with an empty block.
    std::fs::write(boot.join("even.bin"), vec![5u8; 4096]).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", boot.join("escape")).unwrap();

    let (code, data, err) = curl_tftp(port, "undionly.kpxe", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(data, kpxe, "default 512-byte blocks");
    let (code, data, err) = curl_tftp(port, "ipxe.efi", &["--tftp-blksize", "1468"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(data, efi, "negotiated block size");
    let (code, data, _) = curl_tftp(port, "even.bin", &[]);
    assert_eq!((code, data.len()), (0, 4096));

    let handles: Vec<_> = (0..6)
        .map(|i| {
            let name = if i % 2 == 0 {
                "ipxe.efi"
            } else {
                "undionly.kpxe"
            };
            std::thread::spawn(move || curl_tftp(port, name, &["--tftp-blksize", "1024"]))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (code, data, err) = h.join().unwrap();
        assert_eq!(code, 0, "{err}");
        assert_eq!(&data, if i % 2 == 0 { &efi } else { &kpxe });
    }

    // curl's exit 68 is "TFTP: file not found", 69 "TFTP: permission problem".
    let (code, _, _) = curl_tftp(port, "missing.efi", &[]);
    assert_eq!(code, 68);
    for bad in ["../state.db", "..%2Fstate.db", "escape"] {
        let (code, data, err) = curl_tftp(port, bad, &[]);
        assert!(code == 69 || code == 68, "{bad}: {code} {err}");
        assert!(data.is_empty(), "{bad}");
    }

    let mut admin = s.signed_in("bty-lab");
    let st = admin.get("/netboot").json();
    assert_eq!(st["tftp"]["enabled"], true);
    assert_eq!(st["tftp"]["listening"], format!("127.0.0.1:{port}"));
    let ipxe = st["ipxe"].as_array().unwrap();
    assert_eq!(
        ipxe[0],
        serde_json::json!({"name": "undionly.kpxe", "present": true, "size_bytes": 70_000})
    );
    assert_eq!(ipxe[2]["present"], false);
    assert_eq!(st["netboot"][0]["name"], "bty-netboot-x86_64.vmlinuz");
}

#[test]
fn a_tftp_port_in_use_does_not_stop_the_server() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let s = Server::start_with(&[("BTY_TFTP_ENABLED", "true"), ("BTY_TFTP_BIND", &addr)]);
    assert!(
        s.startup.iter().any(|l| l.contains("tftp: cannot listen")),
        "{:?}",
        s.startup
    );
    let mut admin = s.signed_in("bty-lab");
    assert_eq!(
        admin.get("/netboot").json()["tftp"]["listening"],
        serde_json::Value::Null
    );
}
