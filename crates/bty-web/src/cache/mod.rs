//! bty-web's image cache: every catalog image crosses the WAN once per fleet.
//!
//! Blobs live under `[cache] dir`: `sha256/<hex>` when the digest was known before the fill
//! (the catalog's `sha256`, an `oras://` layer digest), `src/<key>` otherwise, and
//! `part/<key>.part` while filling; their rows are in the state database (`db::cache`). One
//! fill per blob (single flight): the first request starts it, every other request — at the
//! same time or later — streams from the growing file behind the fill's watermark
//! ([`FillState`]). A fill is verified against the expected digest before the blob counts as
//! complete, and followers never get the last [`HOLD`] bytes until then; a fill that fails is
//! discarded and every follower's transfer is cut short. The leader is in [`fill`], the
//! bodies in [`body`], the space policy in [`space`], the origins in [`origin`], the
//! operator's view and the start-up reconciliation in `admin`.

mod admin;
pub mod body;
pub mod fill;
pub mod origin;
pub mod space;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bty_proto::catalog::CatalogEntry;
use tokio::sync::{Semaphore, watch};

use crate::config::CacheConfig;
use crate::db::Db;
use crate::db::cache::{self as rows, BlobRow, COMPLETE};
use crate::db::events::{self, NewEvent};
use crate::error::ApiError;
pub use admin::CacheItem;
use origin::{Origin, Revalidation};

/// Followers are held this far behind the fill until it verifies: the last chunk of a blob is
/// never sent before its digest is checked.
pub const HOLD: u64 = 64 << 10;
/// A blob whose origin sent wrong bytes (digest mismatch, short) is not fetched again for
/// this long: every retry of every machine would otherwise pull the whole image again.
pub const REFUSED_FOR: Duration = Duration::from_secs(60);
/// A Range starting this far above the watermark goes to the origin instead of waiting.
pub const FAR_AHEAD: u64 = 64 << 20;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub origin_bytes: AtomicU64,
    pub served_bytes: AtomicU64,
    pub fills: AtomicU64,
    pub evictions: AtomicU64,
    pub fill_failures: AtomicU64,
    pub passthrough: AtomicU64,
}

/// A running fill, as followers see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FillState {
    /// The origin answered (its size, when it said one, is known).
    pub opened: bool,
    pub size: Option<u64>,
    /// Bytes in the part file.
    pub written: u64,
    /// `None` while running; `Ok` when complete and verified; `Err` when discarded.
    pub end: Option<Result<(), String>>,
}

impl FillState {
    /// How far followers may read.
    pub fn visible(&self) -> u64 {
        match &self.end {
            Some(Ok(())) => self.size.unwrap_or(self.written),
            _ => self.written.saturating_sub(HOLD),
        }
    }
}

/// One fill in progress.
pub struct Fill {
    pub key: String,
    pub image_ref: String,
    /// Keyed by src (no digest known beforehand).
    pub digestless: bool,
    pub origin: Origin,
    pub part: PathBuf,
    pub path: PathBuf,
    pub tx: watch::Sender<FillState>,
}

/// What a request for a blob finds.
pub enum Located {
    Complete { row: Box<BlobRow>, path: PathBuf },
    Filling(Arc<Fill>),
}

/// Counts a blob as being served while alive.
pub struct ServeGuard {
    cache: Arc<Cache>,
    key: String,
}

impl Drop for ServeGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.cache.served.lock()
            && let Some(n) = m.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

pub struct Cache {
    pub cfg: CacheConfig,
    /// The cap in effect.
    pub cap: u64,
    pub db: Db,
    pub stats: Stats,
    fills: Mutex<HashMap<String, Arc<Fill>>>,
    served: Mutex<HashMap<String, usize>>,
    slots: Arc<Semaphore>,
    /// When the origin bandwidth cap next allows bytes.
    throttle: Mutex<Instant>,
    /// Whether pinned blobs alone exceed the cap (for the dashboard).
    over_cap: Mutex<Option<String>>,
    /// Keys whose last fill failed verification: when, and why.
    refused: Mutex<HashMap<String, (Instant, String)>>,
}

/// Keys are hex digests or `src-<hex>-<n>`: safe as file names.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 100
        && k.bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b's' | b'r' | b'-'))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn unix_text(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(crate::db::timestamp)
        .unwrap_or_default()
}

