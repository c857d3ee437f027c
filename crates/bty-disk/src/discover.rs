//! Disk discovery from sysfs, `/proc/self/mountinfo`, `/proc/swaps` and the udev database —
//! no `lsblk`. Everything is read relative to a root folder so tests can point it at captured
//! sysfs trees.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sysfs::parse_dev;

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Nvme,
    Sata,
    Scsi,
    Usb,
    Virtio,
    Mmc,
    Loop,
    Zram,
    Ram,
    Virtual,
    Unknown,
}

impl Transport {
    /// The name used in JSON and listings (`nvme`, `sata`, …).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Scsi => "scsi",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Mmc => "mmc",
            Transport::Loop => "loop",
            Transport::Zram => "zram",
            Transport::Ram => "ram",
            Transport::Virtual => "virtual",
            Transport::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    pub name: String,
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
    pub size_bytes: u64,
    pub mount_points: Vec<String>,
    /// Kernel devices stacked on it (`dm-0`, `md127`, …), with device-mapper names.
    pub holders: Vec<String>,
    pub swap: bool,
}

/// One whole disk as the kernel sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub name: String,
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
    pub size_bytes: u64,
    pub logical_block_size: u32,
    pub physical_block_size: u32,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwid: Option<String>,
    pub transport: Transport,
    pub removable: bool,
    pub read_only: bool,
    pub rotational: bool,
    pub mount_points: Vec<String>,
    pub holders: Vec<String>,
    pub swap: bool,
    pub partitions: Vec<Partition>,
    /// Whole-disk kernel devices this one is built on (for device-mapper and md devices).
    #[serde(skip)]
    pub slaves: Vec<String>,
    /// The sysfs folder, resolved.
    #[serde(skip)]
    pub sysfs: PathBuf,
}

