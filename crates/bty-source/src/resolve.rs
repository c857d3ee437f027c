//! Turning what the operator typed — a path, `-`, `file://…`, `http(s)://…`, `oras://…` — or a
//! catalog entry into an image source plus the digest its bytes must have.

use std::path::Path;
use std::sync::Arc;

use bty_image::ImageSource;
use bty_image::digest::Sha256Digest;

use crate::catalog::CatalogEntry;
use crate::error::SourceError;
use crate::folder::sidecar_sha256;
use crate::http::{HttpClient, HttpSource};
use crate::oci::OciClient;
use crate::oras_ref::OrasRef;

/// Choices that affect how a source is reached.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// `os/arch[/variant]` to pick from an OCI image index (default: this machine).
    pub platform: Option<String>,
    /// Registries that may be reached over plain HTTP (loopback always may).
    pub insecure_registries: Vec<String>,
}

pub struct Resolved {
    pub source: Arc<dyn ImageSource>,
    /// The digest the source's bytes must have (from a registry, a catalog entry or a
    /// sidecar), if known.
    pub expected_sha256: Option<Sha256Digest>,
    /// Where `expected_sha256` came from, for messages.
    pub digest_from: Option<String>,
    /// How the source was resolved (pinned digest, chosen layer), for `inspect`.
    pub notes: Vec<String>,
}

fn digest(hex: &str, what: &str) -> Result<Sha256Digest, SourceError> {
    Sha256Digest::parse(hex).map_err(|e| SourceError::Catalog(format!("{what}: {e}")))
}

/// Open a source given as text.
pub fn resolve(
    spec: &str,
    client: &HttpClient,
    opts: &ResolveOptions,
) -> Result<Resolved, SourceError> {
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let src = HttpSource::open(client.clone(), spec, Vec::new())?;
        return Ok(Resolved {
            source: Arc::new(src),
            expected_sha256: None,
            digest_from: None,
            notes: Vec::new(),
        });
    }
    if lower.starts_with("oras://") {
        let r = OrasRef::parse(spec)?;
        let oci = OciClient::new(
            client.clone(),
            opts.platform.clone(),
            opts.insecure_registries.clone(),
        );
        let blob = oci.resolve(&r)?;
        return Ok(Resolved {
            expected_sha256: Some(digest(&blob.layer_digest, spec)?),
            digest_from: Some(format!("the registry's layer digest ({})", blob.pinned)),
            notes: blob.notes(),
            source: blob.source,
        });
    }
    if let Some((scheme, _)) = spec.split_once("://")
        && !scheme.eq_ignore_ascii_case("file")
    {
        return Err(SourceError::Catalog(format!(
            "{spec}: unsupported scheme {scheme}:// (use a path, file://, http://, https:// or oras://)"
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
        notes: Vec::new(),
    })
}

/// Open a catalog entry; its `sha256` becomes the expected digest (and must agree with a
/// registry's layer digest when both exist).
pub fn resolve_entry(
    entry: &CatalogEntry,
    client: &HttpClient,
    opts: &ResolveOptions,
) -> Result<Resolved, SourceError> {
    let mut r = resolve(&entry.src, client, opts)?;
    if let Some(hex) = &entry.sha256 {
        let from_catalog = digest(hex, &entry.name)?;
        if let Some(from_source) = r.expected_sha256.filter(|d| *d != from_catalog) {
            return Err(SourceError::Catalog(format!(
                "the catalog entry {:?} says sha256 {from_catalog}, but {} says {from_source}",
                entry.name,
                r.digest_from.clone().unwrap_or_default()
            )));
        }
        r.expected_sha256 = Some(from_catalog);
        r.digest_from = Some(format!(
            "the catalog entry {:?} ({})",
            entry.name, entry.origin
        ));
    }
    Ok(r)
}
