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

/// Ranges of the image left untouched as zero (with `--zeroes=skip`), so verification can
/// compare them as zeros. Ranges arrive in ascending order and are coalesced.
#[derive(Debug, Default, Clone)]
pub struct ZeroMap {
    ranges: Vec<(u64, u64)>,
}

impl ZeroMap {
    pub fn new() -> ZeroMap {
        ZeroMap::default()
    }

    /// Record `[start, end)`; calls come in ascending order.
    pub fn mark(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        match self.ranges.last_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => self.ranges.push((start, end)),
        }
    }

    /// Zero the parts of `buf` (which holds image bytes from `offset`) that were skipped.
    pub fn blank(&self, buf: &mut [u8], offset: u64) {
        let end = offset + buf.len() as u64;
        let first = self.ranges.partition_point(|r| r.1 <= offset);
        for &(s, e) in &self.ranges[first..] {
            if s >= end {
                break;
            }
            let (a, b) = (s.max(offset), e.min(end));
            buf[(a - offset) as usize..(b - offset) as usize].fill(0);
        }
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
    fn zero_map_blanks_exactly_the_skipped_ranges() {
        let mut m = ZeroMap::new();
        m.mark(4, 8);
        m.mark(8, 10);
        m.mark(20, 22);
        let mut buf = [9u8; 24];
        m.blank(&mut buf, 0);
        assert_eq!(buf[..12], [9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 9, 9]);
        assert_eq!(buf[18..], [9, 9, 0, 0, 9, 9]);
        let mut buf = [9u8; 6];
        m.blank(&mut buf, 7);
        assert_eq!(buf, [0, 0, 0, 9, 9, 9]);
    }
}
