//! The block-device ioctls the writer needs, as small safe functions over `rustix::ioctl`.

use std::io;
use std::os::fd::AsFd;

use rustix::ioctl::{Getter, NoArg, Setter, ioctl, opcode};

const BLK: u8 = 0x12;

/// Size of the device in bytes (`BLKGETSIZE64`).
pub fn size_bytes<F: AsFd>(fd: F) -> io::Result<u64> {
    // SAFETY: BLKGETSIZE64 writes one u64.
    let op = unsafe { Getter::<{ opcode::read::<u64>(BLK, 114) }, u64>::new() };
    Ok(unsafe { ioctl(fd, op) }?)
}

/// Logical block size: the smallest unit the device addresses (`BLKSSZGET`).
pub fn logical_block_size<F: AsFd>(fd: F) -> io::Result<u32> {
    Ok(rustix::fs::ioctl_blksszget(fd)?)
}

/// Physical block size (`BLKPBSZGET`).
pub fn physical_block_size<F: AsFd>(fd: F) -> io::Result<u32> {
    Ok(rustix::fs::ioctl_blkpbszget(fd)?)
}

/// Whether the kernel marks the device read-only (`BLKROGET`).
pub fn is_read_only<F: AsFd>(fd: F) -> io::Result<bool> {
    // SAFETY: BLKROGET writes one int.
    let op = unsafe { Getter::<{ opcode::none(BLK, 94) }, libc::c_int>::new() };
    Ok(unsafe { ioctl(fd, op) }? != 0)
}

/// Make `[start, start + len)` read as zeros (`BLKZEROOUT`). The kernel offloads this to the
/// device (WRITE ZEROES / UNMAP) where it can and writes zeros itself where it cannot. Both
/// values must be multiples of the logical block size.
pub fn zero_out<F: AsFd>(fd: F, start: u64, len: u64) -> io::Result<()> {
    // SAFETY: BLKZEROOUT reads a [u64; 2] of (start, length).
    let op = unsafe { Setter::<{ opcode::none(BLK, 127) }, [u64; 2]>::new([start, len]) };
    Ok(unsafe { ioctl(fd, op) }?)
}

/// Drop the device's buffer cache (`BLKFLSBUF`).
pub fn flush_buffers<F: AsFd>(fd: F) -> io::Result<()> {
    // SAFETY: BLKFLSBUF takes no argument.
    let op = unsafe { NoArg::<{ opcode::none(BLK, 97) }>::new() };
    Ok(unsafe { ioctl(fd, op) }?)
}

/// Ask the kernel to re-read the partition table (`BLKRRPART`).
pub fn reread_partitions<F: AsFd>(fd: F) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    let op = unsafe { NoArg::<{ opcode::none(BLK, 95) }>::new() };
    Ok(unsafe { ioctl(fd, op) }?)
}
