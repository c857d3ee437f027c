//! Catalog operations both faces call (the JSON API and the UI): add an entry by URL (http(s)
//! with an optional sha256 or upstream's `sha_url`; `oras://` resolved through bty-source with
//! the layer digest frozen), delete by `src`, store an imported catalog — each audited.

use axum::http::StatusCode;
use bty_proto::catalog::{CatalogEntry, CatalogEntryAdd, ImportError, ImportResult};
use bty_source::canonical::image_ref;
use bty_source::resolve::{ResolveOptions, resolve};

use crate::db::catalog;
use crate::db::events::{self, NewEvent};
use crate::error::ApiError;
use crate::state::AppState;

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The format a file name suggests.
fn format_of(name: &str) -> Option<String> {
    let n = name.to_ascii_lowercase();
    [
        "img.zst", "img.xz", "img.gz", "img.bz2", "qcow2", "raw.zst", "raw.xz", "raw.gz", "iso",
        "img", "raw",
    ]
    .into_iter()
    .find(|ext| n.ends_with(&format!(".{ext}")))
    .map(str::to_string)
}

fn basename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    after_host.rsplit('/').next().unwrap_or("").to_string()
}

/// The sha256 for `file` in a sha256sum-style document.
fn sha_from_manifest(text: &str, file: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for l in &lines {
        let mut parts = l.split_whitespace();
        if let (Some(h), Some(name)) = (parts.next(), parts.next())
            && is_hex64(h)
            && name.trim_start_matches('*').rsplit('/').next() == Some(file)
        {
            return Some(h.to_ascii_lowercase());
        }
    }
    match lines.as_slice() {
        [one] => one
            .split_whitespace()
            .next()
            .filter(|h| is_hex64(h))
            .map(str::to_ascii_lowercase),
        _ => None,
    }
}

/// Build the entry (network work: run on a blocking thread).
fn build_entry(add: &CatalogEntryAdd) -> Result<CatalogEntry, ApiError> {
    let url = add.image_url.trim();
    let lower = url.to_ascii_lowercase();
    let oras = lower.starts_with("oras://");
    if !bty_source::catalog::fetchable(url) {
        return Err(ApiError::invalid(
            "image_url",
            "must be an http(s):// or oras:// URL without spaces or control characters",
        ));
    }
    if let Some(u) = &add.sha_url
        && (!bty_source::catalog::fetchable(u) || u.to_ascii_lowercase().starts_with("oras://"))
    {
        return Err(ApiError::invalid(
            "sha_url",
            "must be an http(s):// URL without spaces or control characters",
        ));
    }
    let r = image_ref(url).map_err(|e| ApiError::invalid("image_url", e.to_string()))?;
    if let Some(given) = &add.image_ref
        && given != &r
    {
        return Err(ApiError::invalid(
            "ref",
            format!("ref mismatch: {url} has ref {r}"),
        ));
    }
    if let Some(h) = &add.sha256
        && !is_hex64(h.trim_start_matches("sha256:"))
    {
        return Err(ApiError::invalid(
            "sha256",
            "64 hex characters (optionally sha256:)",
        ));
    }
    let client = crate::fetch::operator();
    let mut entry = CatalogEntry {
        bty_image_ref: r,
        src: url.to_string(),
        resolved_src: Some(url.to_string()),
        disk_image_sha: add
            .sha256
            .as_ref()
            .map(|h| h.trim_start_matches("sha256:").to_ascii_lowercase()),
        name: add.name.clone().unwrap_or_default(),
        sha_url: add.sha_url.clone(),
        format: None,
        size_bytes: None,
        description: add.description.clone(),
        added_at: crate::db::now(),
        arch: None,
        cache: add.cache.unwrap_or(true),
    };
    if oras {
        let resolved = resolve(url, &client, &ResolveOptions::default())
            .map_err(|e| ApiError::bad_request(format!("oras resolve failed: {e}")))?;
        let digest = resolved.expected_sha256.map(|d| d.hex());
        if let (Some(given), Some(got)) = (&entry.disk_image_sha, &digest)
            && given != got
        {
            return Err(ApiError::bad_request(format!(
                "sha256 {given} differs from the registry's layer digest {got}"
            )));
        }
        entry.disk_image_sha = digest.or(entry.disk_image_sha);
        entry.size_bytes = resolved.source.size();
        entry.resolved_src = Some(resolved.source.describe());
        if entry.name.is_empty() {
            entry.name = url.rsplit('/').next().unwrap_or(url).to_string();
        }
    } else {
        let file = basename(url);
        if file.is_empty() && entry.name.is_empty() {
            return Err(ApiError::invalid(
                "image_url",
                "the URL names no file; give a name",
            ));
        }
        if entry.name.is_empty() {
            entry.name = file.clone();
        }
        if let Some(sha_url) = &add.sha_url {
            let (_, body) = client
                .get_small(sha_url, &[], 1 << 20)
                .map_err(|e| ApiError::bad_request(format!("sha resolve failed: {e}")))?;
            let text = String::from_utf8_lossy(&body);
            let found = sha_from_manifest(&text, &file).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "sha resolve failed: no sha256 for {file} in {sha_url}"
                ))
            })?;
            if let Some(given) = &entry.disk_image_sha
                && *given != found
            {
                return Err(ApiError::bad_request(format!(
                    "sha256 {given} differs from {found} in {sha_url}"
                )));
            }
            entry.disk_image_sha = Some(found);
        }
        entry.format = format_of(&file);
    }
    if entry.format.is_none() {
        entry.format = format_of(&entry.name);
    }
    entry.arch = match &add.arch {
        Some(a) if !bty_proto::arch::is_valid(a) => {
            return Err(ApiError::invalid(
                "arch",
                "1-32 letters, digits or underscores",
            ));
        }
        Some(a) => Some(bty_proto::arch::canonical(a).map_or_else(|| a.clone(), str::to_string)),
        None => bty_source::catalog::guess_arch(&entry.name, url),
    };
    Ok(entry)
}

