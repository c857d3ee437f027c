//! Who else uses a regular file bty is asked to write: a loop device backed by it (found in
//! `/sys/block/loop*/loop/backing_file`), or a lock held on it — POSIX, OFD (QEMU locks its
//! images this way) or flock — probed on bty's own descriptor and named from `/proc/locks`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why the file is in use, naming who holds it; `None` when nobody does (that bty can see).
pub fn file_in_use(file: &File) -> Option<String> {
    let meta = file.metadata().ok()?;
    let (dev, ino) = (meta.dev(), meta.ino());
    if let Some(lo) = backing_loop(dev, ino) {
        return Some(format!(
            "it backs the loop device {lo} (detach it first: losetup -d {lo})"
        ));
    }
    if locked(file) {
        let who = lock_holders(dev, ino);
        return Some(if who.is_empty() {
            "another process holds a lock on it (a VM using the image?)".to_string()
        } else {
            format!("it is locked by {}", who.join(", "))
        });
    }
    None
}

/// The loop device whose backing file is (dev, ino).
fn backing_loop(dev: u64, ino: u64) -> Option<String> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = std::fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end_matches('\n');
        let backing = backing.strip_suffix(" (deleted)").unwrap_or(backing);
        if std::fs::metadata(Path::new(backing)).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
            return Some(format!("/dev/{name}"));
        }
    }
    None
}

/// Whether another descriptor holds a lock that would conflict with a whole-file write lock.
fn locked(file: &File) -> bool {
    let fd = file.as_raw_fd();
    // POSIX and OFD record locks: F_OFD_GETLK reports any conflicting one.
    // SAFETY: a zeroed flock struct is a valid argument; fcntl only reads and writes it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fd is open for the duration of the call and fl is a valid flock.
    let r = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) };
    if r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short {
        return true;
    }
    // flock locks are separate: try to take one without waiting, and let it go at once.
    // SAFETY: flock on an open descriptor.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK);
    }
    // SAFETY: as above.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    false
}

/// The processes `/proc/locks` names for (dev, ino), as "pid N (command)".
fn lock_holders(dev: u64, ino: u64) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: POSIX ADVISORY WRITE 1234 08:01:5678 0 EOF" (a "->" marks a waiter).
        let f: Vec<&str> = f.into_iter().filter(|x| *x != "->").collect();
        if f.len() < 6 || f[5] != want {
            continue;
        }
        let who = match f[4].parse::<i64>() {
            Ok(pid) if pid > 0 => {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("pid {pid} ({})", comm.trim())
            }
            _ => format!("an open file description ({} lock)", f[1]),
        };
        if !out.contains(&who) {
            out.push(who);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flock_and_ofd_locks_are_seen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let mine = File::open(&p).unwrap();
        assert_eq!(file_in_use(&mine), None);
        // A flock lock on another open file description (as another process would hold).
        let holder = File::open(&p).unwrap();
        // SAFETY: flock on an open descriptor.
        assert_eq!(
            unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        let why = file_in_use(&mine).expect("the flock lock is seen");
        assert!(
            why.contains(&format!("pid {}", std::process::id())),
            "{why}"
        );
        drop(holder);
        assert_eq!(file_in_use(&mine), None);
        // An OFD read lock, as QEMU takes on its images.
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        // SAFETY: zeroed flock is valid; fcntl on an open descriptor.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_RDLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 100;
        fl.l_len = 1;
        assert_eq!(
            unsafe { libc::fcntl(other.as_raw_fd(), libc::F_OFD_SETLK, &fl) },
            0
        );
        let why = file_in_use(&mine).expect("the OFD lock is seen");
        assert!(why.contains("lock"), "{why}");
        drop(other);
        assert_eq!(file_in_use(&mine), None);
    }
}
