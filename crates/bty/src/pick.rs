//! Choosing the image a command works on: a SOURCE as typed, or a named entry of a catalog
//! merged with the local image folder.

use bty_source::catalog::{self, CatalogEntry};
use bty_source::folder::{self, image_root};
use bty_source::resolve::{ResolveOptions, Resolved, resolve, resolve_entry};
use bty_source::{HttpClient, SourceError};

use crate::cli::ImageSelection;

/// The local folder's entries, then the catalog's (when given), de-duplicated.
pub fn entries(
    catalog_source: Option<&str>,
    local: bool,
    client: &HttpClient,
) -> Result<Vec<CatalogEntry>, SourceError> {
    let mut parts = Vec::new();
    if local {
        parts.push(folder::scan(&image_root(), client)?);
    }
    if let Some(c) = catalog_source {
        parts.push(catalog::load(c, client)?);
    }
    Ok(folder::merge(parts))
}

/// Resolve `source`, or the selected catalog entry (from `--catalog`, or the local folder).
pub fn pick(source: Option<&str>, sel: &ImageSelection) -> Result<Resolved, String> {
    let client = HttpClient::default();
    let opts = ResolveOptions {
        platform: sel.platform.clone(),
        insecure_registries: sel.insecure_registry.clone(),
    };
    match (source, sel.image.as_deref()) {
        (_, Some(name)) => {
            let list = entries(sel.catalog.as_deref(), true, &client).map_err(|e| e.to_string())?;
            let Some(entry) = list.iter().find(|e| e.name == name) else {
                let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
                let known = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                return Err(format!("no image named {name:?} (known: {known})"));
            };
            resolve_entry(entry, &client, &opts).map_err(|e| e.to_string())
        }
        (Some(src), None) => resolve(src, &client, &opts).map_err(|e| e.to_string()),
        (None, None) => Err("give a SOURCE, or --image NAME (with --catalog CATALOG)".into()),
    }
}
