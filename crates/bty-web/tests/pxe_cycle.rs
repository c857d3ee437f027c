//! The flash cycle, table-driven over sequences of PXE contacts, netboot fetches, plans,
//! completions, failures and server restarts — against the real binary on 127.0.0.1.

mod common;

use common::{Client, Server};
use serde_json::json;

const KERNEL: &str = "bty-netboot-x86_64.vmlinuz";
const INITRD: &str = "bty-netboot-x86_64.initrd";

#[derive(Debug, Clone, Copy)]
enum Step {
    /// `/pxe/{mac}` must serve this kind of script.
    Pxe(Kind),
    /// The netboot environment's kernel and initrd are fetched with `?mac=`.
    Fetch,
    /// `/pxe/{mac}/plan` must answer this mode.
    Plan(&'static str),
    Done,
    Failed,
    /// Upstream 0.61+'s `POST /status` with `done` / `failed`.
    StatusDone,
    StatusFailed,
    Inventory,
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Chain,
    Disk,
    Exit,
}

use Kind::*;
use Step::*;

fn kind_of(script: &str) -> Kind {
    if script.contains("kernel ${bty-base}/boot/") {
        Chain
    } else if script.contains("sanboot --no-describe") {
        Disk
    } else {
        Exit
    }
}

struct Lab {
    server: Option<Server>,
    admin: Client,
}

impl Lab {
    fn new() -> Lab {
        let server = Server::start();
        let boot = server.state_dir().join("boot");
        std::fs::write(boot.join(KERNEL), vec![1u8; 4096]).unwrap();
        std::fs::write(boot.join(INITRD), vec![2u8; 8192]).unwrap();
        let mut admin = server.signed_in("bty-lab");
        let r = admin.json(
            "POST",
            "/catalog/entries",
            &json!({"image_url": "https://images.example/debian-13.img.zst", "sha256": "ab".repeat(32)}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        Lab {
            server: Some(server),
            admin,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn image_ref(&mut self) -> String {
        self.admin.get("/catalog/entries").json()[0]["bty_image_ref"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn bind(&mut self, mac: &str, mode: &str, serial: &str) {
        let r = self.image_ref();
        let resp = self.admin.json(
            "PUT",
            &format!("/machines/{mac}"),
            &json!({"boot_mode": mode, "bty_image_ref": r, "target_disk_serial": serial}),
        );
        assert_eq!(resp.status, 200, "{}", resp.body);
    }

    fn run(&mut self, mac: &str, steps: &[Step], what: &str) {
        let hyph = mac.replace(':', "-").to_uppercase();
        for (i, step) in steps.iter().enumerate() {
            let mut c = self.server().client();
            match *step {
                Pxe(want) => {
                    let r = c.get(&format!("/pxe/{hyph}"));
                    assert_eq!(r.status, 200);
                    assert_eq!(
                        kind_of(&r.body),
                        want,
                        "{what}: step {i} {step:?}:\n{}",
                        r.body
                    );
                }
                Fetch => {
                    for f in [KERNEL, INITRD] {
                        let r = c.get(&format!("/boot/{f}?mac={mac}"));
                        assert_eq!(r.status, 200, "{what}: step {i}");
                    }
                }
                Plan(mode) => {
                    let r = c.get(&format!("/pxe/{mac}/plan"));
                    assert_eq!(r.json()["mode"], mode, "{what}: step {i}: {}", r.body);
                }
                Done => assert_eq!(
                    c.request("POST", &format!("/pxe/{mac}/done"), &[], None)
                        .status,
                    204
                ),
                Failed => {
                    let r = c.json(
                        "POST",
                        &format!("/pxe/{mac}/failed"),
                        &json!({"stage": "writing", "reason": "I/O error"}),
                    );
                    assert_eq!(r.status, 204, "{}", r.body);
                }
                StatusDone | StatusFailed => {
                    let body = if matches!(*step, StatusDone) {
                        json!({"status": "done"})
                    } else {
                        json!({"status": "failed", "reason": "write: I/O error"})
                    };
                    let r = c.json("POST", &format!("/pxe/{mac}/status"), &body);
                    assert_eq!(r.status, 204, "{what}: {}", r.body);
                }
                Inventory => {
                    let r = c.json(
                        "POST",
                        &format!("/pxe/{mac}/inventory"),
                        &json!({"disks": [{"path": "/dev/vda", "serial": "S1", "size": "64G"}]}),
                    );
                    assert_eq!(r.status, 204, "{}", r.body);
                }
                Restart => {
                    let s = self.server.take().unwrap();
                    let s = s.restart(&[]);
                    self.admin = s.signed_in("bty-lab");
                    self.server = Some(s);
                }
            }
        }
    }
}

#[test]
fn flash_cycles() {
    let mut lab = Lab::new();
    let cases: Vec<(&str, &str, Vec<Step>)> = vec![
        (
            "flash-once: flash, then the disk for good, across restarts",
            "bty-flash-once",
            vec![
                Pxe(Chain),
                Fetch,
                Plan("flash"),
                Done,
                Pxe(Disk),
                Pxe(Disk),
                Restart,
                Pxe(Disk),
            ],
        ),
        (
            "flash-always: flash and disk alternate",
            "bty-flash-always",
            vec![
                Pxe(Chain),
                Fetch,
                Done,
                Pxe(Disk),
                Pxe(Chain),
                Fetch,
                Done,
                Pxe(Disk),
                Pxe(Chain),
            ],
        ),
        (
            "flash-always: the second cycle crashes -> flasher again, never the disk",
            "bty-flash-always",
            vec![
                Pxe(Chain),
                Fetch,
                Done,
                Pxe(Disk),
                Pxe(Chain),
                Fetch,
                /* crash: no done */ Pxe(Chain),
                Restart,
                Pxe(Chain),
                Fetch,
                Done,
                Pxe(Disk),
            ],
        ),
        (
            "a failed flash ends the cycle without a completion",
            "bty-flash-once",
            vec![
                Pxe(Chain),
                Fetch,
                Failed,
                Pxe(Chain),
                Restart,
                Pxe(Chain),
                Fetch,
                Done,
                Pxe(Disk),
            ],
        ),
        (
            "0.77 wire: flash-once completed through /status, then the disk",
            "bty-flash-once",
            vec![
                Pxe(Chain),
                Fetch,
                Plan("flash"),
                StatusDone,
                Pxe(Disk),
                Restart,
                Pxe(Disk),
            ],
        ),
        (
            "0.77 wire: flash-always cycles end with /status done",
            "bty-flash-always",
            vec![
                Pxe(Chain),
                Fetch,
                StatusDone,
                Pxe(Disk),
                Pxe(Chain),
                Fetch,
                StatusDone,
                Pxe(Disk),
                Pxe(Chain),
            ],
        ),
        (
            "0.77 wire: /status failed ends the cycle without a completion",
            "bty-flash-once",
            vec![
                Pxe(Chain),
                Fetch,
                StatusFailed,
                Pxe(Chain),
                Fetch,
                StatusDone,
                Pxe(Disk),
            ],
        ),
        (
            "done without a booted flasher does not boot the disk",
            "bty-flash-once",
            vec![Done, Pxe(Chain), Plan("flash")],
        ),
        (
            "a crash before done in a restarted server",
            "bty-flash-once",
            vec![Pxe(Chain), Fetch, Plan("flash"), Restart, Pxe(Chain)],
        ),
    ];
    for (i, (what, mode, steps)) in cases.iter().enumerate() {
        let mac = format!("52:54:00:00:01:{i:02x}");
        lab.bind(&mac, mode, "S1");
        lab.run(&mac, steps, what);
    }

    // Inventory: a new machine is discovered for inventory; after it reports, its disk boots once.
    lab.run(
        "52:54:00:00:02:01",
        &[
            Pxe(Chain),
            Plan("inventory"),
            Fetch,
            Pxe(Chain),
            Inventory,
            Pxe(Disk),
            Pxe(Chain),
        ],
        "inventory",
    );

    // Changing the binding starts a new cycle.
    let mac = "52:54:00:00:03:01";
    lab.bind(mac, "bty-flash-once", "S1");
    lab.run(
        mac,
        &[Pxe(Chain), Fetch, Done, Pxe(Disk)],
        "before the change",
    );
    lab.bind(mac, "bty-flash-once", "S2");
    lab.run(
        mac,
        &[Pxe(Chain), Fetch, Done, Pxe(Disk)],
        "after the change",
    );
    // Re-saving the same binding does not.
    lab.bind(mac, "bty-flash-once", "S2");
    lab.run(mac, &[Pxe(Disk)], "same binding saved again");

    // A fetch of a missing file does not arm.
    let mac = "52:54:00:00:04:01";
    lab.bind(mac, "bty-flash-once", "S1");
    let mut c = lab.server().client();
    assert_eq!(
        c.get(&format!("/boot/missing.vmlinuz?mac={mac}")).status,
        404
    );
    lab.run(mac, &[Done, Pxe(Chain)], "404 fetch");

    // Ordinary modes.
    let mac = "52:54:00:00:05:01";
    let r = lab.admin.json(
        "PUT",
        &format!("/machines/{mac}"),
        &json!({"boot_mode": "ipxe-exit"}),
    );
    assert_eq!(r.status, 200);
    lab.run(
        mac,
        &[Pxe(Disk), Plan("exit"), Fetch, Pxe(Disk)],
        "ipxe-exit",
    );
    let r = lab.admin.json(
        "PUT",
        &format!("/machines/{mac}"),
        &json!({"boot_mode": "bty-tui"}),
    );
    assert_eq!(r.status, 200);
    lab.run(
        mac,
        &[Pxe(Chain), Plan("interactive"), Fetch, Done, Pxe(Chain)],
        "bty-tui",
    );

    // The audit log tells the story of a cycle.
    let kinds = lab
        .admin
        .event_kinds("subject_id=52:54:00:00:01:02&limit=500");
    for k in [
        "netboot.flasher.armed",
        "machine.flashed",
        "netboot.pxe.offered",
    ] {
        assert!(kinds.iter().any(|have| have == k), "{k}: {kinds:?}");
    }
}

#[test]
fn orphaned_and_unbound_flash_modes_fall_back() {
    let mut lab = Lab::new();
    let mac = "52:54:00:00:06:01";
    lab.bind(mac, "bty-flash-once", "S1");
    // The catalog entry goes away: the machine's ref is orphaned.
    let src = lab.admin.get("/catalog/entries").json()[0]["src"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        lab.admin
            .delete(&format!("/catalog/entries?src={}", common::urlencode(&src)))
            .status,
        204
    );
    lab.run(
        mac,
        &[Pxe(Exit), Plan("interactive"), Fetch, Done, Pxe(Exit)],
        "orphan",
    );
    let ev = lab
        .admin
        .get(&format!(
            "/events?subject_id={mac}&kind=netboot.pxe.offered&limit=1"
        ))
        .json();
    assert_eq!(ev["events"][0]["details"]["reason"], "orphan_ref");
}

/// The HTTP conversation of upstream's own end-to-end tests, step by step: form login, a
/// catalog entry, a JSON binding, the bootstrap, the flasher chain, the armed fetch, the plan,
/// done, the local-disk script, form logout.
#[test]
fn upstream_style_session() {
    let s = Server::start();
    std::fs::write(s.state_dir().join("boot").join(KERNEL), b"kernel").unwrap();
    let mut op = s.client();
    let r = op.form("/ui/login", &[("password", "bty-lab")]);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/ui/dashboard"))
    );
    let r = op.json(
        "POST",
        "/catalog/entries",
        &json!({"image_url": "https://images.example/lab.img.zst"}),
    );
    assert_eq!(r.status, 201);
    let image_ref = r.json()["bty_image_ref"].as_str().unwrap().to_string();
    let mac = "52:54:00:ab:cd:ef";
    let r = op.json(
        "PUT",
        &format!("/machines/{mac}"),
        &json!({"bty_image_ref": image_ref, "boot_mode": "bty-flash-once", "target_disk_serial": "QM00001", "hostname": "lab-1"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["hostname"], "lab-1");

    let mut fw = s.client();
    let boot = fw.get("/pxe-bootstrap.ipxe").body;
    assert!(boot.contains("/pxe/${mac:hexhyp}"));
    let chain = fw.get("/pxe/52-54-00-ab-cd-ef").body;
    assert!(chain.starts_with("#!ipxe\n") && chain.contains(&format!("/boot/{KERNEL}?mac={mac}")));
    assert_eq!(fw.get(&format!("/boot/{KERNEL}?mac={mac}")).status, 200);
    let plan = fw.get(&format!("/pxe/{mac}/plan")).json();
    assert_eq!(
        plan,
        // Through the image cache (on by default): keyed by the ref, as the entry has no digest.
        json!({"mode": "flash", "image": format!("{}/cache/sha256/{image_ref}/lab.img.zst", s.base), "target_disk_serial": "QM00001",
               "name": "lab.img.zst", "format": "img.zst"})
    );
    assert_eq!(
        fw.request("POST", &format!("/pxe/{mac}/done"), &[], None)
            .status,
        204
    );
    let local = fw.get("/pxe/52-54-00-ab-cd-ef").body;
    assert!(
        local.contains(
            "iseq ${platform} efi && exit || sanboot --no-describe --drive 0x80 || exit\n"
        ),
        "{local}"
    );
    let m = op.get(&format!("/machines/{mac}")).json();
    assert!(m["last_flashed_at"].is_string() && m["boot_mode"] == "bty-flash-once");
    let r = op.logout();
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    assert_eq!(op.get("/machines").status, 401);
}
