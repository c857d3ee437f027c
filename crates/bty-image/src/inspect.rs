//! What an image is, found by looking at content only: its layers from the outside in
//! (`zstd → raw`), its size as published, the exact size of what it decodes to where the
//! container records it, and what its first sectors hold. Refusals (archives, qcow2 inside a
//! compressor, empty files, …) are decided here, before a target is touched.

use std::io::{self, Read};

use std::sync::Arc;

use serde::Serialize;

use crate::decode::{decoded_stream, into_image_error};
use crate::error::ImageError;
use crate::format::{Compression, Layer, PartitionTable, SNIFF_LEN, Sniffed, sniff};
use crate::qcow2::header::ClusterCompression;
use crate::qcow2::map::read_map;
use crate::qcow2::{Qcow2Info, Qcow2Map};
use crate::size::{xz_uncompressed_size, zstd_content_size};
use crate::source::{ImageSource, is_head_exhausted};

/// Like `read_full`, but a buffered pipe head running out is a normal stop: returns the count
/// and whether that happened.
fn read_full_until_exhausted(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok((filled, false)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_head_exhausted(&e) => return Ok((filled, true)),
            Err(e) => return Err(e),
        }
    }
    Ok((filled, false))
}

/// Deepest nesting of compressors accepted (e.g. gzip of zstd); more is surely a mistake.
const MAX_LAYERS: usize = 3;

/// Smallest decoded image accepted: one sector.
pub const MIN_IMAGE_BYTES: u64 = 512;

/// The result of inspecting an image source.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// The source as given (path or URL).
    pub source: String,
    /// Compression layers, outermost first.
    pub compression: Vec<Compression>,
    /// What the decoded stream is.
    pub payload: Layer,
    /// Size of the source as published, when known.
    pub source_size: Option<u64>,
    /// Size of the decoded image, when known.
    pub output_size: Option<u64>,
    /// Whether `output_size` is exact (true) or unknown (false; `output_size` is then null).
    pub output_size_exact: bool,
    /// Where the output size came from (`file size`, `zstd frame headers`, `xz index`, …).
    pub output_size_from: Option<&'static str>,
    pub partition_table: Option<PartitionTable>,
    /// qcow2 details, for qcow2 images.
    pub qcow2: Option<Qcow2Info>,
    /// The validated qcow2 map, reused by the flash so metadata is read once.
    #[serde(skip)]
    pub qcow2_map: Option<Arc<Qcow2Map>>,
    /// Remarks for the operator (why a size is unknown, hybrid ISO, …).
    pub notes: Vec<String>,
}

impl ImageInfo {
    /// Layers as a chain, e.g. `zstd → raw`.
    pub fn layer_chain(&self) -> String {
        let mut names: Vec<&str> = self.compression.iter().map(|c| c.name()).collect();
        names.push(self.payload.name());
        names.join(" → ")
    }
}

fn io_err(source: &dyn ImageSource, e: io::Error) -> ImageError {
    match into_image_error(e) {
        Ok(img) => img,
        Err(e) => ImageError::Io {
            what: source.describe(),
            source: e,
        },
    }
}

/// Look at an image and decide what it is, or why it cannot be flashed.
pub fn inspect(source: &dyn ImageSource) -> Result<ImageInfo, ImageError> {
    let source_size = source.size();
    if source_size == Some(0) {
        return Err(ImageError::Empty);
    }
    let mut layers: Vec<Compression> = Vec::new();
    let mut head = vec![0u8; SNIFF_LEN];
    // `complete`: the decoded image ended within the sniff buffer, so its size is known.
    let (sniffed, head_len, complete) = loop {
        let raw = source.open_head().map_err(|e| io_err(source, e))?;
        let mut stream = decoded_stream(raw, &layers);
        let (n, exhausted) = match read_full_until_exhausted(&mut stream, &mut head) {
            Ok(r) => r,
            Err(e) => return Err(io_err(source, e)),
        };
        if n == 0 && !exhausted {
            return Err(if layers.is_empty() {
                ImageError::Empty
            } else {
                ImageError::Tiny {
                    size: 0,
                    inner: format!(" after {} decompression", describe(&layers)),
                }
            });
        }
        match sniff(&head[..n]) {
            Sniffed::Compressed(c) if layers.len() < MAX_LAYERS => layers.push(c),
            other => break (other, n, n < SNIFF_LEN && !exhausted),
        }
    };
    let partition_table = match sniffed {
        Sniffed::Raw(t) => t,
        Sniffed::Qcow2 if layers.is_empty() => return inspect_qcow2(source),
        Sniffed::Qcow2 => return Err(ImageError::Qcow2Compressed { layers }),
        Sniffed::Tar => return Err(ImageError::Tar { layers }),
        Sniffed::Archive(kind) => return Err(ImageError::Archive { kind }),
        Sniffed::Unsupported { what, advice } => {
            return Err(ImageError::Unsupported { what, advice });
        }
        Sniffed::PlainIso => {
            return Err(ImageError::Unsupported {
                what: "an ISO 9660 image without a partition table",
                advice: "it boots from optical media only; use the distribution's USB (hybrid) image instead",
            });
        }
        Sniffed::Compressed(_) => {
            return Err(ImageError::Unsupported {
                what: "more than three nested compression layers",
                advice: "decompress the image and recompress it once",
            });
        }
    };

    let mut notes = Vec::new();
    let (mut output_size, mut from) = output_size(source, &layers, &mut notes);
    if complete {
        // The whole decoded image fitted in the sniff buffer: its size is known for certain.
        output_size = Some(head_len as u64);
        from = Some("decoded in full");
    }
    if let Some(size) = output_size
        && size < MIN_IMAGE_BYTES
    {
        let inner = if layers.is_empty() {
            String::new()
        } else {
            format!(" after {} decompression", describe(&layers))
        };
        return Err(ImageError::Tiny { size, inner });
    }
    if partition_table == Some(PartitionTable::IsoHybrid) {
        notes.push(
            "ISO 9660 hybrid image: it carries a partition table and is written as raw".into(),
        );
    }
    Ok(ImageInfo {
        source: source.describe(),
        compression: layers,
        payload: Layer::Raw,
        source_size,
        output_size,
        output_size_exact: output_size.is_some(),
        output_size_from: from,
        partition_table,
        qcow2: None,
        qcow2_map: None,
        notes,
    })
}

