//! Read-back verification. After the flush, the written range is read back bypassing the page
//! cache and hashed; its sha256 must equal the decoded image's. Per-MiB fingerprints taken
//! while writing find the first differing MiB quickly; the exact byte is then found by decoding
//! the source again up to that MiB. With `--zeroes=skip`, granules that were left untouched are
//! compared as zeros (what the image holds), since the target's old bytes there are expected.

use std::io::{self, Read};

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_64;

use crate::MIB;
use crate::buffer::AlignedBuf;
use crate::cancel::CancelToken;
use crate::decode::{decoded_stream, read_full};
use crate::digest::Sha256Digest;
use crate::error::FlashFailure;
use crate::format::Compression;
use crate::source::ImageSource;
use crate::target::Target;
use crate::zeroscan::ZeroMap;

/// Size of the blocks fingerprinted while writing.
pub const VERIFY_BLOCK: u64 = MIB;

/// Fingerprint of one block.
pub fn block_fingerprint(data: &[u8]) -> u64 {
    xxh3_64(data)
}

/// What the write produced, for comparison.
pub struct Expected<'a> {
    pub len: u64,
    pub digest: Sha256Digest,
    pub blocks: &'a [u64],
    pub skipped: Option<&'a ZeroMap>,
}

/// How a read-back ended when it did not match.
#[derive(Debug)]
pub enum Mismatch {
    /// The block at this index differs.
    Block(u64),
    /// Every block matched but the whole digest did not (should not happen).
    Digest(Sha256Digest),
}

fn blank_skipped(buf: &mut [u8], off: u64, skipped: Option<&ZeroMap>) {
    let Some(map) = skipped else { return };
    let g = map.granule();
    let end = off + buf.len() as u64;
    let mut gi = off / g;
    while gi * g < end {
        if map.is_marked(gi) {
            let s = (gi * g).max(off);
            let e = ((gi + 1) * g).min(end);
            buf[(s - off) as usize..(e - off) as usize].fill(0);
        }
        gi += 1;
    }
}

/// Read `[0, expected.len)` back from the target and compare. `on_progress` receives the bytes
/// verified so far.
pub fn read_back(
    target: &Target,
    expected: &Expected<'_>,
    cancel: &CancelToken,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Result<(), Mismatch>, FlashFailure> {
    let io_fail = |e: io::Error| FlashFailure::Io {
        what: format!("reading back {}", target.path().display()),
        source: e,
    };
    target.prepare_read_back(expected.len).map_err(io_fail)?;
    let align = target.io_align().max(1);
    let chunk = 4 * VERIFY_BLOCK;
    let mut buf = AlignedBuf::new(chunk as usize);
    let mut sha = Sha256::new();
    let mut off = 0u64;
    while off < expected.len {
        if cancel.is_cancelled() {
            return Err(FlashFailure::Cancelled);
        }
        let want = (expected.len - off).min(chunk);
        let read_len = want.div_ceil(align) * align;
        buf.set_len(read_len as usize);
        let got = target.read_back(buf.as_mut_slice(), off).map_err(io_fail)?;
        if (got as u64) < want {
            return Err(io_fail(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the target ends at byte {}", off + got as u64),
            )));
        }
        buf.set_len(want as usize);
        blank_skipped(buf.as_mut_slice(), off, expected.skipped);
        let data = buf.as_slice();
        for (i, block) in data.chunks(VERIFY_BLOCK as usize).enumerate() {
            let idx = off / VERIFY_BLOCK + i as u64;
            if expected.blocks.get(idx as usize) != Some(&block_fingerprint(block)) {
                return Ok(Err(Mismatch::Block(idx)));
            }
        }
        sha.update(data);
        off += want;
        on_progress(off);
    }
    let actual = Sha256Digest::from_hasher(sha);
    if actual != expected.digest {
        return Ok(Err(Mismatch::Digest(actual)));
    }
    Ok(Ok(()))
}

/// Decode the source again up to block `index` and compare it byte by byte with the target,
/// to name the first differing offset. `None` if the block turns out identical.
pub fn first_difference(
    source: &dyn ImageSource,
    layers: &[Compression],
    target: &Target,
    index: u64,
    expected: &Expected<'_>,
) -> io::Result<Option<u64>> {
    let start = index * VERIFY_BLOCK;
    let len = VERIFY_BLOCK.min(expected.len.saturating_sub(start)) as usize;
    let mut stream = decoded_stream(source.open_stream()?, layers);
    io::copy(&mut (&mut stream).take(start), &mut io::sink())?;
    let mut image = vec![0u8; len];
    let n = read_full(&mut stream, &mut image)?;
    image.truncate(n);
    let align = target.io_align().max(1);
    let mut disk = AlignedBuf::new(((len as u64).div_ceil(align) * align) as usize);
    disk.set_len(disk.capacity());
    let got = target.read_back(disk.as_full_mut(), start)?;
    disk.set_len(got.min(len));
    blank_skipped(disk.as_mut_slice(), start, expected.skipped);
    let disk = disk.as_slice();
    let pos = image.iter().zip(disk.iter()).position(|(a, b)| a != b);
    Ok(match pos {
        Some(p) => Some(start + p as u64),
        None if disk.len() < image.len() => Some(start + disk.len() as u64),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_granules_read_as_zero() {
        let mut m = ZeroMap::new(4);
        m.mark(4, 8);
        let mut buf = [9u8; 12];
        blank_skipped(&mut buf, 0, Some(&m));
        assert_eq!(buf, [9, 9, 9, 9, 0, 0, 0, 0, 9, 9, 9, 9]);
        let mut buf = [9u8; 6];
        blank_skipped(&mut buf, 2, Some(&m));
        assert_eq!(buf, [9, 9, 0, 0, 0, 0]);
    }
}