fn operator_event(
    kind: &'static str,
    id: Option<String>,
    ip: String,
    summary: String,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        kind,
        subject_kind: Some("catalog"),
        subject_id: id,
        actor: Some("operator"),
        source_ip: Some(ip),
        summary,
        details: Some(details),
    }
}

/// Resolve and store one catalog entry (API and UI); 400 when the origin or checksum cannot be
/// resolved (audited as `catalog.entry.add.failed`), 409 when the src is already listed.
pub async fn add_entry(
    s: &AppState,
    add: CatalogEntryAdd,
    ip: String,
) -> Result<CatalogEntry, ApiError> {
    let a = add.clone();
    let built = tokio::task::spawn_blocking(move || build_entry(&a))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "resolver failed"))?;
    let entry = match built {
        Ok(e) => e,
        Err(ApiError::Status(status, detail)) if status == StatusCode::BAD_REQUEST => {
            let ev = operator_event(
                "catalog.entry.add.failed",
                None,
                ip,
                format!("adding {} failed: {detail}", add.image_url),
                serde_json::json!({ "src": add.image_url, "error": detail }),
            );
            let _ = s.db.write(move |c| events::record(c, &ev)).await;
            return Err(ApiError::Status(status, detail));
        }
        Err(e) => return Err(e),
    };
    let e = entry.clone();
    let inserted = s
        .db
        .write(move |c| {
            let ok = catalog::insert(c, &e)?;
            if ok {
                events::record(
                    c,
                    &operator_event(
                        "catalog.entry.added",
                        Some(e.bty_image_ref.clone()),
                        ip,
                        format!("catalog entry {} added", e.name),
                        serde_json::json!({
                            "name": e.name, "bty_image_ref": e.bty_image_ref,
                            "disk_image_sha": e.disk_image_sha, "format": e.format, "size_bytes": e.size_bytes,
                        }),
                    ),
                )?;
            }
            Ok(ok)
        })
        .await?;
    if !inserted {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{} is already in the catalog", entry.src),
        ));
    }
    Ok(entry)
}

/// Delete the entry with this src (API and UI), naming the machines still bound to it in the
/// audit event; the deleted entry, if there was one.
pub async fn delete_entry(
    s: &AppState,
    src: String,
    ip: String,
) -> Result<Option<CatalogEntry>, ApiError> {
    let gone = s
        .db
        .write(move |c| {
            let gone = catalog::delete_by_src(c, &src)?;
            if let Some(e) = &gone {
                let bound = catalog::machines_using(c, &e.bty_image_ref)?;
                events::record(
                    c,
                    &operator_event(
                        "catalog.entry.deleted",
                        Some(e.bty_image_ref.clone()),
                        ip,
                        format!("catalog entry {} deleted", e.name),
                        serde_json::json!({ "src": e.src, "name": e.name, "machines_bound": bound }),
                    ),
                )?;
            }
            Ok(gone)
        })
        .await?;
    Ok(gone)
}

/// Store a loaded catalog's entries (entries already listed are skipped) and audit the import.
pub async fn store_import(
    s: &AppState,
    source: String,
    loaded: bty_source::catalog::Catalog,
    ip: String,
) -> Result<ImportResult, ApiError> {
    // The catalog parser has refused file:// sources and invalid entries already.
    let errors: Vec<ImportError> = Vec::new();
    let mut rows = Vec::new();
    for e in loaded.entries {
        rows.push(CatalogEntry {
            bty_image_ref: e.image_ref,
            resolved_src: Some(e.src.clone()),
            src: e.src,
            disk_image_sha: e.sha256,
            name: e.name,
            sha_url: None,
            format: e.format,
            size_bytes: e.size_bytes,
            description: e.description,
            added_at: crate::db::now(),
            arch: e.arch,
            cache: e.cache,
        });
    }
    let src = source.clone();
    let errs = errors.clone();
    let (imported, skipped) = s
        .db
        .write(move |c| {
            let (mut imported, mut skipped) = (0u64, 0u64);
            for r in &rows {
                if catalog::insert(c, r)? { imported += 1 } else { skipped += 1 }
            }
            events::record(
                c,
                &operator_event(
                    "catalog.entries.imported",
                    None,
                    ip,
                    format!("imported {imported} entries from {src} ({skipped} already present)"),
                    serde_json::json!({ "source": src, "imported": imported, "skipped": skipped, "errors": errs }),
                ),
            )?;
            Ok((imported, skipped))
        })
        .await?;
    Ok(ImportResult {
        source,
        imported,
        skipped,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_manifests() {
        let h = "ab".repeat(32);
        let doc = format!("{} other.img\n{h}  *disk.img.zst\n", "cd".repeat(32));
        assert_eq!(sha_from_manifest(&doc, "disk.img.zst"), Some(h.clone()));
        assert_eq!(sha_from_manifest(&h, "x"), Some(h.clone()));
        assert_eq!(sha_from_manifest(&doc, "missing"), None);
        assert_eq!(basename("https://h/a/b/disk.img.zst?x=1"), "disk.img.zst");
        assert_eq!(basename("https://h/"), "");
        assert_eq!(format_of("disk.IMG.zst").as_deref(), Some("img.zst"));
    }
}
