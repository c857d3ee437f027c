//! What the agent reports about its machine: the disks (from bty-disk, serials included) and
//! the hardware — `lshw -json` when it is installed, else a summary read from sysfs and procfs
//! (CPU model and count, memory, network interfaces with MAC and link, UEFI or BIOS).

use std::path::Path;

use bty_disk::{Classified, classify};
use bty_proto::InventoryDisk;
use serde_json::{Value, json};

use crate::cmd_disks::system_root;
use crate::units;

/// Every disk, hidden kinds included (a serial decides, not the kind), with the serials of
/// `BTY_TEST_DISK_SERIALS` applied in debug and test builds.
pub fn disks() -> Vec<Classified> {
    let root = system_root();
    let mut v = classify(&root, root.disks(), None);
    for (path, serial) in test_serials() {
        for c in v.iter_mut().filter(|c| c.disk.path == Path::new(&path)) {
            c.disk.serial = Some(serial.clone());
        }
    }
    v
}

/// `BTY_TEST_DISK_SERIALS=/dev/loop3=SERIAL,/dev/loop4=OTHER`: loop devices have no serial, so
/// tests give them one. Compiled only into debug and test builds.
fn test_serials() -> Vec<(String, String)> {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("BTY_TEST_DISK_SERIALS") {
        return v
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
    }
    Vec::new()
}

/// The disks as the inventory carries them.
pub fn wire_disks(list: &[Classified]) -> Vec<InventoryDisk> {
    list.iter()
        .filter(|c| c.disk.size_bytes > 0)
        .map(|c| {
            let d = &c.disk;
            InventoryDisk {
                path: d.path.display().to_string(),
                size: Some(units::bytes(d.size_bytes)),
                vendor: d.vendor.clone(),
                model: d.model.clone(),
                serial: d.serial.clone(),
                tran: Some(d.transport.name().to_string()),
                removable: d.removable,
                readonly: d.read_only,
            }
        })
        .collect()
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `lshw -json` if it runs, else our own summary.
pub fn hardware() -> Value {
    if let Ok(out) = std::process::Command::new("lshw")
        .args(["-json", "-quiet"])
        .stderr(std::process::Stdio::null())
        .output()
        && out.status.success()
        && let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
    {
        return v;
    }
    native_summary()
}

fn native_summary() -> Value {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")
            .and_then(|r| r.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib: Option<u64> = read("/proc/meminfo").and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    });
    let mut nics = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names.into_iter().filter(|n| n != "lo") {
            let base = format!("/sys/class/net/{n}");
            nics.push(json!({
                "name": n,
                "mac": read(&format!("{base}/address")),
                "link": read(&format!("{base}/carrier")).map(|c| c == "1"),
                "speed_mbps": read(&format!("{base}/speed")).and_then(|s| s.parse::<i64>().ok()).filter(|s| *s > 0),
            }));
        }
    }
    json!({
        "source": "bty (lshw not installed)",
        "cpu": {"model": model, "count": cpus},
        "memory_bytes": mem_kib.map(|k| k * 1024),
        "nics": nics,
        "firmware": if Path::new("/sys/firmware/efi").exists() { "uefi" } else { "bios" },
        "product": read("/sys/class/dmi/id/product_name"),
        "vendor": read("/sys/class/dmi/id/sys_vendor"),
    })
}
