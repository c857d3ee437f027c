//! Where an image is written: a whole block device (opened `O_EXCL | O_DIRECT`) or a regular
//! file (created or overwritten). The writer sees one interface: positional writes that may be
//! unaligned (edges are read-modify-written under `O_DIRECT`), zero ranges (`BLKZEROOUT` or
//! punched holes), sync, the fail-safe wipe, and page-cache-bypassing reads for verification.

use std::fs::{File, OpenOptions};
use std::io;
use std::num::NonZeroU64;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use bty_disk::{DeviceInfo, OpenError, ioctl, open_block_device};
use serde::Serialize;

use crate::MIB;
use crate::buffer::AlignedBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    BlockDevice,
    File,
}

/// What to do with runs of zeros in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ZeroMode {
    /// Make them read as zero without writing them: `BLKZEROOUT` on devices, holes in files.
    #[default]
    Auto,
    /// Write every zero byte.
    Write,
    /// Leave whatever the target held there (only safe on a target known to be zeroed).
    Skip,
}

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{0}: the device is read-only")]
    ReadOnly(PathBuf),
    #[error("{path}: device is in use or unsafe to write: {reasons}")]
    Unsafe { path: PathBuf, reasons: String },
    #[error("{path} is in use: {why}")]
    InUse { path: PathBuf, why: String },
    #[error("{0} is a directory; give a block device or a file path")]
    IsDirectory(PathBuf),
    #[error("{0} is neither a block device nor a regular file")]
    NotWritable(PathBuf),
    #[error("{path}: the folder {parent} does not exist")]
    NoParent { path: PathBuf, parent: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// An opened target.
#[derive(Debug)]
pub struct Target {
    path: PathBuf,
    file: File,
    kind: TargetKind,
    /// `O_DIRECT` is in effect: I/O must be aligned to `align`.
    direct: bool,
    align: u64,
    capacity: Option<u64>,
    logical_block_size: u32,
    device: Option<DeviceInfo>,
    /// Length of a regular file when opened (0 for a new one).
    original_len: u64,
    created: bool,
    modified: AtomicBool,
    identity: (u64, u64),
}

/// Alignment used for `O_DIRECT` on regular files (safe for every filesystem's block size).
const FILE_DIRECT_ALIGN: u64 = 4096;

fn open_file(path: &Path, create: bool) -> io::Result<(File, bool)> {
    let attempt = |direct: bool| {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        if create {
            o.create_new(true);
        }
        o.custom_flags(libc::O_CLOEXEC | if direct { libc::O_DIRECT } else { 0 });
        o.open(path)
    };
    match attempt(true) {
        Ok(f) => Ok((f, true)),
        // tmpfs and some FUSE filesystems refuse O_DIRECT.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            if create {
                let _ = std::fs::remove_file(path);
            }
            attempt(false).map(|f| (f, false))
        }
        Err(e) => Err(e),
    }
}

