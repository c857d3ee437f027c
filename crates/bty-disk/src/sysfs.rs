//! What sysfs says about one block device: its name, model, serial, and partitions, looked up by
//! the device number of a `/dev` node so symlinks such as `/dev/disk/by-id/…` work.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Identity of a block device as shown to the operator before it is overwritten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Kernel name, e.g. `sdb`, `nvme0n1`, `loop3`.
    pub name: String,
    pub major: u32,
    pub minor: u32,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
}

/// Root of sysfs; tests point it elsewhere through [`DeviceInfo::from_sysfs_dir`].
const SYS_DEV_BLOCK: &str = "/sys/dev/block";

/// Major and minor number of a block-device node, or `None` when `path` is not one.
pub fn device_number(path: &Path) -> io::Result<Option<(u32, u32)>> {
    let meta = fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Ok(None);
    }
    use std::os::unix::fs::MetadataExt;
    let rdev = meta.rdev();
    Ok(Some((libc::major(rdev), libc::minor(rdev))))
}

/// The sysfs folder of a device number (`/sys/dev/block/M:m`, resolved).
pub fn sysfs_dir(major: u32, minor: u32) -> PathBuf {
    let link = Path::new(SYS_DEV_BLOCK).join(format!("{major}:{minor}"));
    fs::canonicalize(&link).unwrap_or(link)
}

fn read_trimmed(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl DeviceInfo {
    /// Look up the block device behind `path`; `None` when `path` is not a block device.
    pub fn for_path(path: &Path) -> io::Result<Option<DeviceInfo>> {
        let Some((major, minor)) = device_number(path)? else {
            return Ok(None);
        };
        Ok(Some(Self::from_sysfs_dir(
            &sysfs_dir(major, minor),
            major,
            minor,
        )))
    }

    /// Read identity from one device's sysfs folder.
    pub fn from_sysfs_dir(dir: &Path, major: u32, minor: u32) -> DeviceInfo {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dev = dir.join("device");
        DeviceInfo {
            name,
            major,
            minor,
            vendor: read_trimmed(&dev.join("vendor")),
            model: read_trimmed(&dev.join("model")),
            serial: read_trimmed(&dev.join("serial"))
                .or_else(|| read_trimmed(&dir.join("serial")))
                .or_else(|| read_trimmed(&dev.join("wwid"))),
        }
    }
}

/// Partitions of a whole-disk sysfs folder: `(name, major, minor)` for each child folder that
/// carries a `partition` file.
pub fn partitions(dir: &Path) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if !p.join("partition").exists() {
            continue;
        }
        if let Some((maj, min)) = read_trimmed(&p.join("dev")).and_then(|d| parse_dev(&d)) {
            out.push((entry.file_name().to_string_lossy().into_owned(), maj, min));
        }
    }
    out.sort();
    out
}

/// Parse a `MAJOR:MINOR` string.
pub fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dev_numbers() {
        assert_eq!(parse_dev("8:16\n"), Some((8, 16)));
        assert_eq!(parse_dev("8"), None);
        assert_eq!(parse_dev("a:b"), None);
    }

    #[test]
    fn reads_identity_and_partitions_from_a_sysfs_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sdb");
        fs::create_dir_all(dir.join("device")).unwrap();
        fs::write(dir.join("device/model"), "Samsung SSD 870  \n").unwrap();
        fs::write(dir.join("device/vendor"), "ATA     \n").unwrap();
        fs::write(dir.join("device/serial"), "S5ABC123\n").unwrap();
        fs::create_dir_all(dir.join("sdb1")).unwrap();
        fs::write(dir.join("sdb1/partition"), "1\n").unwrap();
        fs::write(dir.join("sdb1/dev"), "8:17\n").unwrap();
        let info = DeviceInfo::from_sysfs_dir(&dir, 8, 16);
        assert_eq!(info.name, "sdb");
        assert_eq!(info.model.as_deref(), Some("Samsung SSD 870"));
        assert_eq!(info.vendor.as_deref(), Some("ATA"));
        assert_eq!(info.serial.as_deref(), Some("S5ABC123"));
        assert_eq!(partitions(&dir), vec![("sdb1".to_string(), 8, 17)]);
    }
}
