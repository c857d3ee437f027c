//! Block devices for bty: opening a target exclusively, the ioctls the writer needs, and
//! explaining who holds a device when the kernel says it is busy.
//!
//! This crate talks to the kernel (sysfs, `/proc`, ioctls) and knows nothing about images.
//! Disk discovery and the full safety classification build on it.

pub mod ioctl;
pub mod open;
pub mod sysfs;
pub mod usage;

pub use open::{OpenError, open_block_device};
pub use sysfs::DeviceInfo;
pub use usage::{DeviceUser, device_users};