impl Cache {
    pub fn new(cfg: CacheConfig, db: Db) -> Cache {
        let cap = space::effective_cap(cfg.max_bytes, &cfg.dir);
        Cache {
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_fills.max(1))),
            cfg,
            cap,
            db,
            stats: Stats::default(),
            fills: Mutex::default(),
            served: Mutex::default(),
            throttle: Mutex::new(Instant::now()),
            over_cap: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    /// Remember that `key`'s origin sent wrong bytes.
    pub fn refuse(&self, key: &str, why: &str) {
        if let Ok(mut m) = self.refused.lock() {
            m.retain(|_, (at, _)| at.elapsed() < REFUSED_FOR);
            m.insert(key.to_string(), (Instant::now(), why.to_string()));
        }
    }

    /// Why `key` is not fetched again yet, if it is not.
    fn refused_now(&self, key: &str) -> Option<String> {
        let m = self.refused.lock().ok()?;
        let (at, why) = m.get(key)?;
        let left = REFUSED_FOR.saturating_sub(at.elapsed());
        (!left.is_zero()).then(|| {
            format!(
                "the image cache refused this image {} s ago: {why}; it fetches it again in {} s (or now after DELETE /cache/{key})",
                at.elapsed().as_secs(),
                left.as_secs().max(1)
            )
        })
    }

    /// Where a complete blob lives.
    pub fn path_of(&self, key: &str) -> PathBuf {
        if is_hex64(key) {
            self.cfg.dir.join("sha256").join(key)
        } else {
            self.cfg.dir.join("src").join(key)
        }
    }

    pub fn part_of(&self, key: &str) -> PathBuf {
        self.cfg.dir.join("part").join(format!("{key}.part"))
    }

    /// Whether the cache serves this entry at all (enabled, the entry allows it, http(s) or
    /// `oras://`).
    pub fn serves(&self, e: &CatalogEntry) -> bool {
        let lower = e.src.to_ascii_lowercase();
        self.cfg.enabled
            && e.cache
            && (lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("oras://"))
    }

    pub fn serving(self: &Arc<Self>, key: &str) -> ServeGuard {
        if let Ok(mut m) = self.served.lock() {
            *m.entry(key.to_string()).or_default() += 1;
        }
        ServeGuard {
            cache: Arc::clone(self),
            key: key.to_string(),
        }
    }

