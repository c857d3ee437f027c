//! Block devices for bty: discovering disks from sysfs (no lsblk), classifying which may be
//! written and why not, opening a target exclusively, the ioctls the writer needs, and
//! explaining who holds a device when the kernel says it is busy.
//!
//! This crate talks to the kernel (sysfs, `/proc`, ioctls) and knows nothing about images.
//! Disk discovery and the full safety classification build on it.

pub mod classify;
pub mod discover;
pub mod file_use;
pub mod ioctl;
pub mod open;
pub mod sysfs;
pub mod usage;

pub use classify::{Classified, check_target, classify};
pub use discover::{Disk, Partition, SystemRoot, Transport};
pub use file_use::file_in_use;
pub use open::{OpenError, open_block_device};
pub use sysfs::DeviceInfo;
pub use usage::{DeviceUser, device_users};
