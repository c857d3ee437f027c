//! `GET`/`HEAD /images/{key}[/{name}]`: an `oras://` catalog entry's blob, streamed from its
//! registry for clients that cannot speak OCI (upstream's netboot environment). `key` is the
//! entry's `bty_image_ref` or its `disk_image_sha`; `name` is decorative. Single byte ranges
//! are served (206, through [`crate::routes::ranges`]), so downloads can resume. With the image cache on (the default), this is
//! a cache read like `/cache/sha256/…` (any catalog entry the cache serves).

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bty_image::ImageSource;
use bty_source::resolve::{ResolveOptions, resolve};

use crate::error::ApiError;
use crate::routes::ranges;
use crate::state::AppState;

const CHUNK: usize = 256 << 10;

pub async fn blob(
    s: State<AppState>,
    m: Method,
    h: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    serve(s, m, h, key).await
}

pub async fn blob_named(
    s: State<AppState>,
    m: Method,
    h: HeaderMap,
    Path((key, _name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    serve(s, m, h, key).await
}

async fn serve(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    key: String,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("no oras:// catalog entry {key}"));
    if key.len() != 64 || !key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(not_found());
    }
    let k = key.clone();
    let entry =
        s.db.read(move |c| crate::db::catalog::by_key(c, &k))
            .await?
            .ok_or_else(not_found)?;
    if s.cache.serves(&entry) {
        return crate::routes::cache::serve_entry(&s, &entry, &method, &headers).await;
    }
    if !entry.src.to_ascii_lowercase().starts_with("oras://") {
        return Err(not_found());
    }
    let (src, digest) = (entry.src, entry.disk_image_sha);
    let resolved = tokio::task::spawn_blocking(move || {
        resolve(&src, &crate::fetch::proxy(), &ResolveOptions::default())
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::BAD_GATEWAY, "resolver failed"))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the registry did not answer: {e}"),
        )
    })?;
    let source = resolved.source;
    let size = source.size();
    let mut h = ranges::octet_headers(digest.as_deref());
    let Ok(range) = ranges::requested(&headers, size, &mut h) else {
        return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response());
    };
    let (status, start, count) = ranges::shape(range, size, &mut h);
    if method == Method::HEAD {
        return Ok((status, h).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || pump(source, start, count, range.is_some(), tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((status, h, Body::from_stream(stream)).into_response())
}

/// Read the blob (a range through positional reads, else one stream) into the channel.
fn pump(
    source: Arc<dyn ImageSource>,
    start: u64,
    count: Option<u64>,
    ranged: bool,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    if ranged && let (Some(ra), Some(total)) = (source.random_access(), count) {
        let mut at = start;
        let end = start + total;
        forward(
            |buf| {
                let want = buf.len().min((end - at) as usize);
                let n = if want == 0 {
                    0
                } else {
                    ra.read_at(&mut buf[..want], at)?
                };
                at += n as u64;
                Ok(n)
            },
            &tx,
        );
        return;
    }
    match source.open_stream() {
        Ok(mut r) => forward(|buf| r.read(buf), &tx),
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
        }
    }
}

/// Send what `read` yields, chunk by chunk, until it ends, fails, or the client is gone.
fn forward(
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let item = match read(&mut buf) {
            Ok(0) => return,
            Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}
