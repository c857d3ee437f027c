//! Native decoders for concatenated compressed streams, one adapter for all four codecs.
//!
//! Each codec's own decoder handles one member (gzip member, xz stream, zstd frame, bzip2
//! stream); [`ConcatDecoder`] runs them back to back and decides between members itself: the
//! next member's magic continues, end of input finishes, xz stream padding and zstd skippable
//! frames are skipped, and anything else is trailing data, refused with its offset.

use std::io::{self, BufRead, Read};

use crate::error::ImageError;
use crate::format::{Compression, XZ_MAGIC, is_bzip2, is_gzip, is_zstd_frame, is_zstd_skippable};
use crate::peek::PeekReader;
use crate::source::is_head_exhausted;

type Input = PeekReader<Box<dyn Read + Send>>;

/// Input buffer of each layer: large enough that codec calls are few.
const INPUT_BUFFER: usize = 256 * 1024;

/// One member's decoder, which can hand its input back when the member ends.
trait Member: Read + Send {
    fn into_input(self: Box<Self>) -> Input;
}

struct Gz(flate2::bufread::GzDecoder<Input>);
struct Xz(liblzma::bufread::XzDecoder<Input>);
struct Zstd(zstd::stream::read::Decoder<'static, Input>);
struct Bz(bzip2::bufread::BzDecoder<Input>);

macro_rules! member {
    ($t:ident, $into:ident) => {
        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Member for $t {
            fn into_input(self: Box<Self>) -> Input {
                self.0.$into()
            }
        }
    };
}
member!(Gz, into_inner);
member!(Xz, into_inner);
member!(Zstd, finish);
member!(Bz, into_inner);

enum State {
    Between(Input),
    InMember(Box<dyn Member>),
    Finished,
    /// A member decoder failed; its input is gone with it.
    Failed,
}

/// Decodes every member of one compression layer, refusing trailing data.
pub struct ConcatDecoder {
    codec: Compression,
    state: State,
    members: u64,
    /// Position in the compressed input where the current member started, for messages.
    member_start: u64,
}

impl ConcatDecoder {
    pub fn new(codec: Compression, input: Box<dyn Read + Send>) -> ConcatDecoder {
        ConcatDecoder {
            codec,
            state: State::Between(PeekReader::with_capacity(INPUT_BUFFER, input)),
            members: 0,
            member_start: 0,
        }
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> io::Error {
        io::Error::other(ImageError::Corrupt {
            layer: self.codec,
            detail: format!(
                "{detail} (in the member starting at compressed byte {})",
                self.member_start
            ),
        })
    }

    /// At a member boundary: start the next member, or finish, or refuse trailing data.
    fn next_member(&mut self, mut input: Input) -> io::Result<State> {
        loop {
            let pos = input.position();
            let head = input.peek(12)?;
            if head.is_empty() {
                if self.members == 0 {
                    return Err(self.corrupt("no compressed data"));
                }
                return Ok(State::Finished);
            }
            let trailing = || {
                io::Error::other(ImageError::TrailingData {
                    layer: self.codec,
                    offset: pos,
                })
            };
            match self.codec {
                Compression::Gzip if is_gzip(head) => {
                    return Ok(State::InMember(Box::new(Gz(
                        flate2::bufread::GzDecoder::new(input),
                    ))));
                }
                Compression::Bzip2 if is_bzip2(head) => {
                    return Ok(State::InMember(Box::new(Bz(
                        bzip2::bufread::BzDecoder::new(input),
                    ))));
                }
                Compression::Xz if head.starts_with(&XZ_MAGIC) => {
                    let stream = xz_stream().map_err(|e| self.corrupt(e))?;
                    let dec = liblzma::bufread::XzDecoder::new_stream(input, stream);
                    return Ok(State::InMember(Box::new(Xz(dec))));
                }
                Compression::Xz if self.members > 0 && head.first() == Some(&0) => {
                    // Stream padding: null bytes in groups of four.
                    if head.len() < 4 || head[..4] != [0, 0, 0, 0] {
                        return Err(trailing());
                    }
                    input.consume(4);
                }
                Compression::Zstd if is_zstd_frame(head) => {
                    let mut dec = zstd::stream::read::Decoder::with_buffer(input)?.single_frame();
                    // Accept frames made with --long (windows up to 2 GiB); memory is only used
                    // when a frame asks for it.
                    dec.window_log_max(31)?;
                    return Ok(State::InMember(Box::new(Zstd(dec))));
                }
                Compression::Zstd if is_zstd_skippable(head) => {
                    if head.len() < 8 {
                        return Err(self.corrupt("truncated skippable frame"));
                    }
                    let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
                    input.consume(8);
                    if input.skip(len)? != len {
                        return Err(self.corrupt("truncated skippable frame"));
                    }
                    // A file of only skippable frames holds no data: count it as a member so
                    // it is reported as empty output, not as missing data.
                    self.members += 1;
                }
                _ => return Err(trailing()),
            }
        }
    }
}

fn xz_stream() -> Result<liblzma::stream::Stream, liblzma::stream::Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8) as u32;
    liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        .memlimit_stop(u64::MAX)
        .decoder()
}

