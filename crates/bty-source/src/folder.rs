//! The local image folder (`BTY_IMAGE_ROOT`, default `/var/lib/bty/images`, e.g. a stick's
//! `BTY_IMAGES` partition): files recognised as images by their content, each with the digest
//! from a `NAME.sha256` sidecar when there is one, plus the entries of an optional
//! `catalog.toml` in it. Merged with a remote catalog by [`merge`], de-duplicated by the
//! canonical form of `src`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bty_image::{FileSource, inspect};

use crate::canonical::image_ref;
use crate::catalog::{self, Catalog, CatalogEntry};
use crate::error::SourceError;
use crate::http::HttpClient;

pub const DEFAULT_IMAGE_ROOT: &str = "/var/lib/bty/images";

/// The image root from `BTY_IMAGE_ROOT`, or the default.
pub fn image_root() -> PathBuf {
    std::env::var_os("BTY_IMAGE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_ROOT))
}

/// Read `NAME.sha256` beside an image: a bare digest or `sha256sum` output.
pub fn sidecar_sha256(image: &Path) -> Option<String> {
    let mut p = image.as_os_str().to_owned();
    p.push(".sha256");
    let text = std::fs::read_to_string(PathBuf::from(p)).ok()?;
    let first = text.split_whitespace().next()?.to_ascii_lowercase();
    (first.len() == 64 && first.chars().all(|c| c.is_ascii_hexdigit())).then_some(first)
}

/// Images in `root` (not recursive), sorted by name; plus `root/catalog.toml` if present.
/// Files that are not images (by content) are skipped; a missing root is an empty list.
pub fn scan(root: &Path, client: &HttpClient) -> Result<Catalog, SourceError> {
    let origin = format!("image folder {}", root.display());
    let mut entries = Vec::new();
    let mut names: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => {
            return Ok(Catalog {
                source: origin,
                entries,
            });
        }
    };
    names.sort();
    for path in names {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        // Hidden files (incl. macOS `._*` AppleDouble files on exFAT), sidecars, the catalog.
        if name.starts_with('.') || name.ends_with(".sha256") || name == "catalog.toml" {
            continue;
        }
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let info = match FileSource::open(&path).and_then(|s| inspect(&s)) {
            Ok(i) => i,
            Err(e) => {
                tracing::info!("skipping {}: {e}", path.display());
                continue;
            }
        };
        let abs = std::fs::canonicalize(&path).unwrap_or(path.clone());
        let src = format!("file://{}", abs.display());
        let arch = crate::catalog::guess_arch(&name, &src);
        entries.push(CatalogEntry {
            name,
            image_ref: image_ref(&src)?,
            src,
            sha256: sidecar_sha256(&path),
            format: Some(info.layer_chain()),
            size_bytes: info.output_size,
            description: None,
            arch,
            cache: true,
            origin: origin.clone(),
        });
    }
    let local = root.join("catalog.toml");
    if local.is_file() {
        let c = catalog::load(&local.display().to_string(), client)?;
        entries.extend(c.entries);
    }
    Ok(Catalog {
        source: origin,
        entries,
    })
}

/// Local entries first, then the others; entries whose canonical `src` was already listed are
/// dropped (the first wins), as are later entries reusing a name.
pub fn merge(parts: Vec<Catalog>) -> Vec<CatalogEntry> {
    let mut seen_refs = HashSet::new();
    let mut seen_names = HashSet::new();
    let mut out = Vec::new();
    for c in parts {
        for e in c.entries {
            if seen_refs.insert(e.image_ref.clone()) && seen_names.insert(e.name.clone()) {
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_images_by_content_with_sidecars_and_a_local_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("disk.img"), vec![1u8; 4096]).unwrap();
        std::fs::write(
            d.join("disk.img.sha256"),
            format!("{}  disk.img\n", "C".repeat(64)),
        )
        .unwrap();
        std::fs::write(d.join("._disk.img"), vec![1u8; 4096]).unwrap();
        std::fs::write(d.join("notes.txt"), b"").unwrap(); // empty: not an image
        std::fs::write(
            d.join("catalog.toml"),
            "version = 1\n[[images]]\nname = 'remote'\nsrc = 'https://example.com/r.img'\n",
        )
        .unwrap();
        let c = scan(d, &HttpClient::default()).unwrap();
        let names: Vec<&str> = c.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["disk.img", "remote"]);
        assert_eq!(c.entries[0].sha256.as_deref(), Some(&"c".repeat(64)[..]));
        assert_eq!(c.entries[0].size_bytes, Some(4096));
        assert!(
            scan(&d.join("missing"), &HttpClient::default())
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn merging_drops_duplicate_srcs_and_names() {
        let entry = |name: &str, src: &str| CatalogEntry {
            name: name.into(),
            src: src.into(),
            sha256: None,
            format: None,
            size_bytes: None,
            description: None,
            arch: None,
            cache: true,
            image_ref: image_ref(src).unwrap(),
            origin: "t".into(),
        };
        let a = Catalog {
            source: "a".into(),
            entries: vec![entry("x", "https://h/x.img")],
        };
        let b = Catalog {
            source: "b".into(),
            entries: vec![
                entry("x2", "HTTPS://H:443/x.img"),
                entry("x", "https://h/other.img"),
                entry("y", "https://h/y.img"),
            ],
        };
        let names: Vec<String> = merge(vec![a, b]).into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["x", "y"]);
    }
}
