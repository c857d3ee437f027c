//! Exact output sizes read from compressed containers without decoding them: the zstd frame
//! headers (content size of every frame) and the xz index (uncompressed size of every block of
//! every stream). Both need positional reads; gzip's trailer is modulo 4 GiB and bzip2 stores
//! no size, so those stay unknown.

use std::io;

use crate::format::{XZ_MAGIC, is_zstd_frame, is_zstd_skippable};
use crate::source::ReadAt;

/// Sum of the content sizes of every zstd frame in `[0, len)`, or `None` when any frame does not
/// declare its size or the layout is not understood.
pub fn zstd_content_size(src: &dyn ReadAt, len: u64) -> io::Result<Option<u64>> {
    let mut pos = 0u64;
    let mut total = 0u64;
    let mut frames = 0u32;
    while pos < len {
        let mut head = [0u8; 18];
        let avail = usize::try_from((len - pos).min(18)).unwrap_or(18);
        src.read_exact_at(&mut head[..avail], pos)?;
        let head = &head[..avail];
        if is_zstd_skippable(head) {
            if head.len() < 8 {
                return Ok(None);
            }
            pos += 8 + u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
            continue;
        }
        if !is_zstd_frame(head) || head.len() < 6 {
            return Ok(None);
        }
        let fhd = head[4];
        let fcs_flag = fhd >> 6;
        let single_segment = fhd & 0x20 != 0;
        let has_checksum = fhd & 0x04 != 0;
        let dict_len = [0usize, 1, 2, 4][usize::from(fhd & 0x03)];
        let fcs_len = match (fcs_flag, single_segment) {
            (0, false) => return Ok(None),
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let fcs_at = 5 + usize::from(!single_segment) + dict_len;
        let Some(field) = head.get(fcs_at..fcs_at + fcs_len) else {
            return Ok(None);
        };
        let mut le = [0u8; 8];
        le[..fcs_len].copy_from_slice(field);
        let mut size = u64::from_le_bytes(le);
        if fcs_len == 2 {
            size += 256;
        }
        total = total
            .checked_add(size)
            .ok_or_else(|| io::Error::other("zstd sizes overflow"))?;
        frames += 1;
        // Walk the blocks to find where the frame ends.
        pos += (fcs_at + fcs_len) as u64;
        loop {
            let mut bh = [0u8; 3];
            if pos + 3 > len {
                return Ok(None);
            }
            src.read_exact_at(&mut bh, pos)?;
            let v = u32::from(bh[0]) | u32::from(bh[1]) << 8 | u32::from(bh[2]) << 16;
            let last = v & 1 != 0;
            let block_type = (v >> 1) & 3;
            let block_size = u64::from(v >> 3);
            pos += 3 + match block_type {
                0 | 2 => block_size,
                1 => 1,
                _ => return Ok(None),
            };
            if last {
                break;
            }
        }
        if has_checksum {
            pos += 4;
        }
    }
    Ok((frames > 0 && pos == len).then_some(total))
}

fn read_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Largest xz index accepted (it holds 2 varints per block; 16 MiB is millions of blocks).
const MAX_XZ_INDEX: u64 = 16 << 20;

/// Total uncompressed size of every stream in an xz file of `len` bytes, from the indexes at
/// the end of each stream; `None` when the layout is not a valid xz file.
pub fn xz_uncompressed_size(src: &dyn ReadAt, len: u64) -> io::Result<Option<u64>> {
    let mut pos = len;
    let mut total = 0u64;
    let mut streams = 0;
    while pos > 0 {
        // Stream padding: groups of four null bytes after a stream.
        let mut word = [0u8; 4];
        while pos >= 4 {
            src.read_exact_at(&mut word, pos - 4)?;
            if word != [0; 4] {
                break;
            }
            pos -= 4;
        }
        if pos == 0 {
            break;
        }
        if pos < 24 {
            return Ok(None);
        }
        let mut footer = [0u8; 12];
        src.read_exact_at(&mut footer, pos - 12)?;
        if &footer[10..12] != b"YZ" {
            return Ok(None);
        }
        let backward = (u64::from(u32::from_le_bytes([
            footer[4], footer[5], footer[6], footer[7],
        ])) + 1)
            * 4;
        if backward > MAX_XZ_INDEX || backward + 24 > pos {
            return Ok(None);
        }
        let index_start = pos - 12 - backward;
        let mut index = vec![0u8; usize::try_from(backward).unwrap_or(0)];
        src.read_exact_at(&mut index, index_start)?;
        if index.first() != Some(&0) {
            return Ok(None);
        }
        let mut at = 1;
        let Some(records) = read_varint(&index, &mut at) else {
            return Ok(None);
        };
        let mut blocks_len = 0u64;
        for _ in 0..records {
            let (Some(unpadded), Some(uncompressed)) =
                (read_varint(&index, &mut at), read_varint(&index, &mut at))
            else {
                return Ok(None);
            };
            blocks_len = blocks_len.saturating_add(unpadded.div_ceil(4) * 4);
            total = total.saturating_add(uncompressed);
        }
        let Some(stream_start) = index_start.checked_sub(blocks_len + 12) else {
            return Ok(None);
        };
        let mut magic = [0u8; 6];
        src.read_exact_at(&mut magic, stream_start)?;
        if magic != XZ_MAGIC {
            return Ok(None);
        }
        streams += 1;
        pos = stream_start;
    }
    Ok((streams > 0).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;
    use std::io::Write;

    /// Like the zstd command: content size in the header and a checksum.
    fn zst(data: &[u8], level: i32) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        c.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))
            .unwrap();
        c.compress(data).unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn size_of(f: fn(&dyn ReadAt, u64) -> io::Result<Option<u64>>, data: Vec<u8>) -> Option<u64> {
        let len = data.len() as u64;
        let src = MemorySource::new("t", data);
        f(&src, len).unwrap()
    }

    #[test]
    fn zstd_sums_frames_and_skips_skippable_frames() {
        let a: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let mut data = zst(&a, 3);
        data.extend([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        data.extend(zst(b"tail", 3));
        assert_eq!(size_of(zstd_content_size, data), Some(300_004));
    }

    #[test]
    fn zstd_without_declared_size_is_unknown() {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_contentsize(false).unwrap();
        e.write_all(b"abc").unwrap();
        assert_eq!(size_of(zstd_content_size, e.finish().unwrap()), None);
    }

    #[test]
    fn zstd_garbage_or_truncation_is_unknown() {
        let mut data = zst(&[1u8; 100_000], 3);
        data.extend(b"junk");
        assert_eq!(size_of(zstd_content_size, data.clone()), None);
        data.truncate(data.len() - 10);
        assert_eq!(size_of(zstd_content_size, data), None);
    }

    #[test]
    fn xz_reads_every_stream_index() {
        let mut data = xz(&[5u8; 70_000]);
        data.extend([0u8; 4]);
        data.extend(xz(b"second"));
        data.extend([0u8; 8]);
        assert_eq!(size_of(xz_uncompressed_size, data), Some(70_006));
    }

    #[test]
    fn xz_damage_is_unknown_not_a_panic() {
        let data = xz(&[5u8; 1000]);
        for cut in [1, 5, 12, 20, data.len() - 1] {
            let _ = size_of(xz_uncompressed_size, data[..cut].to_vec());
        }
        let mut bad = data.clone();
        let n = bad.len();
        bad[n - 2] = b'X';
        assert_eq!(size_of(xz_uncompressed_size, bad), None);
    }
}
