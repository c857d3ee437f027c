//! Catalog API bodies: adding an entry (upstream's `image_url` / `sha_url` / `ref`, plus our
//! optional `name`, `sha256`, `description`), the stored entry, `/images` rows and import
//! results.

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
    pub cached: bool,
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
