//! The fail-safe writer. It receives the decoded image in order and holds back both ends: the
//! first MiB (protective MBR, primary GPT) and, through a 1 MiB delay ring, the newest MiB —
//! which, when the stream ends, is the image's last MiB (a same-size GPT image's backup header
//! sits there). Everything between goes out as it arrives through the zero-aware [`Emitter`].
//! `finish` orders the rest so that a power cut at any instant leaves no bootable layout in
//! front of a partial image: data → flush → last MiB → flush → first MiB but LBA 0 → flush →
//! LBA 0 → flush.

use crate::MIB;
use crate::buffer::AlignedBuf;
use crate::emit::{Emitter, io_fail};
use crate::error::FlashFailure;
use crate::target::{Target, TargetKind, ZeroMode};
use crate::zeroscan::ZeroMap;

pub use crate::emit::WriteStats;

/// How many bytes of the image start are written last.
pub const HOLD_BACK: u64 = MIB;
/// How many of the image's newest bytes are held until the stream ends.
pub const HOLD_TAIL: u64 = MIB;

pub struct Writer<'t> {
    out: Emitter<'t>,
    head: AlignedBuf,
    /// Image bytes `[tail_start, offset)`, not yet written; never more than [`HOLD_TAIL`].
    tail: AlignedBuf,
    tail_start: u64,
    /// Next image offset expected.
    offset: u64,
}

impl<'t> Writer<'t> {
    pub fn new(target: &'t Target, mode: ZeroMode) -> Writer<'t> {
        Writer {
            out: Emitter::new(target, mode),
            head: AlignedBuf::new(HOLD_BACK as usize),
            tail: AlignedBuf::new(HOLD_TAIL as usize),
            tail_start: HOLD_BACK,
            offset: 0,
        }
    }

    /// Image bytes received so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn stats(&self) -> WriteStats {
        self.out.stats
    }

    /// Granules left untouched in skip mode.
    pub fn skipped_map(&self) -> Option<&ZeroMap> {
        self.out.skipped.as_ref()
    }

    fn check_room(&self, n: u64) -> Result<(), FlashFailure> {
        match self.out.target.capacity() {
            Some(cap) if self.offset + n > cap => Err(FlashFailure::RanPastEnd { target: cap }),
            _ => Ok(()),
        }
    }

    /// Take up to the rest of the first MiB from the front of `n` incoming bytes; how many.
    fn take_head(&mut self, n: u64) -> u64 {
        if self.offset >= HOLD_BACK {
            return 0;
        }
        let take = (HOLD_BACK - self.offset).min(n);
        self.head.set_len((self.offset + take) as usize);
        take
    }

    /// Before `n` more bytes join the ring at `self.offset`: how many of the ring's bytes and
    /// how many of the incoming ones fall behind the window and must go out now.
    fn behind_window(&self, n: u64) -> (usize, u64) {
        let end = self.offset + n;
        let window = end.saturating_sub(HOLD_TAIL).max(HOLD_BACK);
        let from_ring = (window.min(self.offset) - self.tail_start) as usize;
        (from_ring, window.saturating_sub(self.offset))
    }

    /// Drop the first `k` bytes of the ring (written out).
    fn consume_ring(&mut self, k: usize) {
        if k == 0 {
            return;
        }
        let len = self.tail.len();
        self.tail.as_full_mut().copy_within(k..len, 0);
        self.tail.set_len(len - k);
        self.tail_start += k as u64;
    }

