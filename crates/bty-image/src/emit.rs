//! The zero-aware output stage of the writer: image bytes at their final offsets go onto the
//! target as data runs, and runs of zeros become the target's cheapest way of reading as zero
//! (`BLKZEROOUT`, holes) or are left alone (`--zeroes=skip`). It knows nothing of holding back.

use std::io;

use serde::Serialize;

use crate::error::FlashFailure;
use crate::target::{Target, ZeroMode};
use crate::tree::LEAF;
use crate::zeroscan::{ZeroMap, runs};

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

pub(crate) fn io_fail(what: &str, target: &Target, e: io::Error) -> FlashFailure {
    FlashFailure::Io {
        what: format!("{what} {}", target.path().display()),
        source: e,
    }
}

pub(crate) struct Emitter<'t> {
    pub(crate) target: &'t Target,
    pub(crate) mode: ZeroMode,
    granule: usize,
    pending_zero: Option<(u64, u64)>,
    pub(crate) stats: WriteStats,
    pub(crate) skipped: Option<ZeroMap>,
}

impl<'t> Emitter<'t> {
    pub(crate) fn new(target: &'t Target, mode: ZeroMode) -> Emitter<'t> {
        // Zero runs are found per digest leaf (64 KiB), a multiple of any logical block size.
        let lbs = target.logical_block_size().max(512) as usize;
        let granule = (LEAF as usize).div_ceil(lbs) * lbs;
        Emitter {
            target,
            mode,
            granule,
            pending_zero: None,
            stats: WriteStats::default(),
            skipped: (mode == ZeroMode::Skip).then(ZeroMap::new),
        }
    }

    /// `data` belongs at image offset `base`.
    pub(crate) fn data(&mut self, data: &[u8], base: u64) -> Result<(), FlashFailure> {
        if data.is_empty() {
            return Ok(());
        }
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
                self.zero_run(s, e)?;
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

    /// `a` then `b` belong at image offset `base` (the writer's held bytes, then the incoming
    /// piece). A data run that ends `a` and one that starts `b` go out as one write, so holding
    /// bytes back does not split the target's I/O.
    pub(crate) fn data_pair(&mut self, a: &[u8], b: &[u8], base: u64) -> Result<(), FlashFailure> {
        if a.is_empty() || b.is_empty() {
            self.data(a, base)?;
            return self.data(b, base + a.len() as u64);
        }
        let b_base = base + a.len() as u64;
        if self.mode == ZeroMode::Write {
            self.stats.data_bytes += (a.len() + b.len()) as u64;
            return self
                .target
                .write_pair_at(a, b, base)
                .map_err(|e| io_fail("writing", self.target, e));
        }
        let ra = runs(a, base, self.granule);
        let rb = runs(b, b_base, self.granule);
        let joined = matches!((ra.last(), rb.first()), (Some(x), Some(y)) if !x.zero && !y.zero);
        if !joined {
            self.data(a, base)?;
            return self.data(b, b_base);
        }
        let (last_a, first_b) = (ra[ra.len() - 1], rb[0]);
        // Everything of `a` before its last run, then the joined run, then the rest of `b`.
        self.data(&a[..last_a.start], base)?;
        self.flush_zero()?;
        let (pa, pb) = (&a[last_a.start..], &b[..first_b.end]);
        self.stats.data_bytes += (pa.len() + pb.len()) as u64;
        self.target
            .write_pair_at(pa, pb, base + last_a.start as u64)
            .map_err(|e| io_fail("writing", self.target, e))?;
        self.data(&b[first_b.end..], b_base + first_b.end as u64)
    }

    /// `n` zero bytes known from metadata belong at image offset `base`.
    pub(crate) fn zeros(&mut self, base: u64, n: u64) -> Result<(), FlashFailure> {
        if n == 0 {
            return Ok(());
        }
        if self.mode == ZeroMode::Write {
            self.stats.data_bytes += n;
            return self
                .target
                .write_zeros(base, n)
                .map_err(|err| io_fail("writing", self.target, err));
        }
        self.zero_run(base, base + n)
    }

    fn zero_run(&mut self, s: u64, e: u64) -> Result<(), FlashFailure> {
        match self.pending_zero {
            Some((ps, pe)) if pe == s => self.pending_zero = Some((ps, e)),
            _ => {
                self.flush_zero()?;
                self.pending_zero = Some((s, e));
            }
        }
        Ok(())
    }

    /// Settle the zero run being gathered.
    pub(crate) fn flush_zero(&mut self) -> Result<(), FlashFailure> {
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
}
