//! The leader of one fill, on a blocking thread: stream the origin into `part/<key>.part`
//! while hashing, resuming after a dropped connection (Range + If-Range inside
//! bty-source's reader; a fresh open — new token, new redirect — when that gives up), with the
//! recorded watermark advanced only after `fdatasync`. On completion: verify against the
//! expected digest, sync, rename into place, mark the row complete, then let followers read
//! the last bytes. On any failure: discard the part file and the row, count it, record an
//! event, and end every follower's transfer short.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bty_source::SourceError;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;

use super::{Cache, Fill};
use crate::db::cache::{self as rows, BlobRow, COMPLETE, FILLING};

/// Read size from the origin.
const CHUNK: usize = 1 << 20;
/// The watermark is made durable (and recorded) at least this often.
const SYNC_EVERY: u64 = 16 << 20;
/// Free space is checked this often.
const SPACE_EVERY: u64 = 64 << 20;
/// Fresh opens of the origin (each after the reader's own retries gave up).
const MAX_REOPENS: u32 = 5;

/// How a fill ended badly.
struct Failure {
    message: String,
    /// An event kind other than `cache.fill_failed`.
    kind: &'static str,
    /// The origin sent wrong bytes: do not fetch again at once.
    refuse: bool,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        kind: "cache.fill_failed",
        refuse: false,
    }
}

fn wrong_bytes(message: String) -> Failure {
    Failure {
        refuse: true,
        ..fail(message)
    }
}

/// Run the fill of `fill` to its end; `validator` is what the origin's current version was
/// seen with, when a revalidation just found it.
pub fn run(
    cache: Arc<Cache>,
    fill: Arc<Fill>,
    permit: OwnedSemaphorePermit,
    validator: Option<String>,
    rt: Handle,
) {
    let outcome = work(&cache, &fill, validator, &rt);
    match outcome {
        Ok(size) => {
            fill.tx.send_modify(|s| {
                s.opened = true;
                s.size = Some(size);
                s.written = size;
                s.end = Some(Ok(()));
            });
            cache.finished(&fill.key);
            drop(permit);
            cache.make_room(&rt, 0, &fill.key);
        }
        Err(f) => {
            let _ = std::fs::remove_file(&fill.part);
            let k = fill.key.clone();
            let _ = rt.block_on(cache.db.write(move |c| rows::delete(c, &k)));
            cache.stats.fill_failures.fetch_add(1, Ordering::Relaxed);
            if f.refuse {
                cache.refuse(&fill.key, &f.message);
            }
            tracing::warn!(
                "cache: the fill of {} failed: {}",
                fill.origin.src,
                f.message
            );
            rt.block_on(cache.event(
                f.kind,
                &fill.key,
                format!("the image cache discarded {}: {}", fill.origin.src, f.message),
                serde_json::json!({"src": fill.origin.src, "error": f.message, "expected_sha256": fill.origin.digest}),
            ));
            fill.tx
                .send_modify(|s| s.end = Some(Err(f.message.clone())));
            cache.finished(&fill.key);
            drop(permit);
        }
    }
}

/// Hash the first `len` bytes already in the part file.
fn rehash(part: &File, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let want = (len - at).min(CHUNK as u64) as usize;
        let n = part.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the part file is shorter than its watermark",
            ));
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

fn source_error(e: &std::io::Error) -> Option<&SourceError> {
    e.get_ref().and_then(|i| i.downcast_ref::<SourceError>())
}

/// Whether a fresh open may fix this (a dropped connection, an expired token or redirect).
fn worth_reopening(e: &SourceError) -> bool {
    !matches!(
        e,
        SourceError::NotFound { .. }
            | SourceError::Changed { .. }
            | SourceError::HostNotFound { .. }
            | SourceError::Refused { .. }
            | SourceError::Catalog(_)
    )
}

