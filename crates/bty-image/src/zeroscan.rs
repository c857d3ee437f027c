//! Finding zero runs. The writer splits each buffer into granules and asks whether each is all
//! zero; runs of zero granules become `BLKZEROOUT`, holes or nothing, instead of writes.

/// True when every byte is zero. Written as a branch-light OR-reduction per 4 KiB so the
/// compiler vectorises it; data blocks usually exit on their first 4 KiB.
pub fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// A run of bytes in one buffer: `[start, end)` relative to the buffer, zero or data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub end: usize,
    pub zero: bool,
}

/// Split `buf`, which starts at image offset `offset`, into maximal zero and data runs on
/// granule boundaries (boundaries are multiples of `granule` in image offsets).
pub fn runs(buf: &[u8], offset: u64, granule: usize) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let g = granule.max(1) as u64;
    let mut pos = 0usize;
    while pos < buf.len() {
        let abs = offset + pos as u64;
        let next_boundary = (abs / g + 1) * g;
        let end = (pos as u64 + (next_boundary - abs)).min(buf.len() as u64) as usize;
        let zero = is_zero(&buf[pos..end]);
        match out.last_mut() {
            Some(last) if last.zero == zero => last.end = end,
            _ => out.push(Run {
                start: pos,
                end,
                zero,
            }),
        }
        pos = end;
    }
    out
}

/// Granules skipped as zero (with `--zeroes=skip`), so verification can leave them out.
#[derive(Debug, Default, Clone)]
pub struct ZeroMap {
    granule: u64,
    bits: Vec<u64>,
}

impl ZeroMap {
    pub fn new(granule: usize) -> ZeroMap {
        ZeroMap {
            granule: granule.max(1) as u64,
            bits: Vec::new(),
        }
    }

    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Mark `[start, end)`; `start` is granule-aligned, `end` is aligned or the image end.
    pub fn mark(&mut self, start: u64, end: u64) {
        let first = start / self.granule;
        let last = end.div_ceil(self.granule);
        for i in first..last {
            let (w, b) = ((i / 64) as usize, i % 64);
            if self.bits.len() <= w {
                self.bits.resize(w + 1, 0);
            }
            self.bits[w] |= 1 << b;
        }
    }

    pub fn is_marked(&self, granule_index: u64) -> bool {
        let (w, b) = ((granule_index / 64) as usize, granule_index % 64);
        self.bits.get(w).is_some_and(|x| x & (1 << b) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_zero_and_nonzero() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0u8; 10_000]));
        let mut v = vec![0u8; 10_000];
        v[9_999] = 1;
        assert!(!is_zero(&v));
    }

    #[test]
    fn splits_on_granule_boundaries_and_merges_runs() {
        let g = 8;
        let mut buf = vec![0u8; 40];
        buf[9] = 1; // granule 1 (8..16) is data
        buf[33] = 1; // granule 4 (32..40) is data
        let r = runs(&buf, 0, g);
        assert_eq!(
            r,
            vec![
                Run {
                    start: 0,
                    end: 8,
                    zero: true
                },
                Run {
                    start: 8,
                    end: 16,
                    zero: false
                },
                Run {
                    start: 16,
                    end: 32,
                    zero: true
                },
                Run {
                    start: 32,
                    end: 40,
                    zero: false
                },
            ]
        );
        // An unaligned start offset: the first run ends at the next absolute boundary.
        let r = runs(&[0u8; 10], 5, g);
        assert_eq!(
            r,
            vec![Run {
                start: 0,
                end: 10,
                zero: true
            }]
        );
        let mut b = vec![0u8; 10];
        b[4] = 1;
        let r = runs(&b, 5, g);
        assert_eq!(
            r,
            vec![
                Run {
                    start: 0,
                    end: 3,
                    zero: true
                },
                Run {
                    start: 3,
                    end: 10,
                    zero: false
                }
            ]
        );
    }

    #[test]
    fn zero_map_marks_granules() {
        let mut m = ZeroMap::new(4);
        m.mark(8, 18);
        assert!(!m.is_marked(1));
        assert!(m.is_marked(2) && m.is_marked(3) && m.is_marked(4));
        assert!(!m.is_marked(5));
        assert!(!m.is_marked(100_000));
    }
}
