//! The fleet loop for real: QEMU (TCG) with SeaBIOS and Debian's iPXE ROM boots from bty-web on
//! 127.0.0.1 through user-mode networking (`bootfile=http://10.0.2.2:PORT/pxe-bootstrap.ipxe`),
//! runs our netboot environment (netboot/build.sh, with this build's `bty`), and the agent
//! writes the bound image onto the virtio disk with serial BTYTEST. The first boot is stopped
//! as soon as the server sees progress (a power cut mid-write; the disk held an old bootable
//! image, which a boot from the disk alone must then not find): the next boot must get the flasher
//! again and finish; the boot after that must boot the disk, whose boot sector prints a marker.
//! With OVMF, the flash and the local-disk script are checked. Serial logs are kept in the
//! target folder for failures.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

const MAC: &str = "52:54:00:12:34:56";
/// The consoles of bty-web's default command line.
const CONSOLES: &str = "console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200 modprobe.blacklist=nouveau,rndis_host";
/// QEMU's usb-net: vendor NetChip, product Ethernet/RNDIS gadget.
const USB_NET_ID: &str = "0525:a4a2";
/// What the disk's old image prints when it boots.
const OLD_MARKER: &str = "BTY-OLD-IMAGE";
/// A boot timeout: bounds a hang, does not measure speed.
const BOOT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn work() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("netboot-e2e")
}

