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
