//! The guest-to-host map of a qcow2 image: the active L1 table and every L2 table it points at,
//! read in ascending file order (adjacent tables coalesced into one read), every entry
//! validated, turned into guest-ordered extents — data runs, compressed clusters, zeros.

use std::collections::BTreeMap;

use super::header::{Header, invalid};
use crate::error::ImageError;
use crate::source::ReadAt;

/// A piece of the guest image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// `len` guest bytes stored uncompressed at `host`.
    Data { guest: u64, host: u64, len: u64 },
    /// One compressed cluster: `stored` bytes at `host` decompress to the cluster, of which the
    /// first `len` bytes are guest data (less than a cluster only at the end of the image).
    Compressed {
        guest: u64,
        host: u64,
        stored: u64,
        len: u64,
    },
    /// `len` guest bytes that read as zero (unallocated, zero flag, or zero subclusters).
    Zero { guest: u64, len: u64 },
}

impl Extent {
    pub fn guest(&self) -> u64 {
        match *self {
            Extent::Data { guest, .. }
            | Extent::Compressed { guest, .. }
            | Extent::Zero { guest, .. } => guest,
        }
    }
    pub fn len(&self) -> u64 {
        match *self {
            Extent::Data { len, .. }
            | Extent::Compressed { len, .. }
            | Extent::Zero { len, .. } => len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct Qcow2Map {
    pub header: Header,
    pub file_len: u64,
    pub extents: Vec<Extent>,
    pub allocated_bytes: u64,
    pub compressed_bytes: u64,
}

/// Offset bits of L1 and standard L2 entries (bits 9–55).
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L1_RESERVED: u64 = 0x7f00_0000_0000_01ff;
const L2_COMPRESSED: u64 = 1 << 62;
const L2_ZERO: u64 = 1;
/// Reserved bits of a standard L2 entry (bits 1–8, 56–61); bit 0 is the zero flag in v3.
const L2_RESERVED: u64 = 0x3f00_0000_0000_01fe;
/// Largest single metadata read when coalescing adjacent L2 tables.
const MAX_COALESCED_READ: u64 = 8 << 20;

fn read(ra: &dyn ReadAt, buf: &mut [u8], off: u64, what: &str) -> Result<(), ImageError> {
    ra.read_exact_at(buf, off).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            invalid(format!(
                "{what} at {off:#x} is missing: the file is truncated"
            ))
        } else {
            ImageError::Io {
                what: format!("reading {what}"),
                source: e,
            }
        }
    })
}

/// Read and validate the header and every table.
pub fn read_map(ra: &dyn ReadAt, file_len: u64) -> Result<Qcow2Map, ImageError> {
    let mut probe = vec![0u8; file_len.min(Header::MIN_LEN as u64) as usize];
    read(ra, &mut probe, 0, "the header")?;
    // Learn the cluster size, then read the whole first cluster for the extensions.
    let cluster_bits = probe
        .get(20..24)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let first_len = if (9..=21).contains(&cluster_bits) {
        1u64 << cluster_bits
    } else {
        Header::MIN_LEN as u64
    };
    let mut first = vec![0u8; first_len.min(file_len) as usize];
    read(ra, &mut first, 0, "the header")?;
    let header = Header::parse(&first, file_len)?;
    drop(first);

    let cluster = header.cluster_size;
    let entry_len: u64 = if header.extended_l2 { 16 } else { 8 };
    let per_l2 = cluster / entry_len;
    let span = per_l2 * cluster; // guest bytes one L2 table covers
    let needed = header.virtual_size.div_ceil(span);

    let mut l1 = vec![0u8; (header.l1_entries * 8) as usize];
    read(ra, &mut l1, header.l1_offset, "the L1 table")?;
    // L2 table offset -> the L1 index using it.
    let mut tables: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for idx in 0..needed {
        let i = (idx * 8) as usize;
        let e = u64::from_be_bytes(l1[i..i + 8].try_into().unwrap_or([0; 8]));
        if e & L1_RESERVED != 0 {
            return Err(invalid(format!(
                "L1 entry {idx} has reserved bits set ({e:#018x})"
            )));
        }
        let off = e & OFFSET_MASK;
        if off == 0 {
            continue;
        }
        if !off.is_multiple_of(cluster) {
            return Err(invalid(format!(
                "L1 entry {idx}: L2 table offset {off:#x} is not cluster-aligned"
            )));
        }
        if off + cluster > file_len {
            return Err(invalid(format!(
                "L1 entry {idx}: L2 table at {off:#x} lies past the end of the file ({file_len} bytes): truncated or damaged"
            )));
        }
        let users = tables.entry(off).or_default();
        if let Some(first) = users.first() {
            // Two guest ranges cannot share one L2 table in a valid image; refusing also keeps
            // the work linear in the file's size.
            return Err(invalid(format!(
                "L1 entries {first} and {idx} point at the same L2 table {off:#x}"
            )));
        }
        users.push(idx);
    }
    drop(l1);

    // Read L2 tables in ascending file order, coalescing adjacent ones.
    let mut per_index: BTreeMap<u64, Vec<Extent>> = BTreeMap::new();
    let offsets: Vec<u64> = tables.keys().copied().collect();
    let mut i = 0;
    while i < offsets.len() {
        let start = offsets[i];
        let mut j = i + 1;
        while j < offsets.len()
            && offsets[j] == offsets[j - 1] + cluster
            && (offsets[j] + cluster - start) <= MAX_COALESCED_READ
        {
            j += 1;
        }
        let mut buf = vec![0u8; ((offsets[j - 1] + cluster) - start) as usize];
        read(ra, &mut buf, start, "L2 tables")?;
        for &off in &offsets[i..j] {
            let table = &buf[(off - start) as usize..(off - start + cluster) as usize];
            for &idx in &tables[&off] {
                per_index.insert(idx, parse_l2(&header, file_len, table, idx * span)?);
            }
        }
        i = j;
    }

    let mut map = Qcow2Map {
        header,
        file_len,
        extents: Vec::new(),
        allocated_bytes: 0,
        compressed_bytes: 0,
    };
    for idx in 0..needed {
        let base = idx * span;
        match per_index.remove(&idx) {
            Some(exts) => exts.into_iter().for_each(|e| map.push(e)),
            None => {
                let len = span.min(map.header.virtual_size - base);
                map.push(Extent::Zero { guest: base, len });
            }
        }
    }
    Ok(map)
}

