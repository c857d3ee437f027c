//! Read-back verification. After the flush, the written range is read back bypassing the page
//! cache and digested with the same tree digest as the image; the per-MiB block digests kept
//! while writing name the first differing MiB at once, and the exact byte is then found by
//! producing the image again up to that MiB. With `--zeroes=skip`, ranges that were left
//! untouched are compared as zeros (what the image holds there), since the target's old bytes
//! are expected there.

use std::io;

use crate::buffer::AlignedBuf;
use crate::cancel::CancelToken;
use crate::error::FlashFailure;
use crate::inspect::ImageInfo;
use crate::produce::{Produced, open_producer};
use crate::source::ImageSource;
use crate::target::Target;
use crate::tree::{BLOCK, TreeHasher};
use crate::zeroscan::ZeroMap;

/// What the write produced, for comparison.
pub struct Expected<'a> {
    pub len: u64,
    pub digest: [u8; 32],
    /// Tree block digests, one per MiB.
    pub blocks: &'a [[u8; 32]],
    pub skipped: Option<&'a ZeroMap>,
}

/// How a read-back ended when it did not match.
#[derive(Debug)]
pub enum Mismatch {
    /// The MiB block at this index differs.
    Block(u64),
    /// Every block matched but the root digest did not.
    Digest,
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
    let chunk = 4 * BLOCK;
    let mut buf = AlignedBuf::new(chunk as usize);
    let mut tree = TreeHasher::new(true);
    let mut checked = 0usize;
    let mut off = 0u64;
    while off < expected.len {
        if cancel.is_cancelled() {
            return Err(FlashFailure::Cancelled);
        }
        let want = (expected.len - off).min(chunk);
        buf.set_len((want.div_ceil(align) * align) as usize);
        let got = target.read_back(buf.as_mut_slice(), off).map_err(io_fail)?;
        if (got as u64) < want {
            let at = off + got as u64;
            return Err(io_fail(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the target ends at byte {at}"),
            )));
        }
        buf.set_len(want as usize);
        if let Some(map) = expected.skipped {
            map.blank(buf.as_mut_slice(), off);
        }
        tree.update(buf.as_slice());
        let done = tree.blocks();
        while checked < done.len() {
            if expected.blocks.get(checked) != Some(&done[checked]) {
                return Ok(Err(Mismatch::Block(checked as u64)));
            }
            checked += 1;
        }
        off += want;
        on_progress(off);
    }
    let (root, blocks) = tree.finish();
    if let Some(last) = blocks.len().checked_sub(1)
        && last >= checked
        && expected.blocks.get(last) != blocks.get(last)
    {
        return Ok(Err(Mismatch::Block(last as u64)));
    }
    if root != expected.digest {
        return Ok(Err(Mismatch::Digest));
    }
    Ok(Ok(()))
}

/// Produce the image again up to block `index` and compare it byte by byte with the target, to
/// name the first differing offset. `None` if the block turns out identical.
pub fn first_difference(
    source: &std::sync::Arc<dyn ImageSource>,
    info: &ImageInfo,
    target: &Target,
    index: u64,
    expected: &Expected<'_>,
) -> Result<Option<u64>, FlashFailure> {
    let start = index * BLOCK;
    let len = BLOCK.min(expected.len.saturating_sub(start)) as usize;
    // The image's bytes of that block.
    let mut image = vec![0u8; len];
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut producer = open_producer(source.clone(), info, false, counter)?;
    let mut buf = AlignedBuf::new(4 * BLOCK as usize);
    let mut pos = 0u64;
    while pos < start + len as u64 {
        let n = match producer.next(&mut buf)? {
            Some(Produced::Data) => {
                let data = buf.as_slice();
                copy_overlap(&mut image, start, pos, data.len() as u64, Some(data));
                data.len() as u64
            }
            Some(Produced::Zeros(n)) => {
                copy_overlap(&mut image, start, pos, n, None);
                n
            }
            None => break,
        };
        pos += n;
    }
    let align = target.io_align().max(1);
    let mut disk = AlignedBuf::new(((len as u64).div_ceil(align) * align) as usize);
    disk.set_len(disk.capacity());
    let io_fail = |e: io::Error| FlashFailure::Io {
        what: "reading back".into(),
        source: e,
    };
    let got = target
        .read_back(disk.as_full_mut(), start)
        .map_err(io_fail)?;
    disk.set_len(got.min(len));
    if let Some(map) = expected.skipped {
        map.blank(disk.as_mut_slice(), start);
    }
    let disk = disk.as_slice();
    let pos = image.iter().zip(disk.iter()).position(|(a, b)| a != b);
    Ok(match pos {
        Some(p) => Some(start + p as u64),
        None if disk.len() < image.len() => Some(start + disk.len() as u64),
        None => None,
    })
}

/// Copy the part of a piece (image bytes `[piece_at, piece_at + piece_len)`; `None` = zeros)
/// that overlaps the window `image` (image bytes from `window_at`).
fn copy_overlap(
    image: &mut [u8],
    window_at: u64,
    piece_at: u64,
    piece_len: u64,
    data: Option<&[u8]>,
) {
    let (a, b) = (
        window_at.max(piece_at),
        (window_at + image.len() as u64).min(piece_at + piece_len),
    );
    if a >= b {
        return;
    }
    let dst = &mut image[(a - window_at) as usize..(b - window_at) as usize];
    match data {
        Some(d) => dst.copy_from_slice(&d[(a - piece_at) as usize..(b - piece_at) as usize]),
        None => dst.fill(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_copied_exactly() {
        let mut w = [9u8; 4];
        copy_overlap(&mut w, 10, 8, 4, Some(&[1, 2, 3, 4]));
        assert_eq!(w, [3, 4, 9, 9]);
        copy_overlap(&mut w, 10, 13, 5, None);
        assert_eq!(w, [3, 4, 9, 0]);
        copy_overlap(&mut w, 10, 0, 5, None);
        assert_eq!(w, [3, 4, 9, 0]);
    }
}