    fn served_count(&self, key: &str) -> usize {
        self.served
            .lock()
            .map(|m| m.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn active_keys(&self) -> HashSet<String> {
        self.fills
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Rows that must not be evicted or deleted: being served, filling, or pinned.
    pub fn keep_set(
        &self,
        rows: &[BlobRow],
        bound: &[(String, Option<String>)],
    ) -> HashSet<String> {
        let mut keep = space::pinned_keys(rows, bound);
        keep.extend(self.active_keys());
        if let Ok(m) = self.served.lock() {
            keep.extend(m.keys().cloned());
        }
        keep
    }

    /// Wait for the origin bandwidth cap to allow `n` more bytes (blocking thread).
    pub fn throttle(&self, n: u64) {
        let rate = self.cfg.origin_bytes_per_sec;
        if rate == 0 {
            return;
        }
        let wait = {
            let Ok(mut next) = self.throttle.lock() else {
                return;
            };
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / rate as f64);
            start - now
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    pub fn over_cap_note(&self) -> Option<String> {
        self.over_cap.lock().ok().and_then(|g| g.clone())
    }

    fn set_over_cap(&self, note: Option<String>) {
        if let Ok(mut g) = self.over_cap.lock() {
            *g = note;
        }
    }

    /// Record an event (best effort).
    pub async fn event(
        &self,
        kind: &'static str,
        key: &str,
        summary: String,
        details: serde_json::Value,
    ) {
        let ev = NewEvent {
            kind,
            subject_kind: Some("cache"),
            subject_id: Some(key.to_string()),
            actor: Some("bty-web"),
            source_ip: None,
            summary,
            details: Some(details),
        };
        if let Err(e) = self.db.write(move |c| events::record(c, &ev)).await {
            tracing::warn!("cache: cannot record an event: {e}");
        }
    }

    /// Find or start the blob for `entry`: complete on disk, or a fill to follow.
    pub async fn locate(self: &Arc<Self>, entry: &CatalogEntry) -> Result<Located, ApiError> {
        let origin = Origin {
            src: entry.src.clone(),
            digest: entry.disk_image_sha.clone(),
        };
        if let Some(d) = &entry.disk_image_sha {
            let k = d.clone();
            if let Some(row) = self.db.read(move |c| rows::get(c, &k)).await?
                && let Some(found) = self.complete(row).await
            {
                return Ok(found);
            }
            return self.join_or_start(d.clone(), entry, origin, None);
        }
        let r = entry.bty_image_ref.clone();
        let row = self.db.read(move |c| rows::newest_for_ref(c, &r)).await?;
        match row {
            Some(row) if row.state == COMPLETE => {
                let now = crate::db::unix_now();
                if now - row.validated_at < self.cfg.revalidate_secs.min(i64::MAX as u64) as i64 {
                    if let Some(found) = self.complete(row).await {
                        return Ok(found);
                    }
                    return self.join_or_start(new_src_key(entry), entry, origin, None);
                }
                let o = origin.clone();
                let v = row.validator.clone();
                let check = tokio::task::spawn_blocking(move || o.revalidate(v.as_deref()))
                    .await
                    .map_err(|_| {
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "revalidation failed")
                    })?;
                match check {
                    Ok(Revalidation::Unchanged) => {
                        let k = row.key.clone();
                        self.db
                            .write(move |c| rows::set_validated(c, &k, now))
                            .await?;
                        if let Some(found) = self.complete(row).await {
                            return Ok(found);
                        }
                        self.join_or_start(new_src_key(entry), entry, origin, None)
                    }
                    Ok(Revalidation::Changed(v)) => {
                        let key = new_src_key(entry);
                        self.event(
                            "cache.origin_changed",
                            &row.key,
                            format!(
                                "{} changed at the origin ({} became {}): a new blob is filled; the old one stays for flashes reading it",
                                entry.src,
                                row.validator.as_deref().unwrap_or("no validator"),
                                v.as_deref().unwrap_or("no validator")
                            ),
                            serde_json::json!({"src": entry.src, "old": row.key, "new": key, "old_validator": row.validator, "new_validator": v}),
                        )
                        .await;
                        self.join_or_start(key, entry, origin, v)
                    }
                    Err(e) => {
                        // The origin is down: the copy we have is the best there is.
                        tracing::warn!(
                            "cache: cannot revalidate {}: {e}; serving the cached copy",
                            entry.src
                        );
                        match self.complete(row).await {
                            Some(found) => Ok(found),
                            None => Err(ApiError::new(
                                StatusCode::BAD_GATEWAY,
                                format!("the origin did not answer: {e}"),
                            )),
                        }
                    }
                }
            }
            Some(row) => self.join_or_start(row.key, entry, origin, None),
            None => self.join_or_start(new_src_key(entry), entry, origin, None),
        }
    }

    /// A complete row whose file is there, counted as a hit.
    async fn complete(self: &Arc<Self>, row: BlobRow) -> Option<Located> {
        if row.state != COMPLETE {
            return None;
        }
        let path = self.path_of(&row.key);
        if !path.is_file() {
            return None;
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        let k = row.key.clone();
        let now = crate::db::unix_now();
        let _ = self.db.write(move |c| rows::touch(c, &k, now)).await;
        Some(Located::Complete {
            row: Box::new(row),
            path,
        })
    }

    /// Follow the running fill of `key` (or, digest-less, of the same entry), or start one.
    fn join_or_start(
        self: &Arc<Self>,
        key: String,
        entry: &CatalogEntry,
        origin: Origin,
        validator: Option<String>,
    ) -> Result<Located, ApiError> {
        let digestless = entry.disk_image_sha.is_none();
        let mut map = self.fills.lock().map_err(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cache state poisoned")
        })?;
        let running = map.get(&key).cloned().or_else(|| {
            map.values()
                .find(|f| digestless && f.digestless && f.image_ref == entry.bty_image_ref)
                .cloned()
        });
        if let Some(f) = running {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Located::Filling(f));
        }
        if let Some(why) = self.refused_now(&key) {
            return Err(ApiError::new(StatusCode::BAD_GATEWAY, why));
        }
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the cache is filling {} images already ([cache] max_concurrent_fills); try again shortly",
                    self.cfg.max_concurrent_fills
                ),
            )
        })?;
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let fill = Arc::new(Fill {
            part: self.part_of(&key),
            path: self.path_of(&key),
            key: key.clone(),
            image_ref: entry.bty_image_ref.clone(),
            digestless,
            origin,
            tx: watch::channel(FillState::default()).0,
        });
        map.insert(key, Arc::clone(&fill));
        drop(map);
        let cache = Arc::clone(self);
        let f = Arc::clone(&fill);
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || fill::run(cache, f, permit, validator, rt));
        Ok(Located::Filling(fill))
    }

    /// Forget a finished fill (called by the leader, after its row is final).
    pub fn finished(&self, key: &str) {
        if let Ok(mut m) = self.fills.lock() {
            m.remove(key);
        }
    }

    /// Delete a blob's files and row.
    pub async fn remove_blob(&self, key: &str) -> Result<(), ApiError> {
        let _ = std::fs::remove_file(self.path_of(key));
        let _ = std::fs::remove_file(self.part_of(key));
        let k = key.to_string();
        self.db.write(move |c| rows::delete(c, &k)).await?;
        Ok(())
    }

    /// Evict least-recently-used blobs so `need` more bytes fit (blocking thread). Whether
    /// they fit afterwards.
    pub fn make_room(&self, rt: &tokio::runtime::Handle, need: u64, protect: &str) -> bool {
        let Ok((all, bound)) = rt.block_on(
            self.db
                .read(|c| Ok((rows::list(c)?, rows::pinned_entries(c)?))),
        ) else {
            return false;
        };
        let mut keep = self.keep_set(&all, &bound);
        keep.insert(protect.to_string());
        let pins = space::pinned_keys(&all, &bound);
        let pinned_total: u64 = all
            .iter()
            .filter(|b| pins.contains(&b.key))
            .map(space::held)
            .sum();
        self.set_over_cap((pinned_total > self.cap).then(|| {
            format!(
                "The image cache holds {} of pinned images, over its cap of {}: unpinned images are evicted first and new unpinned fills are refused.",
                crate::ui::templates::human_bytes(pinned_total),
                crate::ui::templates::human_bytes(self.cap)
            )
        }));
        let (gone, fits) = space::choose_evictions(&all, &keep, self.cap, need);
        for b in gone {
            let _ = std::fs::remove_file(self.path_of(&b.key));
            let k = b.key.clone();
            if rt
                .block_on(self.db.write(move |c| rows::delete(c, &k)))
                .is_ok()
            {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                tracing::info!("cache: evicted {} ({})", b.key, b.src);
                rt.block_on(self.event(
                    "cache.evicted",
                    &b.key,
                    format!(
                        "evicted {} from the image cache (least recently used)",
                        b.src
                    ),
                    serde_json::json!({"src": b.src, "size": b.size}),
                ));
            }
        }
        fits
    }

    /// Whether `key` would be pinned (blocking thread).
    pub fn is_pinned(
        &self,
        rt: &tokio::runtime::Handle,
        key: &str,
        image_ref: &str,
        digestless: bool,
    ) -> bool {
        let Ok(bound) = rt.block_on(self.db.read(rows::pinned_entries)) else {
            return false;
        };
        bound.iter().any(|(r, d)| {
            d.as_deref() == Some(key) || (digestless && d.is_none() && r == image_ref)
        })
    }

    /// Start (or join) the fill of `entry` without a client waiting: binding a machine in a
    /// flash mode, `POST /cache/prefetch`. What the cache now does for it.
    pub async fn prefetch(
        self: &Arc<Self>,
        entry: &CatalogEntry,
    ) -> Result<&'static str, ApiError> {
        if !self.serves(entry) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the cache does not serve {} (disabled, cache = false, or not http(s)/oras)",
                    entry.src
                ),
            ));
        }
        Ok(match self.locate(entry).await? {
            Located::Complete { .. } => "complete",
            Located::Filling(_) => "filling",
        })
    }
}

/// A fresh key for a digest-less entry's next blob.
fn new_src_key(e: &CatalogEntry) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let r: String = e.bty_image_ref.chars().take(16).collect();
    format!("src-{r}-{nanos:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_file_names() {
        assert!(valid_key(&"a".repeat(64)));
        assert!(valid_key("src-0123456789abcdef-18a3f"));
        for bad in ["", "../x", "A", "src/x", "x.part", &"a".repeat(101)] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn followers_stay_behind_until_verified() {
        let mut s = FillState {
            opened: true,
            size: Some(1 << 20),
            written: 1 << 20,
            end: None,
        };
        assert_eq!(s.visible(), (1 << 20) - HOLD);
        s.end = Some(Err("mismatch".into()));
        assert_eq!(s.visible(), (1 << 20) - HOLD);
        s.end = Some(Ok(()));
        assert_eq!(s.visible(), 1 << 20);
        s.written = 10;
        s.end = None;
        assert_eq!(s.visible(), 0);
    }
}
