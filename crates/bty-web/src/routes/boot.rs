//! Boot artifacts in the boot folder: `GET`/`HEAD /boot/{name}` for firmware and the netboot
//! environment (single Range → 206, ETag with If-None-Match / If-Range, content types by kind),
//! arming the flash cycle when a file is served with `?mac=`; and `PUT /boot/{name}` (session
//! required) streaming to a temporary file of its own (`.<name>.<random>.partial`), size-capped,
//! then renamed into place, so concurrent uploads never share a file.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path as FsPath, PathBuf};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::ops;
use crate::routes::ranges::parse_range;
use crate::state::AppState;

/// A bare file name that stays inside the boot folder, or 400.
pub(crate) fn safe_path(boot_dir: &FsPath, name: &str) -> Result<PathBuf, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid boot file name: {name:?}"));
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.ends_with(".partial")
    {
        return Err(bad());
    }
    let path = boot_dir.join(name);
    // A symlink that leads out of the folder is refused too.
    if let Ok(real) = std::fs::canonicalize(&path) {
        let root = std::fs::canonicalize(boot_dir).map_err(|_| bad())?;
        if !real.starts_with(&root) {
            return Err(bad());
        }
    }
    Ok(path)
}

fn content_type(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".ipxe") || n.ends_with(".txt") || n.ends_with(".sha256") || n.ends_with("sums")
    {
        "text/plain; charset=utf-8"
    } else if n.ends_with(".json") {
        "application/json"
    } else if n.ends_with(".toml") {
        "application/toml"
    } else {
        "application/octet-stream"
    }
}

pub async fn get(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let path = safe_path(&s.cfg.boot_dir, &name)?;
    // Opened without blocking (a FIFO cannot hang the request) and served only as a regular
    // file with a single link (a hard link could bring any file of the filesystem in).
    let p = path.clone();
    let (file, meta) =
        match tokio::task::spawn_blocking(move || crate::tftp::open_boot_file(&p)).await {
            Ok(Ok((f, m))) => (tokio::fs::File::from_std(f), m),
            _ => return Err(ApiError::not_found(format!("no boot file {name}"))),
        };
    // Serving the flasher's kernel or initrd with ?mac= proves the netboot environment boots.
    if let Some(mac) = q.get("mac").and_then(|m| bty_proto::Mac::parse(m).ok()) {
        let ip = ip.to_string();
        let (m, n) = (mac.to_string(), name.clone());
        let strict = s.cfg.strict_reports;
        let armed =
            s.db.write(move |c| crate::db::pxe::arm(c, &m, &ip, &n, strict))
                .await?;
        // A second address arming the same cycle is recorded and warned about; the file is
        // served either way (it is public, and the real machine may be the second one).
        if armed != crate::db::pxe::Armed::Nothing {
            s.changed(&mac.to_string(), false).await;
        }
    }
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!("\"{len:x}-{mtime:x}\"");
    let mut res_headers = HeaderMap::new();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(&mut res_headers, header::ETAG, &etag);
    set(&mut res_headers, header::ACCEPT_RANGES, "bytes");
    set(&mut res_headers, header::CONTENT_TYPE, content_type(&name));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, res_headers).into_response());
    }
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok => match parse_range(r, len) {
            Ok(r) => r,
            Err(()) => {
                set(
                    &mut res_headers,
                    header::CONTENT_RANGE,
                    &format!("bytes */{len}"),
                );
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, res_headers).into_response());
            }
        },
        _ => None,
    };
    let (status, start, count) = match range {
        Some((a, b)) => {
            set(
                &mut res_headers,
                header::CONTENT_RANGE,
                &format!("bytes {a}-{b}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, len),
    };
    set(&mut res_headers, header::CONTENT_LENGTH, &count.to_string());
    if method == Method::HEAD {
        return Ok((status, res_headers).into_response());
    }
    let mut file = file;
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), 256 << 10);
    Ok((status, res_headers, Body::from_stream(stream)).into_response())
}

pub async fn put(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    ops::boot::store(&s, &name, body.into_data_stream())
        .await
        .map(Json)
}

/// `GET /netboot`: which boot files are present (the netboot environment, the iPXE binaries),
/// and the TFTP server's state.
pub async fn status(State(s): State<AppState>) -> Json<serde_json::Value> {
    let file = |dir: &FsPath, name: &str| {
        let meta = std::fs::metadata(dir.join(name))
            .ok()
            .filter(|m| m.is_file());
        serde_json::json!({"name": name, "present": meta.is_some(), "size_bytes": meta.map(|m| m.len())})
    };
    let boot = &s.cfg.boot_dir;
    let tftp_root = s.cfg.tftp_root();
    Json(serde_json::json!({
        "boot_dir": boot.display().to_string(),
        "netboot": [file(boot, &s.cfg.netboot.kernel), file(boot, &s.cfg.netboot.initrd)],
        "ipxe": crate::tftp::IPXE_FILES.iter().map(|n| file(tftp_root, n)).collect::<Vec<_>>(),
        "tftp": {
            "enabled": s.cfg.tftp.is_some(),
            "listening": s.tftp_addr.map(|a| a.to_string()),
            "root": tftp_root.display().to_string(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["", ".", "..", "a/b", "..\\x", "x\0", "k.partial"] {
            assert!(safe_path(d.path(), bad).is_err(), "{bad:?}");
        }
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("escape")).unwrap();
        assert!(safe_path(d.path(), "escape").is_err());
        assert!(safe_path(d.path(), "ipxe.efi").is_ok());
    }
}
