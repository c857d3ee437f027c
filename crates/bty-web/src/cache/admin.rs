//! The cache as the operator and the start-up see it: the rows of `GET /cache` with live
//! progress, `DELETE /cache/{key}` (refused while a blob is served, filling or pinned), and the
//! reconciliation of rows and files before serving.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;

use super::origin::Origin;
use super::{Cache, FillState, space, unix_text, valid_key};
use crate::db::cache::{self as rows, COMPLETE, FILLING};
use crate::error::ApiError;

/// A row of `GET /cache`.
#[derive(Debug, Clone, Serialize)]
pub struct CacheItem {
    pub key: String,
    pub src: String,
    pub bty_image_ref: String,
    pub size: Option<u64>,
    pub filled: u64,
    pub digest: Option<String>,
    pub state: String,
    pub last_used: String,
    pub hits: u64,
    pub pinned: bool,
    pub served: usize,
}

impl Cache {
    /// The rows for `GET /cache`, with live progress of running fills.
    pub async fn list(self: &Arc<Self>) -> Result<Vec<CacheItem>, ApiError> {
        let (all, bound) = self
            .db
            .read(|c| Ok((rows::list(c)?, rows::pinned_entries(c)?)))
            .await?;
        let pins = space::pinned_keys(&all, &bound);
        let live: HashMap<String, FillState> = self
            .fills
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, f)| (k.clone(), f.tx.borrow().clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(all
            .into_iter()
            .map(|b| {
                let st = live.get(&b.key);
                CacheItem {
                    pinned: pins.contains(&b.key),
                    served: self.served_count(&b.key),
                    filled: st.map_or(b.filled, |s| s.written.max(b.filled)),
                    size: b.size.or(st.and_then(|s| s.size)),
                    digest: b.sha256.clone().or(b.expected_sha.clone()),
                    state: if b.state == FILLING && st.is_none() {
                        "paused".into()
                    } else {
                        b.state.clone()
                    },
                    last_used: unix_text(b.last_used),
                    hits: b.hits,
                    key: b.key,
                    src: b.src,
                    bty_image_ref: b.image_ref,
                }
            })
            .collect())
    }

    /// `DELETE /cache/{key}`: 409 while served, filling or pinned.
    pub async fn delete(self: &Arc<Self>, key: &str) -> Result<(), ApiError> {
        if !valid_key(key) {
            return Err(ApiError::not_found(format!("no cached blob {key}")));
        }
        let k = key.to_string();
        let (row, all, bound) = self
            .db
            .read(move |c| Ok((rows::get(c, &k)?, rows::list(c)?, rows::pinned_entries(c)?)))
            .await?;
        if row.is_none() {
            let forgot = self
                .refused
                .lock()
                .map(|mut m| m.remove(key).is_some())
                .unwrap_or(false);
            if forgot {
                return Ok(());
            }
            return Err(ApiError::not_found(format!("no cached blob {key}")));
        }
        let conflict = |why: &str| {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("blob {key} is {why}"),
            ))
        };
        if self.served_count(key) > 0 {
            return conflict("being served");
        }
        if self.active_keys().contains(key) {
            return conflict("filling");
        }
        if space::pinned_keys(&all, &bound).contains(key) {
            return conflict("pinned: a machine is bound to its image in a flash mode");
        }
        self.remove_blob(key).await?;
        Ok(())
    }

    /// At start: make the folders, cut part files back to their recorded watermark, drop rows
    /// whose files are gone and files without rows; then resume the fills of pinned blobs.
    pub async fn reconcile(self: &Arc<Self>) -> anyhow::Result<()> {
        for d in ["sha256", "src", "part"] {
            std::fs::create_dir_all(self.cfg.dir.join(d))?;
        }
        let all = self.db.read(rows::list).await?;
        let mut keep_files = HashSet::new();
        for b in &all {
            if !valid_key(&b.key) {
                self.remove_blob(&b.key).await.ok();
                continue;
            }
            if b.state == COMPLETE {
                let path = self.path_of(&b.key);
                let ok = std::fs::metadata(&path).is_ok_and(|m| Some(m.len()) == b.size);
                if ok {
                    keep_files.insert(path);
                } else {
                    tracing::warn!("cache: {} is missing or damaged; forgotten", path.display());
                    self.remove_blob(&b.key).await.ok();
                }
                continue;
            }
            let part = self.part_of(&b.key);
            let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            let keep = have.min(b.filled);
            if have != keep || have == 0 {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&part)?;
                f.set_len(keep)?;
            }
            if keep != b.filled {
                let k = b.key.clone();
                self.db
                    .write(move |c| rows::set_filled(c, &k, keep, None, None))
                    .await?;
            }
            keep_files.insert(part);
        }
        for d in ["sha256", "src", "part"] {
            for f in std::fs::read_dir(self.cfg.dir.join(d))?.flatten() {
                let p = f.path();
                if !keep_files.contains(&p) {
                    tracing::info!("cache: removing {} (no row)", p.display());
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        // Pinned fills resume now; the others on their next request.
        let (all, bound) = self
            .db
            .read(|c| Ok((rows::list(c)?, rows::pinned_entries(c)?)))
            .await?;
        let pins = space::pinned_keys(&all, &bound);
        let entries = self.db.read(crate::db::catalog::list).await?;
        for b in all
            .iter()
            .filter(|b| b.state == FILLING && pins.contains(&b.key))
        {
            if let Some(e) = entries.iter().find(|e| e.bty_image_ref == b.image_ref) {
                let origin = Origin {
                    src: e.src.clone(),
                    digest: e.disk_image_sha.clone(),
                };
                tracing::info!("cache: resuming the fill of {} at byte {}", b.src, b.filled);
                if let Err(e) = self.join_or_start(b.key.clone(), e, origin, None) {
                    tracing::warn!("cache: cannot resume {}: {e:?}", b.key);
                }
            }
        }
        Ok(())
    }
}