fn work(
    cache: &Cache,
    fill: &Fill,
    seen_validator: Option<String>,
    rt: &Handle,
) -> Result<u64, Failure> {
    let db = &cache.db;
    let k = fill.key.clone();
    let row = rt
        .block_on(db.read(move |c| rows::get(c, &k)))
        .map_err(|e| fail(format!("state: {e}")))?;
    if let Some(r) = &row
        && r.state == COMPLETE
        && std::fs::metadata(&fill.path).is_ok_and(|m| Some(m.len()) == r.size)
    {
        // Another request completed it a moment ago.
        return Ok(r.size.unwrap_or(0));
    }
    let pinned = cache.is_pinned(rt, &fill.key, &fill.image_ref, fill.digestless);
    let row = match row {
        Some(r) if r.state == FILLING => r,
        _ => {
            let now = crate::db::unix_now();
            let r = BlobRow {
                key: fill.key.clone(),
                image_ref: fill.image_ref.clone(),
                src: fill.origin.src.clone(),
                expected_sha: fill.origin.digest.clone(),
                sha256: None,
                validator: seen_validator,
                size: None,
                filled: 0,
                state: FILLING.into(),
                created_at: crate::db::now(),
                last_used: now,
                hits: 0,
                validated_at: now,
            };
            let ins = r.clone();
            rt.block_on(db.write(move |c| {
                rows::delete(c, &ins.key)?;
                rows::insert(c, &ins)
            }))
            .map_err(|e| fail(format!("state: {e}")))?;
            r
        }
    };
    let part = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&fill.part)
        .map_err(|e| fail(format!("cannot open {}: {e}", fill.part.display())))?;
    let have = part.metadata().map(|m| m.len()).unwrap_or(0);
    let mut pos = have.min(row.filled);
    let io = |what: &str, e: std::io::Error| fail(format!("{what} {}: {e}", fill.part.display()));
    part.set_len(pos).map_err(|e| io("cannot truncate", e))?;
    let mut hasher = Sha256::new();
    rehash(&part, pos, &mut hasher).map_err(|e| io("cannot read", e))?;
    let mut validator = row.validator.clone();
    let mut size = row.size;
    let mut opened = false;
    let mut reopens = 0u32;
    let mut synced = pos;
    let mut space_checked = pos;
    let mut buf = vec![0u8; CHUNK];
    'open: loop {
        let src = match fill.origin.open() {
            Ok(s) => s,
            Err(e) if worth_reopening(&e) && reopens < MAX_REOPENS => {
                reopens += 1;
                tracing::warn!("cache: {e}; opening again ({reopens})");
                std::thread::sleep(Duration::from_millis(500) * reopens);
                continue;
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let now_size = bty_image::ImageSource::size(&src);
        if let (Some(a), Some(b)) = (size, now_size)
            && a != b
        {
            return Err(Failure {
                message: format!(
                    "the origin's object changed size from {a} to {b} bytes during the fill"
                ),
                kind: "cache.origin_changed",
                refuse: false,
            });
        }
        match (&validator, src.validator()) {
            (Some(a), Some(b)) if *a != b => {
                return Err(Failure {
                    message: format!(
                        "the origin's object changed during the fill ({a} became {b})"
                    ),
                    kind: "cache.origin_changed",
                    refuse: false,
                });
            }
            (None, v) => validator = v,
            _ => {}
        }
        size = size.or(now_size);
        if !opened {
            opened = true;
            check_floor(cache, rt, &fill.key, &fill.part)?;
            if let Some(total) = size {
                let need = total.saturating_sub(pos);
                if !cache.make_room(rt, need, &fill.key) && !pinned {
                    return Err(fail(format!(
                        "no room under the cache's cap ({} bytes) for {} more bytes: the rest is pinned or being served",
                        cache.cap, need
                    )));
                }
            }
            let (k, v) = (fill.key.clone(), validator.clone());
            rt.block_on(db.write(move |c| rows::set_filled(c, &k, pos, size, v.as_deref())))
                .map_err(|e| fail(format!("state: {e}")))?;
            fill.tx.send_modify(|s| {
                s.opened = true;
                s.size = size;
                s.written = pos;
            });
        }
        if size.is_some_and(|s| pos >= s) {
            break;
        }
        let mut reader = src.stream_range(pos, None);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break 'open,
                Ok(n) => n,
                Err(e) => match source_error(&e) {
                    Some(se) if !worth_reopening(se) => {
                        return Err(Failure {
                            kind: if matches!(se, SourceError::Changed { .. }) {
                                "cache.origin_changed"
                            } else {
                                "cache.fill_failed"
                            },
                            message: se.to_string(),
                            refuse: false,
                        });
                    }
                    _ if reopens < MAX_REOPENS => {
                        reopens += 1;
                        tracing::warn!(
                            "cache: {e}; opening the origin again at byte {pos} ({reopens})"
                        );
                        std::thread::sleep(Duration::from_millis(500) * reopens);
                        continue 'open;
                    }
                    _ => return Err(fail(format!("gave up at byte {pos}: {e}"))),
                },
            };
            if size.is_some_and(|s| pos + n as u64 > s) {
                return Err(fail(format!(
                    "the origin sent more than its {} bytes",
                    size.unwrap_or(0)
                )));
            }
            cache.throttle(n as u64);
            part.write_all_at(&buf[..n], pos)
                .map_err(|e| io("cannot write", e))?;
            hasher.update(&buf[..n]);
            pos += n as u64;
            cache
                .stats
                .origin_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            fill.tx.send_modify(|s| s.written = pos);
            if pos - space_checked >= SPACE_EVERY {
                space_checked = pos;
                check_floor(cache, rt, &fill.key, &fill.part)?;
            }
            if pos - synced >= SYNC_EVERY {
                part.sync_data().map_err(|e| io("cannot sync", e))?;
                synced = pos;
                let k = fill.key.clone();
                rt.block_on(db.write(move |c| rows::set_filled(c, &k, pos, None, None)))
                    .map_err(|e| fail(format!("state: {e}")))?;
            }
            reopens = 0;
        }
    }
    if let Some(s) = size
        && pos != s
    {
        return Err(wrong_bytes(format!("the origin sent {pos} of {s} bytes")));
    }
    let got = hex::encode(hasher.finalize());
    if let Some(want) = &fill.origin.digest
        && *want != got
    {
        return Err(wrong_bytes(format!(
            "the bytes have sha256 {got}, not the expected {want}"
        )));
    }
    part.sync_data().map_err(|e| io("cannot sync", e))?;
    std::fs::rename(&fill.part, &fill.path)
        .map_err(|e| fail(format!("cannot move the blob into place: {e}")))?;
    if let Some(dir) = fill.path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    let (k, sha) = (fill.key.clone(), got.clone());
    rt.block_on(db.write(move |c| rows::set_complete(c, &k, pos, &sha)))
        .map_err(|e| fail(format!("state: {e}")))?;
    cache.stats.fills.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        "cache: filled {} ({pos} bytes, sha256 {got})",
        fill.origin.src
    );
    Ok(pos)
}

/// Fail the fill when the filesystem is down to the free-space floor (after evicting what may
/// go).
fn check_floor(
    cache: &Cache,
    rt: &Handle,
    key: &str,
    part: &std::path::Path,
) -> Result<(), Failure> {
    let floor = cache.cfg.min_free_bytes;
    let free = super::space::free_bytes(part).unwrap_or(u64::MAX);
    if free >= floor.saturating_add(SPACE_EVERY) {
        return Ok(());
    }
    cache.make_room(rt, SPACE_EVERY, key);
    let free = super::space::free_bytes(part).unwrap_or(u64::MAX);
    if free < floor.saturating_add(SPACE_EVERY) {
        return Err(fail(format!(
            "the cache's filesystem is down to {free} free bytes ([cache] min_free_bytes is {floor})"
        )));
    }
    Ok(())
}