impl Disk {
    /// Vendor and model, as one line (empty when neither is known).
    pub fn vendor_model(&self) -> String {
        [self.vendor.as_deref(), self.model.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn read(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.parse().ok()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What the root folder holds: `sys/`, `proc/self/mountinfo`, `proc/swaps`, `run/udev/data`.
#[derive(Debug, Clone)]
pub struct SystemRoot {
    pub root: PathBuf,
}

impl Default for SystemRoot {
    fn default() -> Self {
        SystemRoot {
            root: PathBuf::from("/"),
        }
    }
}

/// One mount from mountinfo.
#[derive(Debug, Clone)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub mount_point: String,
}

impl SystemRoot {
    pub fn at(root: &Path) -> SystemRoot {
        SystemRoot {
            root: root.to_path_buf(),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn mounts(&self) -> Vec<Mount> {
        let text = fs::read_to_string(self.p("proc/self/mountinfo")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (major, minor) = parse_dev(f.get(2)?)?;
                Some(Mount {
                    major,
                    minor,
                    mount_point: crate::usage::unescape_octal(f.get(4)?),
                })
            })
            .collect()
    }

    fn swaps(&self) -> Vec<String> {
        let text = fs::read_to_string(self.p("proc/swaps")).unwrap_or_default();
        text.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|d| d.rsplit('/').next().map(str::to_string))
            .collect()
    }

    /// `E:KEY=VALUE` properties of a device in the udev database.
    fn udev(&self, major: u32, minor: u32) -> Vec<(String, String)> {
        let text = fs::read_to_string(self.p(&format!("run/udev/data/b{major}:{minor}")))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("E:"))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn holder_label(&self, kernel_name: &str) -> String {
        match read(&self.p(&format!("sys/class/block/{kernel_name}/dm/name"))) {
            Some(n) => format!("{kernel_name} ({n})"),
            None => kernel_name.to_string(),
        }
    }

    /// Every block device in `sys/block`, with partitions, mounts and holders.
    pub fn disks(&self) -> Vec<Disk> {
        let mounts = self.mounts();
        let swaps = self.swaps();
        let mounts_of = |maj: u32, min: u32| -> Vec<String> {
            mounts
                .iter()
                .filter(|m| m.major == maj && m.minor == min)
                .map(|m| m.mount_point.clone())
                .collect()
        };
        let mut out = Vec::new();
        for name in names_in(&self.p("sys/block")) {
            let link = self.p("sys/block").join(&name);
            let dir = fs::canonicalize(&link).unwrap_or(link);
            let Some((major, minor)) = read(&dir.join("dev")).and_then(|d| parse_dev(&d)) else {
                continue;
            };
            let udev = self.udev(major, minor);
            let prop = |k: &str| {
                udev.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            let dev = dir.join("device");
            let partitions = names_in(&dir)
                .into_iter()
                .filter(|p| dir.join(p).join("partition").exists())
                .filter_map(|p| {
                    let pd = dir.join(&p);
                    let (pmaj, pmin) = read(&pd.join("dev")).and_then(|d| parse_dev(&d))?;
                    Some(Partition {
                        path: PathBuf::from("/dev").join(&p),
                        major: pmaj,
                        minor: pmin,
                        size_bytes: read_u64(&pd.join("size")).unwrap_or(0) * 512,
                        mount_points: mounts_of(pmaj, pmin),
                        holders: names_in(&pd.join("holders"))
                            .iter()
                            .map(|h| self.holder_label(h))
                            .collect(),
                        swap: swaps.contains(&p),
                        name: p,
                    })
                })
                .collect();
            let resolved = dir.to_string_lossy().to_string();
            out.push(Disk {
                path: PathBuf::from("/dev").join(&name),
                major,
                minor,
                size_bytes: read_u64(&dir.join("size")).unwrap_or(0) * 512,
                logical_block_size: read_u64(&dir.join("queue/logical_block_size")).unwrap_or(512)
                    as u32,
                physical_block_size: read_u64(&dir.join("queue/physical_block_size")).unwrap_or(512)
                    as u32,
                // virtio and PCI devices carry numeric IDs (`0x1af4`) there, not names.
                vendor: read(&dev.join("vendor"))
                    .filter(|v| !v.starts_with("0x"))
                    .or_else(|| prop("ID_VENDOR")),
                model: read(&dev.join("model")).or_else(|| prop("ID_MODEL")),
                serial: read(&dev.join("serial"))
                    .or_else(|| read(&dir.join("serial")))
                    .or_else(|| prop("ID_SERIAL_SHORT"))
                    .or_else(|| prop("ID_SERIAL")),
                wwid: read(&dir.join("wwid"))
                    .or_else(|| read(&dev.join("wwid")))
                    .or_else(|| prop("ID_WWN")),
                transport: transport(&name, &resolved, prop("ID_BUS").as_deref()),
                removable: read(&dir.join("removable")).as_deref() == Some("1"),
                read_only: read(&dir.join("ro")).as_deref() == Some("1"),
                rotational: read(&dir.join("queue/rotational")).as_deref() == Some("1"),
                mount_points: mounts_of(major, minor),
                holders: names_in(&dir.join("holders"))
                    .iter()
                    .map(|h| self.holder_label(h))
                    .collect(),
                swap: swaps.contains(&name),
                partitions,
                slaves: names_in(&dir.join("slaves")),
                sysfs: dir,
                name,
            });
        }
        out
    }
}

fn transport(name: &str, sysfs_path: &str, udev_bus: Option<&str>) -> Transport {
    if name.starts_with("loop") {
        return Transport::Loop;
    }
    if name.starts_with("zram") {
        return Transport::Zram;
    }
    if name.starts_with("ram") {
        return Transport::Ram;
    }
    if sysfs_path.contains("/usb") || udev_bus == Some("usb") {
        return Transport::Usb;
    }
    if sysfs_path.contains("/nvme") || name.starts_with("nvme") {
        return Transport::Nvme;
    }
    if sysfs_path.contains("/mmc_host/") || name.starts_with("mmcblk") {
        return Transport::Mmc;
    }
    if sysfs_path.contains("/virtio") || name.starts_with("vd") {
        return Transport::Virtio;
    }
    if sysfs_path.contains("/ata") {
        return Transport::Sata;
    }
    if sysfs_path.contains("/devices/virtual/") {
        return Transport::Virtual;
    }
    if sysfs_path.contains("/host") || name.starts_with("sd") {
        return Transport::Scsi;
    }
    Transport::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_match_the_json() {
        for t in [
            Transport::Nvme,
            Transport::Sata,
            Transport::Scsi,
            Transport::Usb,
            Transport::Virtio,
            Transport::Mmc,
            Transport::Loop,
            Transport::Zram,
            Transport::Ram,
            Transport::Virtual,
            Transport::Unknown,
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
    }
}
