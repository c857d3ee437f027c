//! Recognising what an image is from its first bytes. Content decides; a file name is never
//! consulted here. Every known container that must not be written as-is (archives, other VM
//! disk formats, qcow2 inside a compressor) is recognised so it can be refused with advice.

use serde::Serialize;

/// A compression layer the engine decodes natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// The command that decompresses this layer, for advice in error messages.
    pub fn decompress_command(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip -d",
            Compression::Xz => "xz -d",
            Compression::Zstd => "zstd -d",
            Compression::Bzip2 => "bzip2 -d",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One layer of an image as reported by inspect, outermost first: compressions, then the
/// payload (`raw` or `qcow2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Gzip,
    Xz,
    Zstd,
    Bzip2,
    Qcow2,
    Raw,
}

impl From<Compression> for Layer {
    fn from(c: Compression) -> Layer {
        match c {
            Compression::Gzip => Layer::Gzip,
            Compression::Xz => Layer::Xz,
            Compression::Zstd => Layer::Zstd,
            Compression::Bzip2 => Layer::Bzip2,
        }
    }
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Gzip => "gzip",
            Layer::Xz => "xz",
            Layer::Zstd => "zstd",
            Layer::Bzip2 => "bzip2",
            Layer::Qcow2 => "qcow2",
            Layer::Raw => "raw",
        }
    }
}

/// What the start of a raw image holds, for display only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionTable {
    Gpt,
    Mbr,
    /// An ISO 9660 image that also carries a partition table, made to be written to a disk.
    IsoHybrid,
}

/// What a prefix of bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Compressed(Compression),
    Qcow2,
    Tar,
    Archive(&'static str),
    Unsupported {
        what: &'static str,
        advice: &'static str,
    },
    /// An ISO 9660 image without a partition table: it boots from optical media only.
    PlainIso,
    Raw(Option<PartitionTable>),
}

/// How many leading bytes [`sniff`] wants to see (ISO 9660's descriptor sits at 32 KiB).
pub const SNIFF_LEN: usize = 64 * 1024;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
pub(crate) const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// True for the little-endian magic of a zstd skippable frame (0x184D2A50..=0x184D2A5F).
pub(crate) fn is_zstd_skippable(head: &[u8]) -> bool {
    head.len() >= 4 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50
}

pub(crate) fn is_zstd_frame(head: &[u8]) -> bool {
    head.starts_with(&ZSTD_MAGIC)
}

pub(crate) fn is_gzip(head: &[u8]) -> bool {
    head.len() >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 0x08
}

pub(crate) fn is_bzip2(head: &[u8]) -> bool {
    head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3])
}

/// Classify a prefix of an image (ideally [`SNIFF_LEN`] bytes, fewer if the image is shorter).
pub fn sniff(head: &[u8]) -> Sniffed {
    if is_gzip(head) {
        return Sniffed::Compressed(Compression::Gzip);
    }
    if head.starts_with(&XZ_MAGIC) {
        return Sniffed::Compressed(Compression::Xz);
    }
    if is_zstd_frame(head) || is_zstd_skippable(head) {
        return Sniffed::Compressed(Compression::Zstd);
    }
    if is_bzip2(head) {
        return Sniffed::Compressed(Compression::Bzip2);
    }
    if head.starts_with(b"QFI\xfb") {
        return Sniffed::Qcow2;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Sniffed::Tar;
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Sniffed::Archive("zip");
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Sniffed::Archive("7-Zip");
    }
    if head.starts_with(b"Rar!\x1a\x07") {
        return Sniffed::Archive("RAR");
    }
    if let Some(u) = other_disk_format(head) {
        return u;
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Sniffed::Unsupported {
            what: "lz4 compression",
            advice: "recompress the image with zstd (lz4 -dc IMAGE.lz4 | zstd -o IMAGE.zst)",
        };
    }
    if head.starts_with(b"LZIP") {
        return Sniffed::Unsupported {
            what: "lzip compression",
            advice: "recompress the image with zstd or xz",
        };
    }
    let table = partition_table(head);
    let iso = head.len() >= 0x8006 && &head[0x8001..0x8006] == b"CD001";
    match (iso, table) {
        (true, Some(_)) => Sniffed::Raw(Some(PartitionTable::IsoHybrid)),
        (true, None) => Sniffed::PlainIso,
        (false, t) => Sniffed::Raw(t),
    }
}

