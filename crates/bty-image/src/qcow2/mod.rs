//! The native qcow2 reader.
//!
//! Reading happens in two passes over positional reads: first all metadata (header, header
//! extensions, the active L1 table, every L2 table, read in ascending file order with adjacent
//! tables coalesced into one read) is read and validated into a [`map::Qcow2Map`] of guest
//! extents — data, compressed, zero — before anything is written; then the
//! [`producer::Qcow2Producer`] walks the map in guest order, reading data runs with one read per
//! host-contiguous run and decompressing compressed clusters (deflate or zstd) through a small
//! read-ahead window. Unallocated and zero clusters become zero extents that cost nothing
//! downstream. Nothing missing is ever replaced by zeros: any offset past the end of the file,
//! misaligned, or with reserved bits set refuses the image.
//!
//! Supported: versions 2 and 3, cluster sizes 512 B – 2 MiB, zero clusters and zero flags,
//! compressed clusters (deflate, zstd), extended L2 entries (subclusters), preallocated images,
//! internal snapshots (the active L1 is written), lazy refcounts (the dirty bit). Refused:
//! backing files, encryption, external data files, unknown incompatible features, the corrupt
//! bit.

pub mod hashing;
pub mod header;
pub mod map;
pub mod producer;

pub use header::Header;
pub use map::{Extent, Qcow2Map};
pub use producer::Qcow2Producer;

use serde::Serialize;

/// What `bty inspect` shows about a qcow2 image.
#[derive(Debug, Clone, Serialize)]
pub struct Qcow2Info {
    pub version: u32,
    pub cluster_size: u64,
    pub virtual_size: u64,
    /// Guest bytes stored in the file (data and compressed clusters).
    pub allocated_bytes: u64,
    /// Guest bytes stored in compressed clusters.
    pub compressed_bytes: u64,
    pub compression_type: &'static str,
    pub features: Vec<&'static str>,
    pub snapshots: u32,
}

/// Read `data` as a qcow2 file as far as it goes, producing at most `limit` image bytes;
/// returns how many were produced. For fuzzing and robustness tests: any input must give a
/// result or an error, never a panic or a hang.
pub fn exercise(data: &[u8], limit: u64) -> Result<u64, String> {
    use crate::buffer::AlignedBuf;
    use crate::produce::{Produced, Producer};
    use crate::source::{ImageSource, MemorySource};
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    let source: Arc<dyn ImageSource> = Arc::new(MemorySource::new("fuzz", data.to_vec()));
    let map = map::read_map(&MemorySource::new("fuzz", data.to_vec()), data.len() as u64)
        .map_err(|e| e.to_string())?;
    let mut producer = Qcow2Producer::open(
        source,
        Some(Arc::new(map)),
        true,
        Arc::new(AtomicU64::new(0)),
    )
    .map_err(|e| e.to_string())?;
    let mut buf = AlignedBuf::new(1 << 20);
    let mut produced = 0u64;
    while produced < limit {
        match producer.next(&mut buf).map_err(|e| e.to_string())? {
            Some(Produced::Data) => produced += buf.len() as u64,
            Some(Produced::Zeros(n)) => produced += n,
            None => break,
        }
    }
    producer.source_digest().map_err(|e| e.to_string())?;
    Ok(produced)
}
