//! The qcow2 header and its extensions: parsed, range-checked, and refused with a specific
//! reason for everything this reader does not handle.

use crate::error::ImageError;

pub const MAGIC: &[u8; 4] = b"QFI\xfb";

/// Incompatible feature bits.
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;
const AUTOCLEAR_BITMAPS: u64 = 1 << 0;

/// Header extension types.
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_ENCRYPTION: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Largest L1 table accepted (qemu's own limit).
pub const MAX_L1_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterCompression {
    Deflate,
    Zstd,
}

#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub cluster_size: u64,
    pub virtual_size: u64,
    pub l1_entries: u64,
    pub l1_offset: u64,
    pub snapshots: u32,
    pub compression: ClusterCompression,
    pub extended_l2: bool,
    pub dirty: bool,
    pub lazy_refcounts: bool,
    pub bitmaps: bool,
    /// Length of the header proper (extensions follow it).
    pub header_len: u64,
}

pub fn invalid(detail: impl Into<String>) -> ImageError {
    ImageError::Qcow2Invalid {
        detail: detail.into(),
    }
}

fn refuse(what: &'static str, advice: &'static str) -> ImageError {
    ImageError::Unsupported { what, advice }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

impl Header {
    /// Bytes of the first cluster needed to parse the header and its extensions: read this many
    /// (or the whole file if shorter) after learning the cluster size from the first 104 bytes.
    pub const MIN_LEN: usize = 104;

    /// Parse from the start of the file (`first` holds at least the first cluster, or the whole
    /// file when shorter) of a file of `file_len` bytes.
    pub fn parse(first: &[u8], file_len: u64) -> Result<Header, ImageError> {
        if first.len() < 72 || !first.starts_with(MAGIC) {
            return Err(invalid(format!(
                "the file is truncated: {file_len} bytes cannot hold a qcow2 header"
            )));
        }
        let version = be32(first, 4);
        if version != 2 && version != 3 {
            return Err(invalid(format!(
                "unknown version {version} (versions 2 and 3 exist)"
            )));
        }
        let backing_offset = be64(first, 8);
        let backing_len = be32(first, 16);
        let cluster_bits = be32(first, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid(format!(
                "cluster_bits {cluster_bits} is out of range (9 to 21)"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        let virtual_size = be64(first, 24);
        let crypt = be32(first, 32);
        let l1_entries = u64::from(be32(first, 36));
        let l1_offset = be64(first, 40);
        let snapshots = be32(first, 60);

        let (mut incompat, mut compat, mut autoclear, mut header_len, mut compression_byte) =
            (0, 0, 0, 72u64, 0u8);
        if version == 3 {
            if first.len() < Self::MIN_LEN {
                return Err(invalid("the file is truncated inside the version 3 header"));
            }
            incompat = be64(first, 72);
            compat = be64(first, 80);
            autoclear = be64(first, 88);
            let refcount_order = be32(first, 96);
            header_len = u64::from(be32(first, 100));
            if refcount_order > 6 {
                return Err(invalid(format!(
                    "refcount_order {refcount_order} is out of range (0 to 6)"
                )));
            }
            if header_len < 104 || header_len % 8 != 0 || header_len > cluster_size {
                return Err(invalid(format!("header_length {header_len} is invalid")));
            }
            if header_len > 104 {
                compression_byte = *first.get(104).ok_or_else(|| invalid("truncated header"))?;
            }
        }

        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err(refuse(
                "a qcow2 image marked corrupt",
                "qemu found its metadata inconsistent; check and repair it first (qemu-img check -r all IMAGE)",
            ));
        }
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(ImageError::Qcow2Invalid {
                detail: format!(
                    "unknown incompatible feature bits {unknown:#x}: the image needs a reader that knows them; convert it with a current qemu-img"
                ),
            });
        }
        if crypt != 0 {
            return Err(refuse(
                "an encrypted qcow2 image",
                "decrypt it first (qemu-img convert --object secret,... -O qcow2 IMAGE PLAIN.qcow2)",
            ));
        }
        if backing_offset != 0 || backing_len != 0 {
            return Err(refuse(
                "a qcow2 image with a backing file",
                "flatten it first so it stands alone: qemu-img convert -O qcow2 OVERLAY.qcow2 FLAT.qcow2",
            ));
        }
        if incompat & INCOMPAT_DATA_FILE != 0 {
            return Err(refuse(
                "a qcow2 image with an external data file",
                "convert it to a self-contained image: qemu-img convert -O qcow2 IMAGE SELF-CONTAINED.qcow2",
            ));
        }
        let compression = match (incompat & INCOMPAT_COMPRESSION != 0, compression_byte) {
            (false, 0) => ClusterCompression::Deflate,
            (true, 1) => ClusterCompression::Zstd,
            (_, t) => return Err(invalid(format!("unknown compression type {t}"))),
        };
        let extended_l2 = incompat & INCOMPAT_EXTL2 != 0;
        if extended_l2 && cluster_bits < 14 {
            return Err(invalid(
                "extended L2 entries need clusters of at least 16 KiB",
            ));
        }
        if virtual_size == 0 || virtual_size > (1u64 << 61) {
            return Err(invalid(format!(
                "virtual size {virtual_size} is out of range"
            )));
        }
        let entry = if extended_l2 { 16 } else { 8 };
        let per_l2 = cluster_size / entry;
        let needed = virtual_size.div_ceil(cluster_size).div_ceil(per_l2);
        if l1_entries < needed {
            return Err(invalid(format!(
                "the L1 table has {l1_entries} entries; the virtual size needs {needed}"
            )));
        }
        if l1_entries * 8 > MAX_L1_BYTES {
            return Err(invalid(format!(
                "the L1 table ({l1_entries} entries) is larger than any valid image's"
            )));
        }
        if !l1_offset.is_multiple_of(cluster_size) {
            return Err(invalid(format!(
                "the L1 table offset {l1_offset:#x} is not cluster-aligned"
            )));
        }
        if l1_offset
            .checked_add(l1_entries * 8)
            .is_none_or(|end| end > file_len)
        {
            return Err(invalid(format!(
                "the L1 table at {l1_offset:#x} ends past the end of the file ({file_len} bytes): the file is truncated or damaged"
            )));
        }
        let header = Header {
            version,
            cluster_bits,
            cluster_size,
            virtual_size,
            l1_entries,
            l1_offset,
            snapshots,
            compression,
            extended_l2,
            dirty: incompat & INCOMPAT_DIRTY != 0,
            lazy_refcounts: compat & COMPAT_LAZY_REFCOUNTS != 0,
            bitmaps: autoclear & AUTOCLEAR_BITMAPS != 0,
            header_len,
        };
        header.check_extensions(first)?;
        Ok(header)
    }

    /// Walk the header extensions; refuse the ones that change how data must be read.
    fn check_extensions(&self, first: &[u8]) -> Result<(), ImageError> {
        let mut at = self.header_len as usize;
        loop {
            let Some(h) = first.get(at..at + 8) else {
                // Extensions run to the end of the first cluster at most; a short file ends them.
                return Ok(());
            };
            let (kind, len) = (be32(h, 0), be32(h, 4) as usize);
            match kind {
                EXT_END => return Ok(()),
                EXT_ENCRYPTION => {
                    return Err(refuse(
                        "an encrypted qcow2 image",
                        "decrypt it first with qemu-img convert",
                    ));
                }
                EXT_DATA_FILE => {
                    return Err(refuse(
                        "a qcow2 image with an external data file",
                        "convert it to a self-contained image with qemu-img convert",
                    ));
                }
                EXT_BACKING_FORMAT | EXT_FEATURE_NAMES | EXT_BITMAPS => {}
                _ => {}
            }
            at = at.saturating_add(8).saturating_add(len.div_ceil(8) * 8);
            if at as u64 > self.cluster_size {
                return Err(invalid("header extensions run past the first cluster"));
            }
        }
    }

    /// Feature names for display.
    pub fn features(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.lazy_refcounts {
            f.push("lazy_refcounts");
        }
        if self.dirty {
            f.push("dirty");
        }
        if self.extended_l2 {
            f.push("extended_l2");
        }
        if self.compression == ClusterCompression::Zstd {
            f.push("compression_type");
        }
        if self.bitmaps {
            f.push("bitmaps");
        }
        f
    }
}