impl Target {
    /// Open a block device exclusively, or open/create a regular file. Nothing is written.
    pub fn open(path: &Path) -> Result<Target, TargetError> {
        let io_err = |e| TargetError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_block_device() => {
                // The same safety verdict as `bty disks`, before the kernel's own O_EXCL check.
                if let Err(reasons) = bty_disk::check_target(path) {
                    return Err(TargetError::Unsafe {
                        path: path.to_path_buf(),
                        reasons: reasons.join("; "),
                    });
                }
                let (file, direct) = open_block_device(path, true)?;
                if ioctl::is_read_only(&file).map_err(io_err)? {
                    return Err(TargetError::ReadOnly(path.to_path_buf()));
                }
                let capacity = ioctl::size_bytes(&file).map_err(io_err)?;
                let lbs = ioctl::logical_block_size(&file).map_err(io_err)?.max(512);
                let device = DeviceInfo::for_path(path).ok().flatten();
                Ok(Target {
                    path: path.to_path_buf(),
                    file,
                    kind: TargetKind::BlockDevice,
                    direct,
                    align: if direct { u64::from(lbs) } else { 1 },
                    capacity: Some(capacity),
                    logical_block_size: lbs,
                    device,
                    original_len: capacity,
                    created: false,
                    modified: AtomicBool::new(false),
                    identity: (u64::MAX, meta.rdev()),
                })
            }
            Ok(meta) if meta.is_dir() => Err(TargetError::IsDirectory(path.to_path_buf())),
            Ok(meta) if meta.is_file() => {
                let (file, direct) = open_file(path, false).map_err(io_err)?;
                // A file under a loop device or a VM is as busy as a mounted disk.
                if let Some(why) = bty_disk::file_in_use(&file) {
                    return Err(TargetError::InUse {
                        path: path.to_path_buf(),
                        why,
                    });
                }
                Ok(Self::file_target(
                    path,
                    file,
                    direct,
                    meta.len(),
                    false,
                    (meta.dev(), meta.ino()),
                ))
            }
            Ok(_) => Err(TargetError::NotWritable(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !parent.is_dir() {
                    return Err(TargetError::NoParent {
                        path: path.to_path_buf(),
                        parent: parent.to_path_buf(),
                    });
                }
                let (file, direct) = open_file(path, true).map_err(io_err)?;
                let meta = file.metadata().map_err(io_err)?;
                Ok(Self::file_target(
                    path,
                    file,
                    direct,
                    0,
                    true,
                    (meta.dev(), meta.ino()),
                ))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn file_target(
        path: &Path,
        file: File,
        direct: bool,
        len: u64,
        created: bool,
        identity: (u64, u64),
    ) -> Target {
        Target {
            path: path.to_path_buf(),
            file,
            kind: TargetKind::File,
            direct,
            align: if direct { FILE_DIRECT_ALIGN } else { 1 },
            capacity: None,
            logical_block_size: 512,
            device: None,
            original_len: len,
            created,
            modified: AtomicBool::new(false),
            identity,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn kind(&self) -> TargetKind {
        self.kind
    }
    /// Size limit: the device size; `None` for files.
    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }
    pub fn logical_block_size(&self) -> u32 {
        self.logical_block_size
    }
    pub fn device(&self) -> Option<&DeviceInfo> {
        self.device.as_ref()
    }
    pub fn is_direct(&self) -> bool {
        self.direct
    }
    pub fn existed(&self) -> bool {
        !self.created
    }
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }
    /// Whether any byte of the target has been changed.
    pub fn modified(&self) -> bool {
        self.modified.load(Ordering::SeqCst)
    }

    fn mark_modified(&self) {
        self.modified.store(true, Ordering::SeqCst);
    }

    /// Remove a file this target created, whatever was written to it (after a failed flash:
    /// a half-written image must not be left behind as if it were one).
    pub fn discard_created(self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Remove a file this target created, after a refusal before any write.
    pub fn abandon(self) {
        if self.created && !self.modified() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn pwrite_all(&self, mut data: &[u8], mut off: u64) -> io::Result<()> {
        while !data.is_empty() {
            match self.file.write_at(data, off) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "device accepted no bytes",
                    ));
                }
                Ok(n) => {
                    data = &data[n..];
                    off += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read what is there (zeros past the end) into `buf` at `off`.
    fn pread_fill(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let done = self.read_back(buf, off)?;
        buf[done..].fill(0);
        Ok(())
    }

    /// Write `data` at `off`. Under `O_DIRECT`, aligned parts go straight through and unaligned
    /// edges are read, patched and written back a block at a time.
    pub fn write_at(&self, data: &[u8], off: u64) -> io::Result<()> {
        self.mark_modified();
        let a = self.align;
        let aligned_mem = (data.as_ptr() as u64).is_multiple_of(a.min(4096));
        if a <= 1 || (off.is_multiple_of(a) && (data.len() as u64).is_multiple_of(a) && aligned_mem)
        {
            return self.pwrite_all(data, off);
        }
        let end = off + data.len() as u64;
        // Whole aligned blocks in the middle, written directly when memory alignment allows.
        let mid_start = off.div_ceil(a) * a;
        let mid_end = (end / a) * a;
        if mid_start < mid_end {
            let s = (mid_start - off) as usize;
            let e = (mid_end - off) as usize;
            let mid = &data[s..e];
            if (mid.as_ptr() as u64).is_multiple_of(a.min(4096)) {
                self.pwrite_all(mid, mid_start)?;
            } else {
                self.bounce_write(mid, mid_start)?;
            }
            if off < mid_start {
                self.patch(&data[..s], off)?;
            }
            if mid_end < end {
                self.patch(&data[e..], mid_end)?;
            }
            Ok(())
        } else {
            self.patch(data, off)
        }
    }

    /// Write `a` then `b` at `off` as one vectored write where `O_DIRECT` alignment allows
    /// (one I/O instead of two), else one after the other.
    pub fn write_pair_at(&self, a: &[u8], b: &[u8], off: u64) -> io::Result<()> {
        let al = self.align.max(1);
        let fits = |s: &[u8]| {
            (s.len() as u64).is_multiple_of(al) && (s.as_ptr() as u64).is_multiple_of(al.min(4096))
        };
        if !(off.is_multiple_of(al) && fits(a) && fits(b)) {
            self.write_at(a, off)?;
            return self.write_at(b, off + a.len() as u64);
        }
        self.mark_modified();
        let total = a.len() + b.len();
        let mut done = 0usize;
        while done < total {
            let (ra, rb) = if done < a.len() {
                (&a[done..], b)
            } else {
                (&a[a.len()..], &b[done - a.len()..])
            };
            let iov = [io::IoSlice::new(ra), io::IoSlice::new(rb)];
            match rustix::io::pwritev(&self.file, &iov, off + done as u64) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "device accepted no bytes",
                    ));
                }
                // A short write leaves an aligned remainder only by chance: finish plainly.
                Ok(n) if !(n as u64).is_multiple_of(al) => {
                    done += n;
                    let rest_a = &a[done.min(a.len())..];
                    let rest_b = &b[done.saturating_sub(a.len())..];
                    self.write_at(rest_a, off + done as u64)?;
                    return self.write_at(rest_b, off + (done + rest_a.len()) as u64);
                }
                Ok(n) => done += n,
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Copy aligned-offset data through an aligned buffer.
    fn bounce_write(&self, data: &[u8], off: u64) -> io::Result<()> {
        let mut buf = AlignedBuf::new(data.len().min(4 << 20));
        for (i, chunk) in data.chunks(buf.capacity()).enumerate() {
            buf.set_len(chunk.len());
            buf.as_mut_slice().copy_from_slice(chunk);
            self.pwrite_all(buf.as_slice(), off + (i * buf.capacity()) as u64)?;
        }
        Ok(())
    }

    /// Read-modify-write the aligned blocks covering `[off, off + data.len())`.
    fn patch(&self, data: &[u8], off: u64) -> io::Result<()> {
        let a = self.align;
        let start = (off / a) * a;
        let end = (off + data.len() as u64).div_ceil(a) * a;
        let mut buf = AlignedBuf::new((end - start) as usize);
        buf.set_len((end - start) as usize);
        self.pread_fill(buf.as_mut_slice(), start)?;
        let s = (off - start) as usize;
        buf.as_mut_slice()[s..s + data.len()].copy_from_slice(data);
        self.pwrite_all(buf.as_slice(), start)
    }

    /// Make `[off, off + len)` read as zeros without writing zeros where the target can.
    pub fn zero_range(&self, off: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.mark_modified();
        match self.kind {
            TargetKind::BlockDevice => {
                let lbs = u64::from(self.logical_block_size);
                let s = off.div_ceil(lbs) * lbs;
                let e = ((off + len) / lbs) * lbs;
                if s < e {
                    match ioctl::zero_out(&self.file, s, e - s) {
                        Ok(()) => {}
                        Err(err)
                            if matches!(
                                err.raw_os_error(),
                                Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::EINVAL)
                            ) =>
                        {
                            self.write_zeros(s, e - s)?;
                        }
                        Err(err) => return Err(err),
                    }
                    if off < s {
                        self.write_zeros(off, s - off)?;
                    }
                    if e < off + len {
                        self.write_zeros(e, off + len - e)?;
                    }
                    Ok(())
                } else {
                    self.write_zeros(off, len)
                }
            }
            TargetKind::File => {
                // Past the file's original end nothing was ever there: the final length makes it
                // a hole. Below it, punch the old contents out.
                if off >= self.original_len {
                    return Ok(());
                }
                let len = len.min(self.original_len - off);
                let flags =
                    rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
                match rustix::fs::fallocate(&self.file, flags, off, len) {
                    Ok(()) => Ok(()),
                    Err(e) if e == rustix::io::Errno::OPNOTSUPP => self.write_zeros(off, len),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Plain zero writes.
    pub fn write_zeros(&self, off: u64, len: u64) -> io::Result<()> {
        let mut zeros = AlignedBuf::new(len.min(MIB) as usize);
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.capacity() as u64) as usize;
            zeros.set_len(n);
            self.write_at(zeros.as_slice(), off + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Set a regular file's final length: exactly `len`, or at least `len` when `grow_only`.
    pub fn set_file_len(&self, len: u64, grow_only: bool) -> io::Result<()> {
        if self.kind != TargetKind::File {
            return Ok(());
        }
        // Growing only keeps what the file held before, not a block rounded up past it.
        let len = if grow_only {
            len.max(self.original_len)
        } else {
            len
        };
        let cur = self.file.metadata()?.len();
        if cur != len {
            self.mark_modified();
            self.file.set_len(len)?;
        }
        Ok(())
    }

    /// The target's length now: the device size, or the file's current length.
    pub fn len_now(&self) -> io::Result<u64> {
        match self.kind {
            TargetKind::BlockDevice => Ok(self.capacity.unwrap_or(0)),
            TargetKind::File => Ok(self.file.metadata()?.len()),
        }
    }

    /// Flush written data to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Zero the first and last MiB (primary and backup partition tables) and flush, so the
    /// target cannot boot a partial image.
    pub fn wipe(&self) -> io::Result<()> {
        let len = self.len_now()?;
        let head = len.min(MIB);
        self.write_zeros(0, head)?;
        if len > head {
            let tail_start = len.saturating_sub(MIB).max(head);
            self.write_zeros(tail_start, len - tail_start)?;
        }
        self.sync()
    }

    /// After success on a block device: ask the kernel to re-read the partition table so the
    /// new partitions appear. Failure (e.g. loop devices without partition scanning) is harmless.
    pub fn reread_partitions(&self) {
        if self.kind == TargetKind::BlockDevice
            && let Err(e) = ioctl::reread_partitions(&self.file)
        {
            tracing::debug!("re-reading partitions of {}: {e}", self.path.display());
        }
    }

    /// Make later [`Target::read_back`] calls bypass the page cache where `O_DIRECT` is not in
    /// effect: flush, then drop the cached pages.
    pub fn prepare_read_back(&self, len: u64) -> io::Result<()> {
        if self.direct {
            return Ok(());
        }
        self.sync()?;
        match self.kind {
            TargetKind::BlockDevice => ioctl::flush_buffers(&self.file),
            TargetKind::File => {
                let _ = rustix::fs::fadvise(
                    &self.file,
                    0,
                    NonZeroU64::new(len),
                    rustix::fs::Advice::DontNeed,
                );
                Ok(())
            }
        }
    }

    /// Alignment that read-back buffers, offsets and lengths must respect.
    pub fn io_align(&self) -> u64 {
        self.align
    }

    /// Read into `buf` at `off` (aligned as [`Target::io_align`] says); short only at the end.
    pub fn read_back(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], off + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}