impl Qcow2Map {
    fn push(&mut self, e: Extent) {
        match e {
            Extent::Data { len, .. } => self.allocated_bytes += len,
            Extent::Compressed { len, .. } => {
                self.allocated_bytes += len;
                self.compressed_bytes += len;
            }
            Extent::Zero { .. } => {}
        }
        push_merged(&mut self.extents, e);
    }
}

fn push_merged(out: &mut Vec<Extent>, e: Extent) {
    if let Some(last) = out.last_mut() {
        match (last, e) {
            (
                Extent::Data {
                    guest: g,
                    host: h,
                    len: l,
                },
                Extent::Data { guest, host, len },
            ) if *g + *l == guest && *h + *l == host => {
                *l += len;
                return;
            }
            (Extent::Zero { guest: g, len: l }, Extent::Zero { guest, len })
                if *g + *l == guest =>
            {
                *l += len;
                return;
            }
            _ => {}
        }
    }
    out.push(e);
}

/// Turn one L2 table (covering guest bytes from `base`) into extents.
fn parse_l2(h: &Header, file_len: u64, table: &[u8], base: u64) -> Result<Vec<Extent>, ImageError> {
    let cluster = h.cluster_size;
    let entry_len = if h.extended_l2 { 16 } else { 8 };
    let mut out = Vec::new();
    for (j, raw) in table.chunks_exact(entry_len).enumerate() {
        let guest = base + j as u64 * cluster;
        if guest >= h.virtual_size {
            break;
        }
        let len = cluster.min(h.virtual_size - guest);
        let e = u64::from_be_bytes(raw[0..8].try_into().unwrap_or([0; 8]));
        let bitmap = if h.extended_l2 {
            u64::from_be_bytes(raw[8..16].try_into().unwrap_or([0; 8]))
        } else {
            0
        };
        let at = || format!("L2 entry for guest offset {guest:#x}");
        if e & L2_COMPRESSED != 0 {
            if bitmap != 0 {
                return Err(invalid(format!(
                    "{}: a compressed cluster with a subcluster bitmap",
                    at()
                )));
            }
            let x = 62 - (h.cluster_bits - 8);
            let host = e & ((1u64 << x) - 1);
            let sectors = ((e >> x) & ((1u64 << (62 - x)) - 1)) + 1;
            let stored = sectors * 512 - (host & 511);
            if host >= file_len {
                return Err(invalid(format!(
                    "{}: compressed data at {host:#x} lies past the end of the file",
                    at()
                )));
            }
            let avail = stored.min(file_len - host);
            // The last sector may be cut short by the end of the file; anything more is missing.
            if stored - avail >= 512 {
                return Err(invalid(format!(
                    "{}: compressed data at {host:#x} runs past the end of the file",
                    at()
                )));
            }
            push_merged(
                &mut out,
                Extent::Compressed {
                    guest,
                    host,
                    stored: avail,
                    len,
                },
            );
            continue;
        }
        let reserved = L2_RESERVED
            | if h.version == 2 || h.extended_l2 {
                L2_ZERO
            } else {
                0
            };
        if e & reserved != 0 {
            return Err(invalid(format!("{}: reserved bits set ({e:#018x})", at())));
        }
        let host = e & OFFSET_MASK;
        if !host.is_multiple_of(cluster) {
            return Err(invalid(format!(
                "{}: data offset {host:#x} is not cluster-aligned",
                at()
            )));
        }
        let need_in_file = |off: u64, n: u64| -> Result<(), ImageError> {
            if off.checked_add(n).is_none_or(|end| end > file_len) {
                return Err(invalid(format!(
                    "{}: data at {off:#x} lies past the end of the file ({file_len} bytes): truncated or damaged",
                    at()
                )));
            }
            Ok(())
        };
        if !h.extended_l2 {
            if e & L2_ZERO != 0 || host == 0 {
                if host != 0 && e & L2_ZERO == 0 {
                    need_in_file(host, len)?;
                }
                push_merged(&mut out, Extent::Zero { guest, len });
            } else {
                need_in_file(host, len)?;
                push_merged(&mut out, Extent::Data { guest, host, len });
            }
            continue;
        }
        let (alloc, zero) = (bitmap & 0xffff_ffff, bitmap >> 32);
        if alloc & zero != 0 {
            return Err(invalid(format!(
                "{}: subclusters marked both allocated and zero",
                at()
            )));
        }
        if alloc != 0 && host == 0 {
            return Err(invalid(format!(
                "{}: allocated subclusters without a data offset",
                at()
            )));
        }
        let sub = cluster / 32;
        for k in 0..32u64 {
            let g = guest + k * sub;
            if g >= h.virtual_size {
                break;
            }
            let n = sub.min(h.virtual_size - g);
            if alloc & (1 << k) != 0 {
                need_in_file(host + k * sub, n)?;
                push_merged(
                    &mut out,
                    Extent::Data {
                        guest: g,
                        host: host + k * sub,
                        len: n,
                    },
                );
            } else {
                push_merged(&mut out, Extent::Zero { guest: g, len: n });
            }
        }
    }
    Ok(out)
}
