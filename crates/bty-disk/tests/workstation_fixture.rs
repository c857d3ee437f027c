//! Discovery and classification on a captured machine (tests/fixtures/workstation, built by
//! make-workstation.py after Linux 6.x sysfs layouts): every transport, serial source, hidden
//! kind and unsafe reason the classifier knows.

use std::path::PathBuf;

use bty_disk::{Classified, SystemRoot, Transport, classify};

fn fixture() -> SystemRoot {
    SystemRoot::at(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workstation"))
}

fn all(image: Option<u64>) -> Vec<Classified> {
    let root = fixture();
    classify(&root, root.disks(), image)
}

fn get<'a>(v: &'a [Classified], name: &str) -> &'a Classified {
    v.iter()
        .find(|c| c.disk.name == name)
        .unwrap_or_else(|| panic!("{name} not discovered"))
}

#[test]
fn every_disk_is_found_with_its_identity() {
    let v = all(None);
    let mut names: Vec<&str> = v.iter().map(|c| c.disk.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dm-0",
            "loop0",
            "md127",
            "mmcblk0",
            "mmcblk0boot0",
            "mmcblk0boot1",
            "mmcblk0rpmb",
            "nvme0n1",
            "sda",
            "sdb",
            "sdc",
            "sdd",
            "sde",
            "sr0",
            "vda",
            "zram0"
        ]
    );
    let t = |n: &str| get(&v, n).disk.transport;
    assert_eq!(t("nvme0n1"), Transport::Nvme);
    assert_eq!(t("sda"), Transport::Sata);
    assert_eq!(t("sdb"), Transport::Usb);
    assert_eq!(t("vda"), Transport::Virtio);
    assert_eq!(t("mmcblk0"), Transport::Mmc);
    assert_eq!(t("zram0"), Transport::Zram);
    assert_eq!(t("loop0"), Transport::Loop);
    let s = |n: &str| get(&v, n).disk.serial.clone();
    assert_eq!(
        s("nvme0n1").as_deref(),
        Some("S5GXNF0R123456"),
        "NVMe serial from sysfs"
    );
    assert_eq!(
        s("sda").as_deref(),
        Some("WD-WX12A3456789"),
        "SATA serial from the udev database"
    );
    assert_eq!(
        s("sdb").as_deref(),
        Some("4C530001230825108381"),
        "USB serial from the udev database"
    );
    assert_eq!(
        s("vda").as_deref(),
        Some("bty-test-disk-01"),
        "virtio serial from the block folder"
    );
    assert_eq!(
        get(&v, "nvme0n1").disk.wwid.as_deref(),
        Some("eui.002538b111b2c3d4")
    );
    let sda = &get(&v, "sda").disk;
    assert!(sda.rotational);
    assert_eq!(sda.physical_block_size, 4096);
    assert_eq!(sda.model.as_deref(), Some("WDC WD20EZAZ-00G"));
    assert_eq!(sda.partitions[0].mount_points, ["/mnt/my data"]);
    assert!(get(&v, "sdb").disk.removable);
    assert_eq!(get(&v, "sdc").disk.size_bytes, 477 << 30);
}

#[test]
fn unsafe_disks_say_why() {
    let v = all(None);
    let reasons = |n: &str| get(&v, n).unsafe_reasons.join("; ");
    let nvme = reasons("nvme0n1");
    assert!(
        nvme.contains("holds the running system's root filesystem"),
        "{nvme}"
    );
    assert!(nvme.contains("nvme0n1p1 is mounted at /boot/efi"), "{nvme}");
    assert!(
        nvme.contains("nvme0n1p2 is held by dm-0 (vg0-root)"),
        "{nvme}"
    );
    assert!(reasons("sda").contains("sda1 is mounted at /mnt/my data"));
    assert!(
        reasons("sdb").contains("holds the live medium bty booted from"),
        "{}",
        reasons("sdb")
    );
    assert!(reasons("sdd").contains("sdd1 is held by md127"));
    assert!(reasons("sde").contains("read-only"));
    assert!(reasons("zram0").contains("active swap"));
    assert!(reasons("sr0").contains("no medium"));
    for ok in ["sdc", "vda", "mmcblk0", "loop0"] {
        assert!(get(&v, ok).writable(), "{ok}: {}", reasons(ok));
    }
}

#[test]
fn hidden_kinds_and_size_checks() {
    let v = all(Some(500 << 30));
    let hidden = |n: &str| get(&v, n).hidden.clone();
    assert_eq!(hidden("loop0").as_deref(), Some("loop device"));
    assert_eq!(hidden("zram0").as_deref(), Some("zram (compressed RAM)"));
    assert_eq!(hidden("sr0").as_deref(), Some("optical drive"));
    assert_eq!(
        hidden("mmcblk0boot0").as_deref(),
        Some("eMMC boot or RPMB partition")
    );
    assert_eq!(
        hidden("mmcblk0rpmb").as_deref(),
        Some("eMMC boot or RPMB partition")
    );
    assert!(hidden("dm-0").is_some() && hidden("md127").is_some());
    for shown in ["nvme0n1", "sda", "sdb", "sdc", "vda", "mmcblk0"] {
        assert_eq!(hidden(shown), None, "{shown}");
    }
    assert!(
        !get(&v, "mmcblk0boot0").writable(),
        "hidden boot partitions are never writable"
    );
    let sdc = get(&v, "sdc");
    assert!(
        sdc.unsafe_reasons
            .iter()
            .any(|r| r.contains("smaller than the image")),
        "{:?}",
        sdc.unsafe_reasons
    );
    assert!(
        get(&v, "vda")
            .unsafe_reasons
            .iter()
            .any(|r| r.contains("smaller than the image"))
    );
}