    /// Accept the next `data` of the image.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FlashFailure> {
        self.check_room(data.len() as u64)?;
        let take = self.take_head(data.len() as u64) as usize;
        if take > 0 {
            let at = self.offset as usize;
            self.head.as_mut_slice()[at..at + take].copy_from_slice(&data[..take]);
            self.offset += take as u64;
            data = &data[take..];
        }
        if data.is_empty() {
            return Ok(());
        }
        let (from_ring, direct) = self.behind_window(data.len() as u64);
        let direct = direct as usize;
        // The ring's oldest bytes and the incoming ones behind the window, in one go.
        self.out.data_pair(
            &self.tail.as_slice()[..from_ring],
            &data[..direct],
            self.tail_start,
        )?;
        self.consume_ring(from_ring);
        self.offset += direct as u64;
        // Bytes written straight through drained the ring: it restarts behind them.
        self.tail_start = self.offset - self.tail.len() as u64;
        let rest = &data[direct..];
        let at = self.tail.len();
        self.tail.set_len(at + rest.len());
        self.tail.as_mut_slice()[at..].copy_from_slice(rest);
        self.offset += rest.len() as u64;
        Ok(())
    }

    /// Accept `n` zero bytes known from metadata (e.g. unallocated qcow2 clusters).
    pub fn push_zeros(&mut self, mut n: u64) -> Result<(), FlashFailure> {
        self.check_room(n)?;
        let take = self.take_head(n);
        if take > 0 {
            let at = self.offset as usize;
            self.head.as_mut_slice()[at..].fill(0);
            self.offset += take;
            n -= take;
        }
        if n == 0 {
            return Ok(());
        }
        let (from_ring, direct) = self.behind_window(n);
        self.out
            .data(&self.tail.as_slice()[..from_ring], self.tail_start)?;
        self.consume_ring(from_ring);
        self.out.zeros(self.offset, direct)?;
        self.offset += direct;
        self.tail_start = self.offset - self.tail.len() as u64;
        let rest = (n - direct) as usize;
        let at = self.tail.len();
        self.tail.set_len(at + rest);
        self.tail.as_mut_slice()[at..].fill(0);
        self.offset += rest as u64;
        Ok(())
    }

    /// After the last byte: settle zero runs and the file length, flush, write the held-back
    /// last MiB, flush, write the first MiB without LBA 0, flush, then LBA 0, flush. Returns
    /// the image length.
    pub fn finish(&mut self) -> Result<u64, FlashFailure> {
        self.out.flush_zero()?;
        let len = self.offset;
        let t = self.out.target;
        let sync = |t: &Target| t.sync().map_err(|e| io_fail("flushing", t, e));
        sync(t)?;
        if !self.tail.is_empty() {
            self.out.data(self.tail.as_slice(), self.tail_start)?;
            self.out.flush_zero()?;
        }
        // After the last write past the end (an unaligned end is written as a whole block).
        if t.kind() == TargetKind::File {
            t.set_file_len(len, self.out.mode == ZeroMode::Skip)
                .map_err(|e| io_fail("sizing", t, e))?;
        }
        sync(t)?;
        let head = self.head.as_slice();
        let lba = (t.logical_block_size().max(512) as usize).min(head.len());
        if head.len() > lba {
            t.write_at(&head[lba..], lba as u64)
                .map_err(|e| io_fail("writing the first MiB of", t, e))?;
            sync(t)?;
        }
        if lba > 0 {
            t.write_at(&head[..lba], 0)
                .map_err(|e| io_fail("writing the first block of", t, e))?;
        }
        self.out.stats.data_bytes += head.len() as u64;
        sync(t)?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Feed `image` in pieces of the given sizes (zeros for negative sizes), then finish, and
    /// compare the target file with the image.
    fn roundtrip(image_len: usize, pieces: &[i64], mode: ZeroMode) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.img");
        let mut image = pattern(image_len, 7);
        let target = Target::open(&path).unwrap();
        let mut w = Writer::new(&target, mode);
        let mut at = 0usize;
        let mut i = 0;
        while at < image_len {
            let p = pieces[i % pieces.len()];
            i += 1;
            let n = (p.unsigned_abs() as usize).min(image_len - at);
            if p < 0 {
                image[at..at + n].fill(0);
                w.push_zeros(n as u64).unwrap();
            } else {
                w.push(&image[at..at + n]).unwrap();
            }
            at += n;
            assert!(w.tail.len() as u64 <= HOLD_TAIL);
            assert_eq!(
                w.tail_start + w.tail.len() as u64,
                w.offset().max(HOLD_BACK)
            );
        }
        // Before finish: neither end of the image is on the target.
        let before = std::fs::read(&path).unwrap();
        assert!(before.len() <= image_len);
        if image_len > 2 * MIB as usize {
            let cut = image_len - HOLD_TAIL as usize;
            assert!(before.len() <= cut || before[cut..].iter().all(|&b| b == 0));
            assert!(before.iter().take(HOLD_BACK as usize).all(|&b| b == 0));
        }
        assert_eq!(w.finish().unwrap(), image_len as u64);
        drop(w);
        let after = std::fs::read(&path).unwrap();
        let first = after.iter().zip(&image).position(|(a, b)| a != b);
        assert!(
            after.len() == image.len() && first.is_none(),
            "{pieces:?} {mode:?}: length {} of {}, first difference at {first:?}",
            after.len(),
            image.len()
        );
    }

    #[test]
    fn both_ends_are_held_and_everything_arrives() {
        let m = MIB as i64;
        for mode in [ZeroMode::Auto, ZeroMode::Write] {
            roundtrip(6 * MIB as usize + 4321, &[4 * m], mode);
            roundtrip(6 * MIB as usize + 4321, &[4096, 100_000, 3 * m + 17], mode);
            roundtrip(9 * MIB as usize, &[m / 2, -(3 * m), 2 * m, -4096, 7], mode);
            roundtrip(MIB as usize + 5000, &[3000], mode);
            roundtrip(3 * MIB as usize / 2, &[-(m / 3), 65536], mode);
        }
    }
}
