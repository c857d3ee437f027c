//! Who is using a block device: mounts (from `/proc/self/mountinfo`), swap (`/proc/swaps`) and
//! holders such as LVM, md or dm-crypt (sysfs `holders/`), for the device and its partitions.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use crate::sysfs::{device_number, partitions, sysfs_dir};

/// One reason a device is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceUser {
    /// `device` (the disk or one of its partitions) is mounted at `mount_point`.
    Mounted { device: String, mount_point: String },
    /// `device` is active swap.
    Swap { device: String },
    /// `device` is held by the kernel device `holder` (e.g. `dm-0`, `md127`).
    HeldBy { device: String, holder: String },
}

impl fmt::Display for DeviceUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceUser::Mounted {
                device,
                mount_point,
            } => {
                write!(f, "{device} is mounted at {mount_point}")
            }
            DeviceUser::Swap { device } => write!(f, "{device} is active swap"),
            DeviceUser::HeldBy { device, holder } => write!(f, "{device} is held by {holder}"),
        }
    }
}

/// Everything using the block device at `path` or any of its partitions. A path that is not a
/// block device has no users.
pub fn device_users(path: &Path) -> io::Result<Vec<DeviceUser>> {
    let Some((major, minor)) = device_number(path)? else {
        return Ok(Vec::new());
    };
    let dir = sysfs_dir(major, minor);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{major}:{minor}"));
    let mut devices = vec![(name, major, minor)];
    devices.extend(partitions(&dir));

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    let mut users = mounts_of(&mountinfo, &devices);
    users.extend(swaps_of(&swaps, &devices));
    for (name, _, _) in &devices {
        let holders_dir = if name == &devices[0].0 {
            dir.join("holders")
        } else {
            dir.join(name).join("holders")
        };
        if let Ok(entries) = fs::read_dir(holders_dir) {
            for h in entries.flatten() {
                users.push(DeviceUser::HeldBy {
                    device: name.clone(),
                    holder: holder_label(&h.file_name().to_string_lossy()),
                });
            }
        }
    }
    Ok(users)
}

/// `dm-0` means little to an operator; its device-mapper name (`vg-root`) means more.
fn holder_label(kernel_name: &str) -> String {
    let dm_name = Path::new("/sys/class/block")
        .join(kernel_name)
        .join("dm/name");
    match fs::read_to_string(dm_name) {
        Ok(n) if !n.trim().is_empty() => format!("{kernel_name} ({})", n.trim()),
        _ => kernel_name.to_string(),
    }
}

/// Mounts in `mountinfo` text whose source device number is one of `devices`.
pub fn mounts_of(mountinfo: &str, devices: &[(String, u32, u32)]) -> Vec<DeviceUser> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent MAJ:MIN root mount-point options ... - fstype source superopts
        let mut fields = line.split_whitespace();
        let (Some(_id), Some(_parent), Some(dev), Some(_root), Some(mp)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let Some((maj, min)) = crate::sysfs::parse_dev(dev) else {
            continue;
        };
        if let Some((name, _, _)) = devices.iter().find(|(_, a, b)| *a == maj && *b == min) {
            out.push(DeviceUser::Mounted {
                device: name.clone(),
                mount_point: unescape_octal(mp),
            });
        }
    }
    out
}

/// Active swap areas in `/proc/swaps` text that are one of `devices`.
pub fn swaps_of(swaps: &str, devices: &[(String, u32, u32)]) -> Vec<DeviceUser> {
    swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|dev| {
            let base = dev.rsplit('/').next()?;
            devices
                .iter()
                .find(|(n, _, _)| n == base)
                .map(|(n, _, _)| DeviceUser::Swap { device: n.clone() })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = bytes.get(i + 1..i + 4)
            && oct.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = oct
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devs() -> Vec<(String, u32, u32)> {
        vec![
            ("sdb".into(), 8, 16),
            ("sdb1".into(), 8, 17),
            ("sdb2".into(), 8, 18),
        ]
    }

    #[test]
    fn finds_mounts_of_the_disk_and_its_partitions() {
        let mi = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                  30 22 8:17 / /mnt/my\\040data rw - vfat /dev/sdb1 rw\n\
                  31 22 0:45 / /proc rw - proc proc rw\n";
        let users = mounts_of(mi, &devs());
        assert_eq!(
            users,
            vec![DeviceUser::Mounted {
                device: "sdb1".into(),
                mount_point: "/mnt/my data".into()
            }]
        );
        assert_eq!(users[0].to_string(), "sdb1 is mounted at /mnt/my data");
    }

    #[test]
    fn finds_swap_partitions() {
        let sw = "Filename Type Size Used Priority\n/dev/sdb2 partition 1024 0 -2\n/dev/zram0 partition 8 0 100\n";
        assert_eq!(
            swaps_of(sw, &devs()),
            vec![DeviceUser::Swap {
                device: "sdb2".into()
            }]
        );
    }

    #[test]
    fn a_regular_file_has_no_users() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(device_users(f.path()).unwrap().is_empty());
    }
}
