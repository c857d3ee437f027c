//! Response bodies of the blob route: a complete blob read from its file; a follower reading a
//! growing part file behind the fill's watermark (ended with an error — a transfer cut short
//! of its Content-Length — when the fill is discarded or stalls); and a range passed through
//! from the origin without being stored.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};

use super::origin::Origin;
use super::{Cache, Fill, ServeGuard};

/// Bytes per body chunk.
const CHUNK: u64 = 1 << 20;

/// `count` bytes from `start` of a complete blob. One blocking reader per transfer reads
/// ahead (positional reads straight into the buffers handed to hyper: one copy fewer than
/// `tokio::fs` behind a reader stream), at most two chunks ahead of the socket, so memory
/// stays flat whatever the blob's size.
pub async fn file(
    cache: Arc<Cache>,
    guard: ServeGuard,
    path: &std::path::Path,
    start: u64,
    count: u64,
) -> std::io::Result<Body> {
    let f = std::fs::File::open(path)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let _held = guard;
        let end = start + count;
        let mut at = start;
        while at < end {
            let want = (end - at).min(CHUNK) as usize;
            let mut buf = vec![0u8; want];
            let item = match f.read_at(&mut buf, at) {
                Ok(0) => Err(std::io::Error::other(
                    "the cached blob is shorter than its row",
                )),
                Ok(n) => {
                    buf.truncate(n);
                    at += n as u64;
                    cache
                        .stats
                        .served_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Body::from_stream(stream))
}

struct Follow {
    cache: Arc<Cache>,
    _guard: ServeGuard,
    fill: Arc<Fill>,
    rx: tokio::sync::watch::Receiver<super::FillState>,
    file: Option<Arc<std::fs::File>>,
    pos: u64,
    /// Exclusive; `None`: to the blob's end, whenever that is known.
    end: Option<u64>,
    idle: Duration,
    failed: bool,
}

fn open_growing(fill: &Fill) -> std::io::Result<std::fs::File> {
    match std::fs::File::open(&fill.part) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(&fill.path),
        other => other,
    }
}

impl Follow {
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.failed {
            return None;
        }
        loop {
            if self.end.is_some_and(|e| self.pos >= e) {
                return None;
            }
            let st = self.rx.borrow_and_update().clone();
            if let Some(Err(m)) = &st.end {
                self.failed = true;
                return Some(Err(std::io::Error::other(format!(
                    "the image cache discarded this blob: {m}"
                ))));
            }
            let complete = matches!(st.end, Some(Ok(())));
            let avail = st.visible();
            if avail > self.pos {
                let limit = self.end.unwrap_or(u64::MAX).min(avail);
                let want = (limit - self.pos).min(CHUNK) as usize;
                return Some(self.read(want).await);
            }
            if complete {
                return None;
            }
            match tokio::time::timeout(self.idle, self.rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => {
                    self.failed = true;
                    return Some(Err(std::io::Error::other(
                        "the image cache's fill stalled; ending this transfer",
                    )));
                }
            }
        }
    }

    async fn read(&mut self, want: usize) -> std::io::Result<Bytes> {
        let file = match &self.file {
            Some(f) => Arc::clone(f),
            None => {
                let f = Arc::new(open_growing(&self.fill)?);
                self.file = Some(Arc::clone(&f));
                f
            }
        };
        let at = self.pos;
        let data = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; want];
            let n = file.read_at(&mut buf, at)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|_| std::io::Error::other("reader failed"))??;
        if data.is_empty() {
            self.failed = true;
            return Err(std::io::Error::other(
                "the part file is shorter than its watermark",
            ));
        }
        self.pos += data.len() as u64;
        self.cache
            .stats
            .served_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(Bytes::from(data))
    }
}

/// Bytes `start..end` of a blob still filling, as the fill makes them safe to send.
pub fn follow(
    cache: Arc<Cache>,
    guard: ServeGuard,
    fill: Arc<Fill>,
    start: u64,
    end: Option<u64>,
    idle: Duration,
) -> Body {
    let f = Follow {
        rx: fill.tx.subscribe(),
        cache,
        _guard: guard,
        fill,
        file: None,
        pos: start,
        end,
        idle,
        failed: false,
    };
    let stream =
        futures_util::stream::unfold(
            f,
            |mut f| async move { f.next().await.map(|item| (item, f)) },
        );
    Body::from_stream(stream)
}

/// Bytes `start..end` straight from the origin (a reader seeking far ahead of a fill).
pub fn passthrough(cache: Arc<Cache>, origin: Origin, start: u64, end: u64) -> Body {
    cache.stats.passthrough.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut r = match origin.range(start, end) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        let mut buf = vec![0u8; CHUNK as usize];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    cache
                        .stats
                        .origin_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    cache
                        .stats
                        .served_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}
