//! The image cache's HTTP face. Open like the PXE routes: `GET`/`HEAD
//! /cache/sha256/{hex}/{name}` (hex: the entry's digest, or its ref when it has none; the name
//! keeps the file's extension, which live environments read the format from), single byte
//! ranges, only for catalog entries. Behind the API guard: `GET /cache`, `DELETE
//! /cache/{key}`, `POST /cache/prefetch`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bty_proto::catalog::CatalogEntry;
use serde::Deserialize;

use crate::cache::{self, Cache, FAR_AHEAD, FillState, Located};
use crate::error::ApiError;
use crate::routes::ranges;
use crate::state::AppState;

/// How long a request waits for the origin to answer a fill it joined.
const OPEN_WAIT: Duration = Duration::from_secs(60);

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub async fn blob(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path((hex, _name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no cached catalog entry {hex}"));
    if !is_hex64(&hex) {
        return Err(not_found());
    }
    let k = hex.clone();
    let entry =
        s.db.read(move |c| crate::db::catalog::by_key(c, &k))
            .await?
            .filter(|e| s.cache.serves(e))
            .ok_or_else(not_found)?;
    serve_entry(&s, &entry, &method, &headers).await
}

fn base_headers(digest: Option<&str>, via: &'static str) -> HeaderMap {
    let mut h = ranges::octet_headers(digest);
    h.insert("x-bty-cache", HeaderValue::from_static(via));
    h
}

/// Answer a request for `entry`'s bytes from the cache (also the `/images` proxy's path).
pub async fn serve_entry(
    s: &AppState,
    entry: &CatalogEntry,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let c = Arc::clone(&s.cache);
    match c.locate(entry).await? {
        Located::Complete { row, path } => {
            let digest = row.sha256.clone().or(row.expected_sha.clone());
            serve_complete(
                &c,
                &row.key,
                &path,
                row.size,
                digest.as_deref(),
                method,
                headers,
            )
            .await
        }
        Located::Filling(fill) => {
            let mut rx = fill.tx.subscribe();
            let st: FillState = match tokio::time::timeout(
                OPEN_WAIT,
                rx.wait_for(|st| st.opened || st.end.is_some()),
            )
            .await
            {
                Ok(Ok(st)) => st.clone(),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("the origin of {} did not answer in time", entry.src),
                    ));
                }
            };
            match &st.end {
                Some(Err(m)) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        format!("the image cache could not fetch {}: {m}", entry.src),
                    ));
                }
                Some(Ok(())) => {
                    return serve_complete(
                        &c,
                        &fill.key,
                        &fill.path,
                        st.size,
                        fill.origin.digest.as_deref(),
                        method,
                        headers,
                    )
                    .await;
                }
                None => {}
            }
            let mut h = base_headers(fill.origin.digest.as_deref(), "fill");
            let range = match ranges::requested(headers, st.size, &mut h) {
                Ok(r) => r,
                Err(()) => return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response()),
            };
            if let Some((a, b)) = range
                && a > st.visible().saturating_add(FAR_AHEAD)
            {
                h.insert("x-bty-cache", HeaderValue::from_static("origin"));
                let (status, _, _) = ranges::shape(range, st.size, &mut h);
                if *method == Method::HEAD {
                    return Ok((status, h).into_response());
                }
                let body = cache::body::passthrough(Arc::clone(&c), fill.origin.clone(), a, b + 1);
                return Ok((status, h, body).into_response());
            }
            let (status, start, count) = ranges::shape(range, st.size, &mut h);
            if *method == Method::HEAD {
                return Ok((status, h).into_response());
            }
            let guard = c.serving(&fill.key);
            let idle = s.cfg.limits.idle_timeout.max(Duration::from_secs(30));
            let body = cache::body::follow(
                Arc::clone(&c),
                guard,
                Arc::clone(&fill),
                start,
                count.map(|n| start + n),
                idle,
            );
            Ok((status, h, body).into_response())
        }
    }
}

async fn serve_complete(
    c: &Arc<Cache>,
    key: &str,
    path: &std::path::Path,
    size: Option<u64>,
    digest: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let size = match size {
        Some(n) => n,
        None => tokio::fs::metadata(path)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cache: {e}")))?
            .len(),
    };
    let mut h = base_headers(digest, "hit");
    let range = match ranges::requested(headers, Some(size), &mut h) {
        Ok(r) => r,
        Err(()) => return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response()),
    };
    let (status, start, count) = ranges::shape(range, Some(size), &mut h);
    if *method == Method::HEAD {
        return Ok((status, h).into_response());
    }
    let guard = c.serving(key);
    let body = cache::body::file(Arc::clone(c), guard, path, start, count.unwrap_or(size))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cache: {e}")))?;
    Ok((status, h, body).into_response())
}

/// `GET /cache`.
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<cache::CacheItem>>, ApiError> {
    Ok(Json(s.cache.list().await?))
}

/// `DELETE /cache/{key}`.
pub async fn delete(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.cache.delete(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefetch {
    pub bty_image_ref: String,
}

/// `POST /cache/prefetch {"bty_image_ref": …}`: fill in the background; 202 with what the
/// cache is doing for it.
pub async fn prefetch(
    State(s): State<AppState>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let p: Prefetch = crate::routes::machines::body(b)?;
    let r = p.bty_image_ref.clone();
    let entry =
        s.db.read(move |c| crate::db::catalog::by_key(c, &r))
            .await?
            .filter(|e| e.bty_image_ref == p.bty_image_ref)
            .ok_or_else(|| ApiError::not_found(format!("no catalog entry {}", p.bty_image_ref)))?;
    let state = s.cache.prefetch(&entry).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            serde_json::json!({"bty_image_ref": entry.bty_image_ref, "src": entry.src, "state": state}),
        ),
    ))
}