fn other_disk_format(head: &[u8]) -> Option<Sniffed> {
    let convert = "convert it first: qemu-img convert -O raw IMAGE IMAGE.img (or -O qcow2)";
    if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        return Some(Sniffed::Unsupported {
            what: "VMDK",
            advice: convert,
        });
    }
    if head.starts_with(b"vhdxfile") {
        return Some(Sniffed::Unsupported {
            what: "VHDX",
            advice: convert,
        });
    }
    if head.starts_with(b"conectix") {
        return Some(Sniffed::Unsupported {
            what: "dynamic VHD",
            advice: convert,
        });
    }
    if head.len() >= 0x44 && head[0x40..0x44] == [0x7f, 0x10, 0xda, 0xbe] {
        return Some(Sniffed::Unsupported {
            what: "VirtualBox VDI",
            advice: convert,
        });
    }
    None
}

/// GPT (at 512 or 4096 bytes) or an MBR boot signature.
fn partition_table(head: &[u8]) -> Option<PartitionTable> {
    let gpt_at = |off: usize| head.len() >= off + 8 && &head[off..off + 8] == b"EFI PART";
    if gpt_at(512) || gpt_at(4096) {
        return Some(PartitionTable::Gpt);
    }
    if head.len() >= 512 && head[510] == 0x55 && head[511] == 0xaa {
        return Some(PartitionTable::Mbr);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_at(len: usize, at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[at..at + bytes.len()].copy_from_slice(bytes);
        v
    }

    #[test]
    fn recognises_compressors_by_magic() {
        assert_eq!(
            sniff(&[0x1f, 0x8b, 8, 0]),
            Sniffed::Compressed(Compression::Gzip)
        );
        assert_eq!(sniff(&XZ_MAGIC), Sniffed::Compressed(Compression::Xz));
        assert_eq!(sniff(&ZSTD_MAGIC), Sniffed::Compressed(Compression::Zstd));
        assert_eq!(
            sniff(&[0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]),
            Sniffed::Compressed(Compression::Zstd)
        );
        assert_eq!(sniff(b"BZh9"), Sniffed::Compressed(Compression::Bzip2));
        assert_eq!(sniff(b"BZh0"), Sniffed::Raw(None));
    }

    #[test]
    fn recognises_containers_to_refuse() {
        assert_eq!(sniff(b"QFI\xfb\0\0\0\x03"), Sniffed::Qcow2);
        assert_eq!(sniff(&with_at(1024, 257, b"ustar\0")), Sniffed::Tar);
        assert_eq!(sniff(b"PK\x03\x04...."), Sniffed::Archive("zip"));
        assert!(matches!(
            sniff(b"KDMV...."),
            Sniffed::Unsupported { what: "VMDK", .. }
        ));
        assert!(matches!(
            sniff(b"vhdxfile"),
            Sniffed::Unsupported { what: "VHDX", .. }
        ));
        assert!(matches!(
            sniff(&[4, 0x22, 0x4d, 0x18]),
            Sniffed::Unsupported { .. }
        ));
    }

    #[test]
    fn raw_images_report_their_partition_table() {
        assert_eq!(
            sniff(&with_at(4096, 510, &[0x55, 0xaa])),
            Sniffed::Raw(Some(PartitionTable::Mbr))
        );
        assert_eq!(
            sniff(&with_at(8192, 512, b"EFI PART")),
            Sniffed::Raw(Some(PartitionTable::Gpt))
        );
        assert_eq!(sniff(&[0u8; 4096]), Sniffed::Raw(None));
        assert_eq!(sniff(b"hello world"), Sniffed::Raw(None));
    }

    #[test]
    fn iso_images_are_told_apart_by_partition_table() {
        let plain = with_at(SNIFF_LEN, 0x8001, b"CD001");
        assert_eq!(sniff(&plain), Sniffed::PlainIso);
        let mut hybrid = plain.clone();
        hybrid[510] = 0x55;
        hybrid[511] = 0xaa;
        assert_eq!(
            sniff(&hybrid),
            Sniffed::Raw(Some(PartitionTable::IsoHybrid))
        );
    }
}
