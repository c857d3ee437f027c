//! The catalog API's HTTP face: add an entry, list, delete by `src`, import a catalog (the
//! operations themselves are in [`crate::ops::catalog`], shared with the UI), and the open
//! views `/images` and `/catalog.toml`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bty_proto::catalog::{CatalogEntry, CatalogEntryAdd, ImageEntry, ImportResult};

use crate::db::catalog;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::ops;
use crate::routes::machines::body;
use crate::state::AppState;

pub async fn add(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<CatalogEntry>), ApiError> {
    let add: CatalogEntryAdd = body(b)?;
    let ip = ip.to_string();
    Ok((
        StatusCode::CREATED,
        Json(ops::catalog::add_entry(&s, add, ip).await?),
    ))
}

pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<CatalogEntry>>, ApiError> {
    Ok(Json(s.db.read(catalog::list).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let Some(src) = q.get("src").cloned() else {
        return Err(ApiError::Invalid(vec![bty_proto::ValidationError {
            loc: vec!["query".into(), "src".into()],
            msg: "field required".into(),
            kind: "missing",
        }]));
    };
    let ip = ip.to_string();
    if ops::catalog::delete_entry(&s, src.clone(), ip)
        .await?
        .is_some()
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no catalog entry with src {src}"
        )))
    }
}

pub async fn import(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ImportResult>, ApiError> {
    let Some(source) = q.get("source").cloned() else {
        return Err(ApiError::invalid("source", "field required"));
    };
    if !bty_source::catalog::fetchable(&source) {
        return Err(ApiError::invalid(
            "source",
            "must be an http(s):// or oras:// URL; bty-web reads no local paths",
        ));
    }
    let ip = ip.to_string();
    let src = source.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        bty_source::catalog::load_published(&src, &crate::fetch::operator())
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "loader failed"))?
    .map_err(|e| ApiError::bad_request(format!("cannot import {source}: {e}")))?;
    Ok(Json(
        ops::catalog::store_import(&s, source, loaded, ip).await?,
    ))
}

pub async fn images(State(s): State<AppState>) -> Result<Json<Vec<ImageEntry>>, ApiError> {
    let (rows, cached) =
        s.db.read(|c| Ok((catalog::list(c)?, crate::db::cache::complete(c)?)))
            .await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| ImageEntry {
                cached: cached.contains(&e.bty_image_ref)
                    || e.disk_image_sha
                        .as_ref()
                        .is_some_and(|d| cached.contains(d)),
                format: e.format.unwrap_or_default(),
                size_bytes: e.size_bytes.unwrap_or(0),
                url: e.src,
                sha_short: e
                    .disk_image_sha
                    .as_ref()
                    .map(|d| d.chars().take(12).collect()),
                image_ref: e.bty_image_ref,
                name: e.name,
                arch: e.arch,
            })
            .collect(),
    ))
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Every entry (also those without a digest, unlike upstream, so the wizard sees them). An
/// entry the image cache serves is listed with this server's blob URL as its `src`, so a
/// wizard or live environment reading this catalog downloads through the cache.
pub async fn catalog_toml(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let rows = s.db.read(catalog::list).await?;
    let base = crate::urls::base_url(s.cfg.public_url.as_deref(), &headers);
    let mut out = String::from("version = 1\n");
    for e in rows {
        out.push_str("\n[[images]]\n");
        out.push_str(&format!("name = {}\n", toml_str(&e.name)));
        let src = match &base {
            Some(b) if s.cache.serves(&e) => crate::pxe::decide::cache_url(
                b,
                &e.bty_image_ref,
                e.disk_image_sha.as_deref(),
                &crate::pxe::decide::file_name(&e.name, &e.src, e.format.as_deref()),
            ),
            _ => e.src.clone(),
        };
        out.push_str(&format!("src = {}\n", toml_str(&src)));
        if let Some(d) = &e.disk_image_sha {
            out.push_str(&format!("sha256 = {}\n", toml_str(d)));
        }
        if let Some(f) = &e.format {
            out.push_str(&format!("format = {}\n", toml_str(f)));
        }
        if let Some(n) = e.size_bytes {
            out.push_str(&format!("size_bytes = {n}\n"));
        }
        if let Some(d) = &e.description {
            out.push_str(&format!("description = {}\n", toml_str(d)));
        }
        if let Some(a) = &e.arch {
            out.push_str(&format!("arch = {}\n", toml_str(a)));
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/toml")], out).into_response())
}
