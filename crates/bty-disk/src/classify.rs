//! Which disks may be written, and why not. Hidden by default (shown with `--all`): loop, zram
//! and RAM disks, optical drives, eMMC boot and RPMB partitions, and device-mapper / md
//! devices. Unsafe (listed, never writable): the disk holding the running system's root, the
//! disk holding the live medium bty booted from, disks with mounted, swap or held
//! partitions, read-only disks, disks without a medium, and disks smaller than the image.
//! The same verdict guards every write path, not only the list.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::discover::{Disk, SystemRoot, Transport};

/// Mount points where live systems keep their boot medium.
const LIVE_MEDIUM_MOUNTS: [&str; 5] = [
    "/run/live/medium",
    "/lib/live/mount/medium",
    "/run/initramfs/live",
    "/run/archiso/bootmnt",
    "/cdrom",
];

#[derive(Debug, Clone, Serialize)]
pub struct Classified {
    #[serde(flatten)]
    pub disk: Disk,
    /// Why the disk is hidden by default (`None`: listed).
    pub hidden: Option<String>,
    /// Why the disk must not be written (empty: it may be).
    pub unsafe_reasons: Vec<String>,
}

impl Classified {
    pub fn writable(&self) -> bool {
        self.unsafe_reasons.is_empty()
    }
}

fn hidden_reason(d: &Disk) -> Option<String> {
    let n = &d.name;
    let is_mmc_special = n.starts_with("mmcblk") && (n.contains("boot") || n.ends_with("rpmb"));
    let optical = n.starts_with("sr")
        || std::fs::read_to_string(d.sysfs.join("device/type")).is_ok_and(|t| t.trim() == "5");
    match d.transport {
        Transport::Loop => Some("loop device".into()),
        Transport::Zram => Some("zram (compressed RAM)".into()),
        Transport::Ram => Some("RAM disk".into()),
        _ if optical => Some("optical drive".into()),
        _ if is_mmc_special => Some("eMMC boot or RPMB partition".into()),
        _ if n.starts_with("dm-") || n.starts_with("md") => {
            Some("device-mapper or md device".into())
        }
        _ => None,
    }
}

/// Maps kernel names (disks, partitions, dm/md devices) to the whole disks underneath.
fn underlying(disks: &[Disk]) -> HashMap<String, HashSet<String>> {
    let mut direct: HashMap<String, Vec<String>> = HashMap::new();
    for d in disks {
        direct
            .entry(d.name.clone())
            .or_default()
            .push(d.name.clone());
        for p in &d.partitions {
            direct
                .entry(p.name.clone())
                .or_default()
                .push(d.name.clone());
        }
        if !d.slaves.is_empty() {
            direct.insert(d.name.clone(), d.slaves.clone());
        }
    }
    let mut out = HashMap::new();
    for name in direct.keys() {
        let mut seen = HashSet::new();
        let mut todo = vec![name.clone()];
        let mut leaves = HashSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            match direct.get(&n) {
                Some(next) if next.len() == 1 && next[0] == n => {
                    leaves.insert(n);
                }
                Some(next) => todo.extend(next.iter().cloned()),
                None => {}
            }
        }
        out.insert(name.clone(), leaves);
    }
    out
}

/// Classify every disk; `image_size` adds "smaller than the image" where it applies.
pub fn classify(root: &SystemRoot, disks: Vec<Disk>, image_size: Option<u64>) -> Vec<Classified> {
    let mounts = root.mounts();
    let under = underlying(&disks);
    let by_dev: HashMap<(u32, u32), String> = disks
        .iter()
        .flat_map(|d| {
            let mut v = vec![((d.major, d.minor), d.name.clone())];
            v.extend(
                d.partitions
                    .iter()
                    .map(|p| ((p.major, p.minor), p.name.clone())),
            );
            v
        })
        .collect();
    let disks_under_mount = |pred: &dyn Fn(&str) -> bool| -> HashSet<String> {
        mounts
            .iter()
            .filter(|m| pred(&m.mount_point))
            .filter_map(|m| by_dev.get(&(m.major, m.minor)))
            .flat_map(|n| under.get(n).cloned().unwrap_or_default())
            .collect()
    };
    let root_disks = disks_under_mount(&|mp| mp == "/");
    let live_disks = disks_under_mount(&|mp| LIVE_MEDIUM_MOUNTS.contains(&mp));

    disks
        .into_iter()
        .map(|d| {
            let mut reasons = Vec::new();
            if root_disks.contains(&d.name) {
                reasons.push("holds the running system's root filesystem".to_string());
            }
            if live_disks.contains(&d.name) {
                reasons.push("holds the live medium bty booted from".to_string());
            }
            for mp in &d.mount_points {
                reasons.push(format!("{} is mounted at {mp}", d.name));
            }
            if d.swap {
                reasons.push(format!("{} is active swap", d.name));
            }
            for h in &d.holders {
                reasons.push(format!("{} is held by {h}", d.name));
            }
            for p in &d.partitions {
                for mp in &p.mount_points {
                    reasons.push(format!("{} is mounted at {mp}", p.name));
                }
                if p.swap {
                    reasons.push(format!("{} is active swap", p.name));
                }
                for h in &p.holders {
                    reasons.push(format!("{} is held by {h}", p.name));
                }
            }
            if d.read_only {
                reasons.push("read-only".into());
            }
            if d.size_bytes == 0 {
                reasons.push(if d.transport == Transport::Loop {
                    "not attached to a file".into()
                } else {
                    "no medium (size 0)".into()
                });
            }
            if let Some(img) = image_size.filter(|&s| s > d.size_bytes && d.size_bytes > 0) {
                reasons.push(format!(
                    "smaller than the image ({} < {img} bytes)",
                    d.size_bytes
                ));
            }
            let hidden = hidden_reason(&d);
            if matches!(d.transport, Transport::Zram | Transport::Ram)
                || hidden.as_deref() == Some("optical drive")
            {
                reasons.push(hidden.clone().unwrap_or_default());
            }
            if hidden
                .as_deref()
                .is_some_and(|h| h.starts_with("eMMC") || h.starts_with("device-mapper"))
            {
                reasons.push(hidden.clone().unwrap_or_default());
            }
            Classified {
                disk: d,
                hidden,
                unsafe_reasons: reasons,
            }
        })
        .collect()
}

/// The verdict for the block device at `path`, looked up by device number on this system.
/// `Err(reasons)` when it must not be written; partitions are refused too (bty writes whole
/// disks).
pub fn check_target(path: &Path) -> Result<(), Vec<String>> {
    let Ok(Some((maj, min))) = crate::sysfs::device_number(path) else {
        return Ok(());
    };
    let root = SystemRoot::default();
    let disks = root.disks();
    let parent = disks.iter().find(|d| {
        d.partitions
            .iter()
            .any(|p| (p.major, p.minor) == (maj, min))
    });
    if let Some(d) = parent {
        return Err(vec![format!(
            "{} is a partition of {}; give the whole disk",
            path.display(),
            d.path.display()
        )]);
    }
    match classify(&root, disks, None)
        .into_iter()
        .find(|c| (c.disk.major, c.disk.minor) == (maj, min))
    {
        Some(c) if !c.writable() => Err(c.unsafe_reasons),
        _ => Ok(()),
    }
}
