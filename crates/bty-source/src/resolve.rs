//! Turning what the operator typed — a path, `-`, `file://…`, `http(s)://…` — or a catalog
//! entry into an image source plus the digest it must have.

use std::path::Path;
use std::sync::Arc;

use bty_image::ImageSource;
use bty_image::digest::Sha256Digest;

use crate::catalog::CatalogEntry;
use crate::error::SourceError;
use crate::folder::sidecar_sha256;
use crate::http::{HttpClient, HttpSource};

pub struct Resolved {
    pub source: Arc<dyn ImageSource>,
    /// The digest the source's bytes must have (from a catalog entry or a sidecar), if known.
    pub expected_sha256: Option<Sha256Digest>,
    /// Where `expected_sha256` came from, for messages.
    pub digest_from: Option<String>,
}

fn digest(hex: &str, what: &str) -> Result<Sha256Digest, SourceError> {
    Sha256Digest::parse(hex).map_err(|e| SourceError::Catalog(format!("{what}: {e}")))
}

/// Open a source given as text.
pub fn resolve(spec: &str, client: &HttpClient) -> Result<Resolved, SourceError> {
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let src = HttpSource::open(client.clone(), spec, Vec::new())?;
        return Ok(Resolved {
            source: Arc::new(src),
            expected_sha256: None,
            digest_from: None,
        });
    }
    if lower.starts_with("oras://") {
        return Err(SourceError::Catalog(format!(
            "{spec}: oras:// registries are not supported yet; pull the blob with oras and flash the file"
        )));
    }
    if let Some((scheme, _)) = spec.split_once("://")
        && !scheme.eq_ignore_ascii_case("file")
    {
        return Err(SourceError::Catalog(format!(
            "{spec}: unsupported scheme {scheme}:// (use a path, file://, http:// or https://)"
        )));
    }
    let path = spec.strip_prefix("file://").unwrap_or(spec);
    let source: Arc<dyn ImageSource> = Arc::from(bty_image::open_local(Path::new(path))?);
    let (expected_sha256, digest_from) = match sidecar_sha256(Path::new(path)) {
        Some(hex) if path != "-" => (Some(digest(&hex, path)?), Some(format!("{path}.sha256"))),
        _ => (None, None),
    };
    Ok(Resolved {
        source,
        expected_sha256,
        digest_from,
    })
}

/// Open a catalog entry; its `sha256` becomes the expected digest.
pub fn resolve_entry(entry: &CatalogEntry, client: &HttpClient) -> Result<Resolved, SourceError> {
    let mut r = resolve(&entry.src, client)?;
    if let Some(hex) = &entry.sha256 {
        r.expected_sha256 = Some(digest(hex, &entry.name)?);
        r.digest_from = Some(format!(
            "the catalog entry {:?} ({})",
            entry.name, entry.origin
        ));
    }
    Ok(r)
}
