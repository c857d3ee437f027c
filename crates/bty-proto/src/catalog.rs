//! Catalog API bodies: adding an entry (upstream's `image_url` / `sha_url` / `ref`, plus our
//! optional `name`, `sha256`, `description`, `arch`), the stored entry, `/images` rows, import
//! results, and which entries can be flashed at all.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntryAdd {
    pub image_url: String,
    #[serde(default)]
    pub sha_url: Option<String>,
    #[serde(default, rename = "ref")]
    pub image_ref: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Ours: the image's CPU architecture, when its name does not say.
    #[serde(default)]
    pub arch: Option<String>,
    /// Ours: `false` keeps bty-web's image cache out of this entry's way (an origin already on
    /// the LAN); default true.
    #[serde(default)]
    pub cache: Option<bool>,
}

/// A catalog entry as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub bty_image_ref: String,
    pub src: String,
    pub resolved_src: Option<String>,
    pub disk_image_sha: Option<String>,
    pub name: String,
    pub sha_url: Option<String>,
    pub format: Option<String>,
    pub size_bytes: Option<u64>,
    pub description: Option<String>,
    pub added_at: String,
    /// The CPU architecture the image is for: the catalog's `arch` (upstream 0.53), else a
    /// guess from the file name; `None` when neither says.
    #[serde(default)]
    pub arch: Option<String>,
    /// Whether bty-web's image cache serves this entry (the catalog's `cache`, default true).
    #[serde(default = "yes")]
    pub cache: bool,
}

fn yes() -> bool {
    true
}

impl CatalogEntry {
    /// Why this entry cannot be written to a disk, if it cannot (see [`unflashable`]).
    pub fn unflashable(&self) -> Option<String> {
        unflashable(self.format.as_deref())
    }
}

/// Why an entry of this `format` cannot be written to a disk, if it cannot: nosi publishes a
/// `format = "tar.gz"` netboot bundle (kernel, initrd) beside each disk image.
pub fn unflashable(format: Option<&str>) -> Option<String> {
    let f = format?.trim().to_ascii_lowercase();
    let archive = f == "tar"
        || f.starts_with("tar.")
        || f == "tgz"
        || f == "zip"
        || f.ends_with("→ tar")
        || f.contains("netboot-bundle");
    archive.then(|| {
        format!(
            "format {f:?} is an archive (a netboot bundle), not a disk image: it cannot be flashed"
        )
    })
}

/// A row of `GET /images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    pub name: String,
    pub format: String,
    pub size_bytes: u64,
    pub url: String,
    #[serde(rename = "ref")]
    pub image_ref: String,
    pub sha_short: Option<String>,
    /// Whether bty-web's image cache holds the whole image.
    pub cached: bool,
    #[serde(default)]
    pub arch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportError {
    pub name: String,
    pub error: String,
}

/// The answer of `POST /catalog/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    pub source: String,
    pub imported: u64,
    pub skipped: u64,
    pub errors: Vec<ImportError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_not_flashable() {
        for f in ["tar.gz", "TAR.GZ", "tar", "tar.zst", "tgz", "gzip → tar"] {
            assert!(unflashable(Some(f)).is_some(), "{f}");
        }
        for f in ["img.zst", "raw", "qcow2", "img.gz", "zstd → raw", "gzip"] {
            assert!(unflashable(Some(f)).is_none(), "{f}");
        }
        assert!(unflashable(None).is_none());
    }
}
