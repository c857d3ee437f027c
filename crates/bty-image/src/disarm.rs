//! Before the first byte of a new image: make the layout the target held unbootable, so a
//! flash cut short by a power cut, `kill -9` or the OOM killer never leaves the old image's
//! partition tables in front of a half-written disk. The first and last MiB are zeroed (the
//! protective MBR, the primary GPT, and the backup GPT at the disk's end), and so is the backup
//! GPT header the old primary header points to, when it lies elsewhere (an image written onto
//! a larger disk keeps its backup where the image ended). Then everything is flushed.

use std::io;

use crate::MIB;
use crate::buffer::AlignedBuf;
use crate::target::Target;

/// What was cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disarmed {
    /// The old primary header's alternate (backup) header, when it was outside both ends.
    pub alternate_at: Option<u64>,
}

const SIGNATURE: &[u8; 8] = b"EFI PART";

/// Where the backup GPT header of the primary header at the start of `start` lies, in bytes,
/// for a disk of `len` bytes; `start` holds at least the first 8 KiB.
pub fn alternate_header(start: &[u8], len: u64) -> Option<(u64, u64)> {
    for sector in [512u64, 4096] {
        let at = sector as usize;
        let Some(h) = start.get(at..at + 40) else {
            continue;
        };
        if &h[..8] != SIGNATURE {
            continue;
        }
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&h[32..40]);
        let alt = u64::from_le_bytes(lba);
        let off = alt.checked_mul(sector)?;
        if alt > 1 && off.checked_add(sector).is_some_and(|end| end <= len) {
            return Some((off, sector));
        }
    }
    None
}

/// Clear the old layout of `target` and flush. A new, empty file needs nothing.
pub fn disarm(target: &Target) -> io::Result<Disarmed> {
    let len = target.len_now()?;
    if len == 0 {
        return Ok(Disarmed::default());
    }
    let mut start = AlignedBuf::new(8192);
    let want = (8192u64.min(len) as usize).div_ceil(target.io_align().max(1) as usize)
        * target.io_align().max(1) as usize;
    start.set_len(want.min(start.capacity()));
    let got = target.read_back(start.as_mut_slice(), 0)?;
    let alternate = alternate_header(&start.as_slice()[..got], len);
    let head = len.min(MIB);
    let tail_start = len.saturating_sub(MIB).max(head);
    let mut done = Disarmed::default();
    if let Some((off, sector)) = alternate
        && off >= head
        && off + sector <= tail_start
    {
        target.write_zeros(off, sector)?;
        done.alternate_at = Some(off);
    }
    // Both ends, then the flush: the same as the wipe after a failed flash.
    target.wipe()?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_at(sector: usize, alt: u64) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[sector..sector + 8].copy_from_slice(SIGNATURE);
        b[sector + 32..sector + 40].copy_from_slice(&alt.to_le_bytes());
        b
    }

    #[test]
    fn finds_the_alternate_header() {
        let len = 100 << 20;
        assert_eq!(
            alternate_header(&header_at(512, 2047), len),
            Some((2047 * 512, 512))
        );
        assert_eq!(
            alternate_header(&header_at(4096, 255), len),
            Some((255 * 4096, 4096))
        );
        // Past the end, absurd or missing: nothing to clear.
        assert_eq!(alternate_header(&header_at(512, u64::MAX), len), None);
        assert_eq!(alternate_header(&header_at(512, len / 512), len), None);
        assert_eq!(alternate_header(&header_at(512, 1), len), None);
        assert_eq!(alternate_header(&vec![0u8; 8192], len), None);
        assert_eq!(alternate_header(&[0u8; 100], len), None);
    }

    #[test]
    fn clears_both_ends_and_the_old_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let len = 8 * MIB as usize;
        let mut old = vec![0xA5u8; len];
        old[510] = 0x55;
        old[511] = 0xAA;
        // A 4 MiB image's backup header, as it sits on this larger disk.
        let alt = (4 * MIB / 512) - 1;
        old[512..8192].copy_from_slice(&header_at(512, alt)[512..]);
        old[(alt * 512) as usize..(alt * 512) as usize + 8].copy_from_slice(SIGNATURE);
        std::fs::write(&path, &old).unwrap();
        let t = Target::open(&path).unwrap();
        assert_eq!(disarm(&t).unwrap().alternate_at, Some(alt * 512));
        drop(t);
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after.len(), len);
        let m = MIB as usize;
        assert!(after[..m].iter().all(|&b| b == 0));
        assert!(after[len - m..].iter().all(|&b| b == 0));
        let a = (alt * 512) as usize;
        assert!(after[a..a + 512].iter().all(|&b| b == 0));
        // Everything else is as it was.
        assert!(after[m..a].iter().all(|&b| b == 0xA5));
        assert!(after[a + 512..len - m].iter().all(|&b| b == 0xA5));
    }
}
