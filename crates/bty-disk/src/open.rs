//! Opening a block device for writing: exclusively (`O_EXCL`), so a device that is mounted or
//! held by LVM, md or device-mapper is refused by the kernel itself, with that refusal turned
//! into a message naming who holds it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::usage::{DeviceUser, device_users};

/// Why a block device could not be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: device is in use ({})", describe_users(.users))]
    Busy {
        path: PathBuf,
        users: Vec<DeviceUser>,
    },
    #[error("{path}: permission denied (writing a disk needs root)")]
    PermissionDenied { path: PathBuf },
    #[error("{path}: no such device")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot open: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn describe_users(users: &[DeviceUser]) -> String {
    if users.is_empty() {
        return "mounted or held by another program".to_string();
    }
    let parts: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    parts.join("; ")
}

/// Open `path` read-write with `O_EXCL` (and `O_DIRECT` when `direct` is set and supported).
/// Returns the file and whether `O_DIRECT` is in effect.
pub fn open_block_device(path: &Path, direct: bool) -> Result<(File, bool), OpenError> {
    let attempt = |flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_EXCL | libc::O_CLOEXEC | flags)
            .open(path)
    };
    let result = if direct {
        match attempt(libc::O_DIRECT) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => attempt(0),
            Err(e) => Err(e),
        }
    } else {
        attempt(0)
    };
    result.map(|f| (f, false)).map_err(|e| classify(path, e))
}

fn classify(path: &Path, e: io::Error) -> OpenError {
    let path = path.to_path_buf();
    match e.raw_os_error() {
        Some(libc::EBUSY) => {
            let users = device_users(&path).unwrap_or_default();
            OpenError::Busy { path, users }
        }
        Some(libc::EACCES) | Some(libc::EPERM) => OpenError::PermissionDenied { path },
        Some(libc::ENOENT) | Some(libc::ENXIO) | Some(libc::ENODEV) => OpenError::NotFound { path },
        _ => OpenError::Io { path, source: e },
    }
}
