//! The zero-aware, fail-safe writer. It receives the decoded image in order, holds the first
//! MiB back, splits the rest into zero and data runs on granule boundaries, writes data runs,
//! turns zero runs into the target's cheapest way of reading as zero (or leaves them, with
//! `--zeroes=skip`), and on `finish` flushes everything, then writes the held-back first MiB,
//! then flushes again — so a target is never left with a valid partition table in front of a
//! partial image.

use std::io;

use serde::Serialize;

use crate::MIB;
use crate::buffer::AlignedBuf;
use crate::error::FlashFailure;
use crate::target::{Target, TargetKind, ZeroMode};
use crate::tree::LEAF;
use crate::zeroscan::{ZeroMap, runs};

/// How many bytes of the image start are written last.
pub const HOLD_BACK: u64 = MIB;

/// Where the writer's bytes went.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriteStats {
    /// Bytes written as data.
    pub data_bytes: u64,
    /// Zero bytes made to read as zero without writing them (zero-out, holes).
    pub zeroed_bytes: u64,
    /// Zero bytes left untouched (`--zeroes=skip`).
    pub skipped_bytes: u64,
}

pub struct Writer<'t> {
    target: &'t Target,
    mode: ZeroMode,
    granule: usize,
    hold: AlignedBuf,
    /// Next image offset expected.
    offset: u64,
    pending_zero: Option<(u64, u64)>,
    stats: WriteStats,
    skipped: Option<ZeroMap>,
}

fn io_fail(what: &str, target: &Target, e: io::Error) -> FlashFailure {
    FlashFailure::Io {
        what: format!("{what} {}", target.path().display()),
        source: e,
    }
}

impl<'t> Writer<'t> {
    pub fn new(target: &'t Target, mode: ZeroMode) -> Writer<'t> {
        // Zero runs are found per digest leaf (64 KiB), a multiple of any logical block size.
        let lbs = target.logical_block_size().max(512) as usize;
        let granule = (LEAF as usize).div_ceil(lbs) * lbs;
        Writer {
            target,
            mode,
            granule,
            hold: AlignedBuf::new(HOLD_BACK as usize),
            offset: 0,
            pending_zero: None,
            stats: WriteStats::default(),
            skipped: (mode == ZeroMode::Skip).then(ZeroMap::new),
        }
    }

    /// Image bytes received so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Granules left untouched in skip mode.
    pub fn skipped_map(&self) -> Option<&ZeroMap> {
        self.skipped.as_ref()
    }

    /// Accept the next `data` of the image.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FlashFailure> {
        if let Some(cap) = self.target.capacity()
            && self.offset + data.len() as u64 > cap
        {
            return Err(FlashFailure::RanPastEnd { target: cap });
        }
        if self.offset < HOLD_BACK {
            let take = ((HOLD_BACK - self.offset) as usize).min(data.len());
            let at = self.offset as usize;
            self.hold.set_len(at + take);
            self.hold.as_mut_slice()[at..at + take].copy_from_slice(&data[..take]);
            self.offset += take as u64;
            data = &data[take..];
            if data.is_empty() {
                return Ok(());
            }
        }
        let base = self.offset;
        self.offset += data.len() as u64;
        if self.mode == ZeroMode::Write {
            self.stats.data_bytes += data.len() as u64;
            return self
                .target
                .write_at(data, base)
                .map_err(|e| io_fail("writing", self.target, e));
        }
        for run in runs(data, base, self.granule) {
            let (s, e) = (base + run.start as u64, base + run.end as u64);
            if run.zero {
                match self.pending_zero {
                    Some((ps, pe)) if pe == s => self.pending_zero = Some((ps, e)),
                    _ => {
                        self.flush_zero()?;
                        self.pending_zero = Some((s, e));
                    }
                }
            } else {
                self.flush_zero()?;
                self.stats.data_bytes += e - s;
                self.target
                    .write_at(&data[run.start..run.end], s)
                    .map_err(|err| io_fail("writing", self.target, err))?;
            }
        }
        Ok(())
    }

    /// Accept `n` zero bytes known from metadata (e.g. unallocated qcow2 clusters).
    pub fn push_zeros(&mut self, mut n: u64) -> Result<(), FlashFailure> {
        if let Some(cap) = self.target.capacity()
            && self.offset + n > cap
        {
            return Err(FlashFailure::RanPastEnd { target: cap });
        }
        if self.offset < HOLD_BACK {
            let take = (HOLD_BACK - self.offset).min(n);
            let at = self.offset as usize;
            self.hold.set_len(at + take as usize);
            self.hold.as_mut_slice()[at..].fill(0);
            self.offset += take;
            n -= take;
        }
        if n == 0 {
            return Ok(());
        }
        let (s, e) = (self.offset, self.offset + n);
        self.offset = e;
        if self.mode == ZeroMode::Write {
            self.stats.data_bytes += n;
            return self
                .target
                .write_zeros(s, n)
                .map_err(|err| io_fail("writing", self.target, err));
        }
        match self.pending_zero {
            Some((ps, pe)) if pe == s => self.pending_zero = Some((ps, e)),
            _ => {
                self.flush_zero()?;
                self.pending_zero = Some((s, e));
            }
        }
        Ok(())
    }

    fn flush_zero(&mut self) -> Result<(), FlashFailure> {
        let Some((s, e)) = self.pending_zero.take() else {
            return Ok(());
        };
        match self.mode {
            ZeroMode::Skip => {
                self.stats.skipped_bytes += e - s;
                if let Some(m) = self.skipped.as_mut() {
                    m.mark(s, e);
                }
                Ok(())
            }
            _ => {
                self.stats.zeroed_bytes += e - s;
                self.target
                    .zero_range(s, e - s)
                    .map_err(|err| io_fail("zeroing", self.target, err))
            }
        }
    }

    /// After the last byte: settle zero runs and file length, flush, write the held-back start,
    /// flush again. Returns the image length.
    pub fn finish(&mut self) -> Result<u64, FlashFailure> {
        self.flush_zero()?;
        let len = self.offset;
        let t = self.target;
        if t.kind() == TargetKind::File {
            t.set_file_len(len, self.mode == ZeroMode::Skip)
                .map_err(|e| io_fail("sizing", t, e))?;
        }
        t.sync().map_err(|e| io_fail("flushing", t, e))?;
        let head = self.hold.as_slice();
        if !head.is_empty() {
            t.write_at(head, 0)
                .map_err(|e| io_fail("writing the first MiB of", t, e))?;
            self.stats.data_bytes += head.len() as u64;
        }
        t.sync().map_err(|e| io_fail("flushing", t, e))?;
        Ok(len)
    }
}
