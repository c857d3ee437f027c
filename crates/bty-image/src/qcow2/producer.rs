//! Walks a [`Qcow2Map`] in guest order and produces the image: data runs read straight into the
//! pipeline's buffers (one read per host-contiguous run, up to a buffer), compressed clusters
//! decompressed through a read-ahead window so consecutive compressed clusters cost one read,
//! and zero extents passed on as zero extents.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::hashing::SourceReader;
use super::header::{ClusterCompression, invalid};
use super::map::{Extent, Qcow2Map, read_map};
use crate::buffer::AlignedBuf;
use crate::digest::Sha256Digest;
use crate::error::{FlashFailure, ImageError};
use crate::produce::{Produced, Producer};
use crate::source::{ImageSource, ReadAt};

/// Read-ahead window for compressed clusters.
const READ_AHEAD: u64 = 2 << 20;

pub struct Qcow2Producer {
    reader: SourceReader,
    map: Arc<Qcow2Map>,
    index: usize,
    /// Bytes of the current extent already produced.
    done_in_extent: u64,
    window_start: u64,
    window: Vec<u8>,
    cluster: Vec<u8>,
    deflate: flate2::Decompress,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

fn image_err(e: std::io::Error, what: &str) -> FlashFailure {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FlashFailure::Image(invalid(format!("{what}: the file is truncated")))
    } else {
        FlashFailure::Io {
            what: what.to_string(),
            source: e,
        }
    }
}

impl Qcow2Producer {
    /// Open `source`, reading its metadata first (or reusing a map read by inspect).
    pub fn open(
        source: Arc<dyn ImageSource>,
        map: Option<Arc<Qcow2Map>>,
        hash_source: bool,
        read_count: Arc<AtomicU64>,
    ) -> Result<Qcow2Producer, FlashFailure> {
        let len = source
            .size()
            .ok_or(FlashFailure::Image(ImageError::Qcow2NeedsRandomAccess))?;
        let reader = SourceReader::new(source, len, read_count, hash_source);
        let map = match map {
            Some(m) => m,
            None => Arc::new(read_map(&reader, len)?),
        };
        let cluster = map.header.cluster_size as usize;
        let zstd = match map.header.compression {
            ClusterCompression::Zstd => {
                Some(
                    zstd::bulk::Decompressor::new().map_err(|e| FlashFailure::Io {
                        what: "starting zstd".into(),
                        source: e,
                    })?,
                )
            }
            ClusterCompression::Deflate => None,
        };
        Ok(Qcow2Producer {
            reader,
            map,
            index: 0,
            done_in_extent: 0,
            window_start: 0,
            window: Vec::new(),
            cluster: vec![0u8; cluster],
            deflate: flate2::Decompress::new(false),
            zstd,
        })
    }

    fn advance(&mut self, n: u64, extent_len: u64) {
        self.done_in_extent += n;
        if self.done_in_extent >= extent_len {
            self.index += 1;
            self.done_in_extent = 0;
        }
    }

    /// Where the stored bytes of a compressed cluster are in the read-ahead window (read first
    /// when not there yet).
    fn compressed_range(
        &mut self,
        host: u64,
        stored: u64,
    ) -> Result<std::ops::Range<usize>, FlashFailure> {
        let end = host + stored;
        let cached =
            host >= self.window_start && end <= self.window_start + self.window.len() as u64;
        if !cached {
            let len = READ_AHEAD.max(stored).min(self.map.file_len - host);
            self.window.resize(len as usize, 0);
            self.reader
                .read_exact_at(&mut self.window, host)
                .map_err(|e| image_err(e, "reading compressed clusters"))?;
            self.window_start = host;
        }
        let s = (host - self.window_start) as usize;
        Ok(s..s + stored as usize)
    }

    /// Decompress the cluster at `host` into `self.cluster`; at least `need` bytes must result.
    fn decompress(
        &mut self,
        guest: u64,
        host: u64,
        stored: u64,
        need: u64,
    ) -> Result<(), FlashFailure> {
        let compression = self.map.header.compression;
        let range = self.compressed_range(host, stored)?;
        let input = &self.window[range];
        let bad = |detail: String| {
            FlashFailure::Image(invalid(format!(
                "the compressed cluster for guest offset {guest:#x} (at {host:#x}) does not decompress: {detail}"
            )))
        };
        let produced = match compression {
            ClusterCompression::Deflate => {
                self.deflate.reset(false);
                self.deflate
                    .decompress(input, &mut self.cluster, flate2::FlushDecompress::Finish)
                    .map_err(|e| bad(e.to_string()))?;
                self.deflate.total_out()
            }
            ClusterCompression::Zstd => {
                let frame = zstd::zstd_safe::find_frame_compressed_size(input)
                    .map_err(|code| bad(zstd::zstd_safe::get_error_name(code).to_string()))?;
                let z = self
                    .zstd
                    .as_mut()
                    .ok_or_else(|| bad("no zstd decoder".into()))?;
                z.decompress_to_buffer(&input[..frame], &mut self.cluster[..])
                    .map_err(|e| bad(e.to_string()))? as u64
            }
        };
        if produced < need {
            return Err(bad(format!("{produced} bytes instead of {need}")));
        }
        Ok(())
    }
}

impl Producer for Qcow2Producer {
    fn next(&mut self, buf: &mut AlignedBuf) -> Result<Option<Produced>, FlashFailure> {
        let cap = buf.capacity();
        buf.set_len(0);
        loop {
            let Some(&extent) = self.map.extents.get(self.index) else {
                return Ok((!buf.is_empty()).then_some(Produced::Data));
            };
            let filled = buf.len();
            let room = (cap - filled) as u64;
            match extent {
                Extent::Zero { len, .. } => {
                    if filled > 0 {
                        return Ok(Some(Produced::Data));
                    }
                    let n = len - self.done_in_extent;
                    self.advance(n, len);
                    return Ok(Some(Produced::Zeros(n)));
                }
                Extent::Data { host, len, .. } => {
                    if room == 0 {
                        return Ok(Some(Produced::Data));
                    }
                    let n = room.min(len - self.done_in_extent);
                    let at = host + self.done_in_extent;
                    let dst = &mut buf.as_full_mut()[filled..filled + n as usize];
                    self.reader
                        .read_exact_at(dst, at)
                        .map_err(|e| image_err(e, "reading data clusters"))?;
                    buf.set_len(filled + n as usize);
                    self.advance(n, len);
                }
                Extent::Compressed {
                    guest,
                    host,
                    stored,
                    len,
                } => {
                    if room < len {
                        return Ok(Some(Produced::Data));
                    }
                    self.decompress(guest, host, stored, len)?;
                    buf.as_full_mut()[filled..filled + len as usize]
                        .copy_from_slice(&self.cluster[..len as usize]);
                    buf.set_len(filled + len as usize);
                    self.advance(len, len);
                }
            }
        }
    }

    fn source_digest(&mut self) -> Result<Option<Sha256Digest>, FlashFailure> {
        self.reader
            .finish()
            .map_err(|e| image_err(e, "hashing the qcow2 file"))
    }
}