impl Read for ConcatDecoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Between(input) => {
                    let start = input.position();
                    self.state = self.next_member(input)?;
                    if matches!(self.state, State::InMember(_)) {
                        self.member_start = start;
                        self.members += 1;
                    }
                }
                State::InMember(mut m) => match m.read(buf) {
                    Ok(0) => self.state = State::Between(m.into_input()),
                    Ok(n) => {
                        self.state = State::InMember(m);
                        return Ok(n);
                    }
                    Err(e) if is_head_exhausted(&e) => return Err(e),
                    Err(e) => return Err(self.corrupt(e)),
                },
                State::Finished => {
                    self.state = State::Finished;
                    return Ok(0);
                }
                State::Failed => return Err(self.corrupt("decoding already failed")),
            }
        }
    }
}

/// Wrap `raw` in one decoder per layer, outermost first.
pub fn decoded_stream(raw: Box<dyn Read + Send>, layers: &[Compression]) -> Box<dyn Read + Send> {
    layers
        .iter()
        .fold(raw, |r, c| Box::new(ConcatDecoder::new(*c, r)))
}

/// The [`ImageError`] carried inside an I/O error from a decoder, if any.
pub fn image_error(e: &io::Error) -> Option<&ImageError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ImageError>())
}

/// Move the [`ImageError`] out of an I/O error from a decoder, or give the I/O error back.
pub fn into_image_error(e: io::Error) -> Result<ImageError, io::Error> {
    if image_error(&e).is_none() {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => inner
            .downcast::<ImageError>()
            .map(|b| *b)
            .map_err(|b| io::Error::new(kind, b)),
        None => Err(io::Error::from(kind)),
    }
}

/// Read until `buf` is full or the stream ends; returns the count.
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Like the zstd command: content size in the header and a checksum.
    fn zst(data: &[u8]) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.set_parameter(zstd::stream::raw::CParameter::ChecksumFlag(true))
            .unwrap();
        c.compress(data).unwrap()
    }

    fn bz(data: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(codec: Compression, data: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut d = ConcatDecoder::new(codec, Box::new(io::Cursor::new(data)));
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    type Encoder = fn(&[u8]) -> Vec<u8>;

    fn all() -> [(Compression, Encoder); 4] {
        [
            (Compression::Gzip, gz),
            (Compression::Xz, xz),
            (Compression::Zstd, zst),
            (Compression::Bzip2, bz),
        ]
    }

    #[test]
    fn decodes_concatenated_members() {
        for (codec, enc) in all() {
            let mut data = enc(b"first member, ");
            data.extend(enc(b"second member"));
            assert_eq!(
                decode(codec, data).unwrap(),
                b"first member, second member",
                "{codec}"
            );
        }
    }

    #[test]
    fn refuses_trailing_garbage_with_its_offset() {
        for (codec, enc) in all() {
            let mut data = enc(b"payload");
            let at = data.len() as u64;
            data.extend(b"GARBAGE!");
            let err = decode(codec, data).unwrap_err();
            match image_error(&err) {
                Some(ImageError::TrailingData { layer, offset }) => {
                    assert_eq!((*layer, *offset), (codec, at), "{codec}");
                }
                other => panic!("{codec}: expected trailing data, got {other:?} / {err}"),
            }
        }
    }

    #[test]
    fn refuses_truncated_and_corrupt_streams() {
        for (codec, enc) in all() {
            let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let full = enc(&big);
            let cut = full[..full.len() / 2].to_vec();
            let err = decode(codec, cut).unwrap_err();
            assert!(
                matches!(image_error(&err), Some(ImageError::Corrupt { .. })),
                "{codec}: {err}"
            );
            let mut flipped = full.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            assert!(
                decode(codec, flipped).is_err(),
                "{codec}: a flipped bit must not decode"
            );
        }
    }

    #[test]
    fn xz_stream_padding_is_accepted_but_odd_padding_is_not() {
        let mut data = xz(b"abc");
        data.extend([0u8; 8]);
        data.extend(xz(b"def"));
        assert_eq!(decode(Compression::Xz, data.clone()).unwrap(), b"abcdef");
        data.extend([0u8; 3]);
        assert!(decode(Compression::Xz, data).is_err());
    }

    #[test]
    fn zstd_skippable_frames_are_skipped() {
        let mut data = vec![0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5];
        data.extend(zst(b"hello"));
        data.extend([0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        data.extend(zst(b" world"));
        assert_eq!(decode(Compression::Zstd, data).unwrap(), b"hello world");
    }

    #[test]
    fn layers_nest() {
        let inner = zst(b"nested payload");
        let outer = gz(&inner);
        let mut r = decoded_stream(
            Box::new(io::Cursor::new(outer)),
            &[Compression::Gzip, Compression::Zstd],
        );
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"nested payload");
    }
}