fn sh(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's QEMU and firmware (qemu-system-x86, seabios, ipxe-qemu, ovmf), which
/// `./run-tests` installs.
const QEMU: &str = "/usr/bin/qemu-system-x86_64";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The netboot files, made once per target folder, and QEMU.
fn prepare() -> (PathBuf, PathBuf) {
    static ONCE: Once = Once::new();
    let w = work();
    ONCE.call_once(|| {
        std::fs::create_dir_all(&w).unwrap();
        let bty = PathBuf::from(env!("CARGO_BIN_EXE_bty-web")).with_file_name("bty");
        assert!(
            bty.exists(),
            "{} missing: run the tests with --workspace",
            bty.display()
        );
        sh(
            Command::new("bash")
                .arg(repo().join("netboot/build.sh"))
                .arg("--out")
                .arg(w.join("netboot"))
                .arg("--bty")
                .arg(&bty),
            "netboot/build.sh",
        );
    });
    for f in [
        QEMU,
        OVMF_CODE,
        OVMF_VARS,
        "/usr/lib/ipxe/qemu/efi-virtio.rom",
    ] {
        assert!(
            Path::new(f).exists(),
            "{f} missing: ./run-tests installs qemu-system-x86, ipxe-qemu and ovmf"
        );
    }
    (w.join("netboot"), PathBuf::from(QEMU))
}

/// A 512-byte boot sector that prints BTY-BOOT-OK through the BIOS and halts.
fn boot_sector() -> Vec<u8> {
    marker_sector(b"BTY-BOOT-OK")
}

/// A 512-byte boot sector that prints `marker` through the BIOS and halts.
fn marker_sector(marker: &[u8]) -> Vec<u8> {
    let mut s = vec![
        0x31, 0xC0, 0x8E, 0xD8, 0xBE, 0x15, 0x7C, 0xAC, 0x84, 0xC0, 0x74, 0x06, 0xB4, 0x0E, 0xCD,
        0x10, 0xEB, 0xF5, 0xF4, 0xEB, 0xFD,
    ];
    s.extend_from_slice(marker);
    s.extend_from_slice(b"\r\n\0");
    s.resize(510, 0);
    s.extend_from_slice(&[0x55, 0xAA]);
    s
}

struct Vm {
    child: Child,
    log: PathBuf,
}

impl Vm {
    fn start(qemu: &Path, port: u16, disk: &Path, log: &Path, uefi: Option<&Path>) -> Vm {
        Self::start_with(qemu, Some(port), disk, log, uefi)
    }

    /// `port: None` boots from the disk only: no NIC at all, so no PXE.
    fn start_with(
        qemu: &Path,
        port: Option<u16>,
        disk: &Path,
        log: &Path,
        uefi: Option<&Path>,
    ) -> Vm {
        let _ = std::fs::remove_file(log);
        let mut cmd = Command::new(qemu);
        cmd.args([
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-display",
            "none",
            "-machine",
            "graphics=off",
        ])
        .args(["-no-reboot", "-monitor", "none"]);
        match port {
            Some(port) => {
                cmd.arg("-netdev")
                    .arg(format!(
                        "user,id=n0,bootfile=http://10.0.2.2:{port}/pxe-bootstrap.ipxe"
                    ))
                    .arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={MAC},bootindex=1"))
                    .args(["-netdev", "user,id=n1", "-device", "qemu-xhci,id=xhci"])
                    .args(["-device", "usb-net,netdev=n1,bus=xhci.0"]);
            }
            None => {
                cmd.args(["-nic", "none"]);
            }
        }
        cmd.arg("-drive")
            .arg(format!("file={},format=raw,if=none,id=t0", disk.display()))
            .args([
                "-device",
                "virtio-blk-pci,drive=t0,serial=BTYTEST,bootindex=2",
            ])
            .arg("-serial")
            .arg(format!("file:{}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(vars) = uefi {
            cmd.arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    vars.display()
                ));
        }
        Vm {
            child: cmd.spawn().expect("qemu"),
            log: log.to_path_buf(),
        }
    }

    fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Wait until `done` says so or the VM exits; false on timeout (the VM is then killed).
    fn wait(&mut self, mut done: impl FnMut(&Vm) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < BOOT {
            if done(self) {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return done(self);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup(s: &Server, netboot: &Path, image_len: usize) -> Vec<u8> {
    let boot = s.state_dir().join("boot");
    for f in ["bty-netboot-x86_64.vmlinuz", "bty-netboot-x86_64.initrd"] {
        std::fs::copy(netboot.join(f), boot.join(f)).unwrap();
    }
    // The image: the marker boot sector, then incompressible data (so writing takes a while).
    let mut image = boot_sector();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while image.len() < image_len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        image.extend_from_slice(&x.to_le_bytes());
    }
    image.truncate(image_len);
    let raw = boot.join("image.raw");
    std::fs::write(&raw, &image).unwrap();
    sh(
        Command::new("zstd")
            .args(["-q", "-f", "--rm"])
            .arg(&raw)
            .arg("-o")
            .arg(boot.join("image.img.zst")),
        "zstd",
    );
    let zst = std::fs::read(boot.join("image.img.zst")).unwrap();
    let sha = common::sha256_hex_bytes(&zst);
    let port = s.base.rsplit(':').next().unwrap();
    let mut admin = s.signed_in("bty-lab");
    let r = admin.json(
        "POST",
        "/catalog/entries",
        // The origin as bty-web reaches it: the guest downloads through the image cache.
        &json!({"image_url": format!("http://127.0.0.1:{port}/boot/image.img.zst"), "sha256": sha}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let image_ref = r.json()["bty_image_ref"].as_str().unwrap().to_string();
    let r = admin.json(
        "PUT",
        &format!("/machines/{MAC}"),
        &json!({"bty_image_ref": image_ref, "boot_mode": "bty-flash-once", "target_disk_serial": "BTYTEST"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    image
}

/// The guest's image came through bty-web's cache: the blob is complete under the catalog's
/// digest and the cache served at least the whole image.
fn assert_flashed_through_cache(s: &Server) {
    let zst = std::fs::read(s.state_dir().join("boot/image.img.zst")).unwrap();
    let sha = common::sha256_hex_bytes(&zst);
    let mut admin = s.signed_in("bty-lab");
    let rows = admin.get("/cache").json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == sha.as_str())
        .unwrap_or_else(|| panic!("no cached blob {sha}: {rows}"));
    assert_eq!(row["state"], "complete", "{row}");
    let m = s.client().get("/metrics").body;
    assert!(
        common::metric(&m, "bty_cache_served_bytes_total") >= zst.len() as u64,
        "the cache served less than the image"
    );
    let plans = admin
        .get(&format!(
            "/events?subject_id={MAC}&kind=netboot.pxe.plan&limit=1"
        ))
        .json();
    let image = plans["events"][0]["details"]["plan"]["image"]
        .as_str()
        .unwrap_or("");
    assert!(
        image.contains(&format!("/cache/sha256/{sha}/image.img.zst")),
        "{plans}"
    );
}

fn port_of(s: &Server) -> u16 {
    s.base.rsplit(':').next().unwrap().parse().unwrap()
}

fn keep_log(vm: &Vm, name: &str) {
    let _ = std::fs::copy(&vm.log, work().join(name));
}

#[test]
fn pxe_flash_crash_retry_and_disk_boot_with_seabios() {
    let (netboot, qemu) = prepare();
    // QEMU's usb-net (0525:a4a2) stands for a BMC's virtual NIC through the test-only list.
    let s = Server::start_with(&[(
        "BTY_NETBOOT_CMDLINE",
        &format!("{CONSOLES} bty.server={{base}} bty.mac={{mac}} bty.bmc_nics={USB_NET_ID}"),
    )]);
    let image = setup(&s, &netboot, 48 << 20);
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    // The disk holds an old, bootable image.
    std::fs::write(&disk, marker_sector(OLD_MARKER.as_bytes())).unwrap();
    sh(
        Command::new("truncate").args(["-s", "128M"]).arg(&disk),
        "truncate",
    );
    let mut admin = s.signed_in("bty-lab");
    let log = dir.path().join("serial.log");

    // Boot 0, from the disk only: the old image boots (the marker check works).
    let mut vm = Vm::start_with(&qemu, None, &disk, &log, None);
    let booted = vm.wait(|v| v.serial().contains(OLD_MARKER));
    keep_log(&vm, "bios-boot0.log");
    assert!(
        booted,
        "the old image did not boot; serial:\n{}",
        vm.serial()
    );
    drop(vm);

    // Boot 1: the power is cut at the first progress report the server sees.
    let mut vm = Vm::start(&qemu, port_of(&s), &disk, &log, None);
    let saw_progress =
        vm.wait(|_| admin.get(&format!("/machines/{MAC}")).json()["flash_progress"].is_object());
    keep_log(&vm, "bios-boot1.log");
    assert!(saw_progress, "no progress seen; serial:\n{}", vm.serial());
    drop(vm);

    // Then from the disk only: the torn disk must not boot the old image.
    let mut vm = Vm::start_with(&qemu, None, &disk, &log, None);
    let settled = vm.wait(|v| {
        let t = v.serial();
        t.contains(OLD_MARKER)
            || t.contains("not a bootable disk")
            || t.contains("No bootable device")
    });
    keep_log(&vm, "bios-boot1-disk-only.log");
    assert!(
        settled,
        "the disk-only boot never ended; serial:\n{}",
        vm.serial()
    );
    assert!(
        !vm.serial().contains(OLD_MARKER),
        "the old image booted after a power cut mid-flash; serial:\n{}",
        vm.serial()
    );
    drop(vm);

    // Boot 2: the flasher again (never the half-written disk), which finishes.
    let mut vm = Vm::start(&qemu, port_of(&s), &disk, &log, None);
    let finished = vm.wait(|v| v.serial().contains("bty: done"));
    keep_log(&vm, "bios-boot2.log");
    assert!(
        finished,
        "second boot did not finish; serial:\n{}",
        vm.serial()
    );
    // The serial console carries the markers (the agent's screen is the monitor), in order.
    let serial = vm.serial();
    let mut at = 0;
    for marker in [
        "bty: start v",
        "bty: stage inventory",
        "bty: stage plan",
        "bty: stage flash image.img.zst",
        "bty: stage writing",
        "bty: download 25%",
        "bty: write 25%",
        "bty: write 50%",
        "bty: write 75%",
        "bty: download 100%",
        "bty: write 100%",
        "bty: done",
    ] {
        let found = serial[at..].find(marker);
        assert!(
            found.is_some(),
            "{marker:?} missing or out of order; serial:\n{serial}"
        );
        at += found.unwrap_or(0);
    }
    assert!(
        serial.contains(&format!("a BMC virtual NIC ({USB_NET_ID})")),
        "the USB NIC was not skipped as a BMC NIC; serial:\n{serial}"
    );
    assert!(
        serial.contains("bty-netboot: the agent's screen is /dev/tty1"),
        "{serial}"
    );
    // The agent reboots; with -no-reboot QEMU then exits. Wait for that before reading the disk.
    let start = Instant::now();
    while !vm.exited() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(vm);
    let written = std::fs::read(&disk).unwrap();
    assert!(
        written[..image.len()] == image[..],
        "the disk does not hold the image"
    );
    let m = admin.get(&format!("/machines/{MAC}")).json();
    assert!(m["last_flashed_at"].is_string(), "{m}");
    assert_flashed_through_cache(&s);
    // The agent posted its inventory: the virtio disk with its serial.
    let serials: Vec<&str> = m["known_disks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["serial"].as_str())
        .collect();
    assert!(serials.contains(&"BTYTEST"), "{m}");

    // Boot 3: the local disk, whose boot sector prints the marker.
    let mut vm = Vm::start(&qemu, port_of(&s), &disk, &log, None);
    let booted = vm.wait(|v| v.serial().contains("BTY-BOOT-OK"));
    keep_log(&vm, "bios-boot3.log");
    assert!(
        booted,
        "the flashed disk did not boot; serial:\n{}",
        vm.serial()
    );
    assert!(!vm.exited() || vm.serial().contains("BTY-BOOT-OK"));
    let ev = admin
        .get(&format!(
            "/events?subject_id={MAC}&kind=netboot.pxe.offered&limit=1"
        ))
        .json();
    assert_eq!(
        ev["events"][0]["details"]["offer_kind"],
        "bty-flash-once-sanboot"
    );
    // The crashed cycle stayed armed without a completion, so boot 2 was offered the flasher.
    let offers = admin
        .get(&format!(
            "/events?subject_id={MAC}&kind=netboot.pxe.offered&limit=50"
        ))
        .json();
    let retried = offers["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["details"]["retry_after_armed_without_completion"] == true);
    assert!(retried, "{offers}");
}

#[test]
fn pxe_flash_with_ovmf() {
    let (netboot, qemu) = prepare();
    let s = Server::start();
    let image = setup(&s, &netboot, 4 << 20);
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    sh(
        Command::new("truncate").args(["-s", "64M"]).arg(&disk),
        "truncate",
    );
    let vars = dir.path().join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let log = dir.path().join("serial.log");
    let mut vm = Vm::start(&qemu, port_of(&s), &disk, &log, Some(&vars));
    let finished = vm.wait(|v| v.serial().contains("bty: done"));
    keep_log(&vm, "uefi-boot1.log");
    assert!(
        finished,
        "UEFI flash did not finish; serial:\n{}",
        vm.serial()
    );
    drop(vm);
    let written = std::fs::read(&disk).unwrap();
    assert!(
        written[..image.len()] == image[..],
        "the disk does not hold the image"
    );
    assert_flashed_through_cache(&s);
    // The next contact serves the local-disk script (UEFI: exit to the firmware's boot order).
    let script = s.client().get(&format!("/pxe/{MAC}")).body;
    assert!(script.contains("iseq ${platform} efi && exit"), "{script}");
}
