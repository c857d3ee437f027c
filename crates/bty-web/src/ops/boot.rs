//! Boot-folder operations both faces call: store an uploaded boot file.

use axum::http::StatusCode;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::routes::boot::safe_path;
use crate::state::AppState;

/// Write a boot file from a byte stream (API PUT and the UI's upload): into a temporary file
/// of this upload's own, synced, then renamed over the old file, so a cut upload never leaves
/// half a file in place and two uploads at once each land whole (the later rename wins).
pub async fn store<S, E>(
    s: &AppState,
    name: &str,
    mut stream: S,
) -> Result<serde_json::Value, ApiError>
where
    S: futures_util::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let path = safe_path(&s.cfg.boot_dir, name)?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let partial = s
        .cfg
        .boot_dir
        .join(format!(".{name}.{}.partial", hex::encode(tag)));
    let cap = s.cfg.max_upload_bytes;
    let result = async {
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", partial.display()),
                )
            })?;
        let mut total: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
            total += chunk.len() as u64;
            if total > cap {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("larger than {cap} bytes"),
                ));
            }
            f.write_all(&chunk)
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
        f.sync_all()
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(total)
    }
    .await;
    match result {
        Ok(total) => Ok(serde_json::json!({
            "name": name, "size_bytes": total, "path": path.display().to_string()
        })),
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}