fn inspect_qcow2(source: &dyn ImageSource) -> Result<ImageInfo, ImageError> {
    let (Some(ra), Some(len)) = (source.random_access(), source.size()) else {
        return Err(ImageError::Qcow2NeedsRandomAccess);
    };
    let map = read_map(ra, len)?;
    let h = &map.header;
    let details = Qcow2Info {
        version: h.version,
        cluster_size: h.cluster_size,
        virtual_size: h.virtual_size,
        allocated_bytes: map.allocated_bytes,
        compressed_bytes: map.compressed_bytes,
        compression_type: match h.compression {
            ClusterCompression::Deflate => "zlib",
            ClusterCompression::Zstd => "zstd",
        },
        features: h.features(),
        snapshots: h.snapshots,
    };
    let mut notes = Vec::new();
    if h.snapshots > 0 {
        notes.push(format!(
            "{} internal snapshot(s): the active state is what gets written",
            h.snapshots
        ));
    }
    if h.dirty {
        notes.push(
            "the image was not closed cleanly (lazy refcounts); its data tables are still valid"
                .into(),
        );
    }
    Ok(ImageInfo {
        source: source.describe(),
        compression: Vec::new(),
        payload: Layer::Qcow2,
        source_size: Some(len),
        output_size: Some(h.virtual_size),
        output_size_exact: true,
        output_size_from: Some("qcow2 header"),
        partition_table: None,
        qcow2: Some(details),
        qcow2_map: Some(Arc::new(map)),
        notes,
    })
}

fn describe(layers: &[Compression]) -> String {
    let names: Vec<&str> = layers.iter().map(|c| c.name()).collect();
    names.join("+")
}

fn output_size(
    source: &dyn ImageSource,
    layers: &[Compression],
    notes: &mut Vec<String>,
) -> (Option<u64>, Option<&'static str>) {
    let len = source.size();
    match (layers, len) {
        ([], Some(len)) => (Some(len), Some("file size")),
        ([c], Some(len)) => {
            let Some(ra) = source.random_access() else {
                notes.push(format!(
                    "output size unknown: reading the {c} size needs random access"
                ));
                return (None, None);
            };
            let (size, from) = match c {
                Compression::Zstd if !source.cheap_random_access() => {
                    notes.push(
                        "output size unknown: zstd frame headers are not walked over the network"
                            .into(),
                    );
                    return (None, None);
                }
                Compression::Zstd => (zstd_content_size(ra, len), "zstd frame headers"),
                Compression::Xz => (xz_uncompressed_size(ra, len), "xz index"),
                Compression::Gzip => {
                    notes.push("output size unknown: gzip records it only modulo 4 GiB".into());
                    return (None, None);
                }
                Compression::Bzip2 => {
                    notes.push("output size unknown: bzip2 does not record it".into());
                    return (None, None);
                }
            };
            match size {
                Ok(Some(s)) => (Some(s), Some(from)),
                Ok(None) => {
                    notes.push(format!(
                        "output size unknown: the {c} container does not record it for every part"
                    ));
                    (None, None)
                }
                Err(e) => {
                    notes.push(format!(
                        "output size unknown: reading the {from} failed: {e}"
                    ));
                    (None, None)
                }
            }
        }
        _ => {
            notes.push("output size unknown until the image is decoded".into());
            (None, None)
        }
    }
}
