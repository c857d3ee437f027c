//! The HTTP listener, made to survive slow and hostile clients on the LAN: every connection
//! has a header-read timeout (hyper's, which also bounds the keep-alive wait), a request body
//! that sends nothing for `body_timeout` is cut, and a connection that moves no byte for
//! `idle_timeout` while no handler works for it is closed (a large upload or download that
//! keeps moving is never cut). Connections are capped: at the cap a new connection displaces
//! the oldest one that never finished sending its headers (then the oldest idle keep-alive
//! one), so a flood of half-sent requests cannot starve PXE or the UI. Live streams (SSE
//! answers) are exempt from the idle timeout and count against their own cap.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use crate::config::Limits;

/// One connection's bookkeeping, shared by its task, its service and the reaper.
struct Conn {
    accepted: Instant,
    /// Milliseconds since the listener started, at the last byte read or written.
    last_active: AtomicU64,
    /// Requests whose handler is still working (no answer yet).
    handling: AtomicU32,
    /// Answers whose body is still being sent.
    bodies: AtomicU32,
    /// Live streams open on this connection.
    streaming: AtomicU32,
    /// Whether any request's headers arrived.
    served: AtomicBool,
    /// Told to close (a victim of the cap, or idle): never picked again.
    doomed: AtomicBool,
    kill: Notify,
}

impl Conn {
    fn close(&self) {
        self.doomed.store(true, Ordering::Relaxed);
        self.kill.notify_one();
    }
}

/// Every open connection, for the cap, the reaper and `/metrics`.
pub struct Conns {
    base: Instant,
    limits: Limits,
    next_id: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Conn>>>,
    streams: Arc<Semaphore>,
    /// Connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections closed for inactivity.
    pub timed_out: AtomicU64,
    /// Live streams refused at their cap.
    pub streams_refused: AtomicU64,
}

impl Conns {
    pub fn new(limits: Limits) -> Conns {
        Conns {
            base: Instant::now(),
            limits,
            next_id: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            evicted: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            streams_refused: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Live streams open now.
    pub fn streams_open(&self) -> usize {
        self.limits.max_streams - self.streams.available_permits()
    }

    /// Make room for one more connection: below the cap, nothing to do; at it, close the
    /// oldest connection that never finished its headers, else the longest-idle keep-alive
    /// one. False when every connection is busy (the new one is then turned away).
    fn make_room(&self) -> bool {
        let Ok(map) = self.map.lock() else {
            return false;
        };
        if map.len() < self.limits.max_connections {
            return true;
        }
        let idle = |c: &&Arc<Conn>| {
            !c.doomed.load(Ordering::Relaxed)
                && c.handling.load(Ordering::Relaxed) == 0
                && c.bodies.load(Ordering::Relaxed) == 0
                && c.streaming.load(Ordering::Relaxed) == 0
        };
        let victim = map
            .values()
            .filter(|c| idle(c) && !c.served.load(Ordering::Relaxed))
            .min_by_key(|c| c.accepted)
            .or_else(|| {
                map.values()
                    .filter(idle)
                    .min_by_key(|c| c.last_active.load(Ordering::Relaxed))
            });
        match victim {
            Some(v) => {
                v.close();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Close connections that moved nothing for the idle timeout while no handler worked for
    /// them and no live stream was open on them.
    fn reap(&self) {
        let now = self.now_ms();
        let limit = self.limits.idle_timeout.as_millis() as u64;
        let Ok(map) = self.map.lock() else {
            return;
        };
        for c in map.values() {
            if c.handling.load(Ordering::Relaxed) == 0
                && c.streaming.load(Ordering::Relaxed) == 0
                && !c.doomed.load(Ordering::Relaxed)
                && now.saturating_sub(c.last_active.load(Ordering::Relaxed)) > limit
            {
                c.close();
                self.timed_out.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Put the connection's guards on an answer; an SSE answer takes a stream slot (503 when
    /// none is free).
    fn wrap(&self, conn: &Arc<Conn>, res: Response<Body>) -> Response<Body> {
        let sse = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let guarded = |res: Response<Body>, stream: Option<OwnedSemaphorePermit>| {
            if stream.is_some() {
                conn.streaming.fetch_add(1, Ordering::Relaxed);
            } else {
                conn.bodies.fetch_add(1, Ordering::Relaxed);
            }
            let guard = Guard {
                conn: conn.clone(),
                stream,
            };
            res.map(|b| {
                Body::new(Guarded {
                    inner: b,
                    _guard: guard,
                })
            })
        };
        if !sse {
            return guarded(res, None);
        }
        match self.streams.clone().try_acquire_owned() {
            Ok(permit) => guarded(res, Some(permit)),
            Err(_) => {
                self.streams_refused.fetch_add(1, Ordering::Relaxed);
                let mut busy = Response::new(Body::from("too many live streams; try again\n"));
                *busy.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                busy.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                guarded(busy, None)
            }
        }
    }
}

/// Released with the answer's body: the body count or the stream slot.
struct Guard {
    conn: Arc<Conn>,
    stream: Option<OwnedSemaphorePermit>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.stream.is_some() {
            self.conn.streaming.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.conn.bodies.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// An answer body that holds its [`Guard`] until it is sent or dropped.
struct Guarded {
    inner: Body,
    _guard: Guard,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails when no data arrives for `timeout` (measured from the handler's
/// first read, so a handler that reads late is not penalised).
struct IdleBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(s) = this.sleep.as_mut() {
                    s.as_mut().reset(tokio::time::Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|r| r.map_err(axum::Error::new)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("the request body sent nothing for {} s", timeout.as_secs()),
                        )))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting each byte moved as activity.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Tracked {
    fn touch(&self) {
        self.conn
            .last_active
            .store(self.conns.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Request bodies declared at most this long are read before the handler runs (the smallest
/// `[tuning] max_body_bytes`, so a body over the limit is still refused before it is read).
const PREREAD: usize = 1024;

/// How long a stopping server waits for answers in progress.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve `router` on `listener` until `shutdown` resolves, then let answers in progress finish
/// (at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    conns: Arc<Conns>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let reaper = {
        let conns = conns.clone();
        let every = (conns.limits.idle_timeout / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                conns.reap();
            }
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !conns.make_room() {
            tracing::warn!("{peer}: every connection is busy; turned away");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        spawn_conn(stream, peer, router.clone(), conns.clone(), stop_rx.clone());
    }
    reaper.abort();
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + DRAIN;
    while conns.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn spawn_conn(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    conns: Arc<Conns>,
    mut stop: watch::Receiver<bool>,
) {
    let id = conns.next_id.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        accepted: Instant::now(),
        last_active: AtomicU64::new(conns.now_ms()),
        handling: AtomicU32::new(0),
        bodies: AtomicU32::new(0),
        streaming: AtomicU32::new(0),
        served: AtomicBool::new(false),
        doomed: AtomicBool::new(false),
        kill: Notify::new(),
    });
    if let Ok(mut map) = conns.map.lock() {
        map.insert(id, conn.clone());
    }
    tokio::spawn(async move {
        let io = TokioIo::new(Tracked {
            inner: stream,
            conn: conn.clone(),
            conns: conns.clone(),
        });
        let service = {
            let (conn, conns) = (conn.clone(), conns.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let (router, conn, conns) = (router.clone(), conn.clone(), conns.clone());
                async move {
                    conn.served.store(true, Ordering::Relaxed);
                    conn.handling.fetch_add(1, Ordering::Relaxed);
                    let timeout = conns.limits.body_timeout;
                    let declared = req
                        .headers()
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<usize>().ok());
                    let mut req = req.map(|b| {
                        Body::new(IdleBody {
                            inner: b,
                            timeout,
                            sleep: None,
                        })
                    });
                    // A small body is read before the handler runs: a handler that answers
                    // without reading it (a 401, a 403) then leaves the connection reusable —
                    // hyper closes a connection whose unread body has not fully arrived.
                    if let Some(n) = declared.filter(|n| (1..=PREREAD).contains(n)) {
                        let (parts, body) = req.into_parts();
                        match axum::body::to_bytes(body, n).await {
                            Ok(b) => req = Request::from_parts(parts, Body::from(b)),
                            Err(_) => {
                                conn.handling.fetch_sub(1, Ordering::Relaxed);
                                let mut bad =
                                    Response::new(Body::from("the request body was cut\n"));
                                *bad.status_mut() = StatusCode::BAD_REQUEST;
                                return Ok(conns.wrap(&conn, bad));
                            }
                        }
                    }
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let res = match router.oneshot(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    conn.handling.fetch_sub(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(conns.wrap(&conn, res))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(conns.limits.header_timeout);
        let http = builder.serve_connection(io, service);
        tokio::pin!(http);
        tokio::select! {
            _ = http.as_mut() => {}
            _ = conn.kill.notified() => {}
            _ = stop.changed() => {
                http.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = http.as_mut() => {}
                    _ = conn.kill.notified() => {}
                    _ = tokio::time::sleep(DRAIN) => {}
                }
            }
        }
        if let Ok(mut map) = conns.map.lock() {
            map.remove(&id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(served: bool, handling: u32, age_ms: u64) -> Arc<Conn> {
        Arc::new(Conn {
            accepted: Instant::now() - Duration::from_millis(age_ms),
            last_active: AtomicU64::new(0),
            handling: AtomicU32::new(handling),
            bodies: AtomicU32::new(0),
            streaming: AtomicU32::new(0),
            served: AtomicBool::new(served),
            doomed: AtomicBool::new(false),
            kill: Notify::new(),
        })
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_half_sent_connection_goes() {
        let limits = Limits {
            max_connections: 3,
            ..Limits::default()
        };
        let conns = Conns::new(limits);
        let busy = conn(true, 1, 900);
        let old_half = conn(false, 0, 500);
        let young_half = conn(false, 0, 100);
        {
            let mut m = conns.map.lock().unwrap();
            m.insert(1, busy.clone());
            m.insert(2, old_half.clone());
            m.insert(3, young_half.clone());
        }
        assert!(conns.make_room());
        let hit = |c: &Arc<Conn>| {
            let c = c.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(20), c.kill.notified())
                    .await
                    .is_ok()
            }
        };
        assert!(hit(&old_half).await);
        assert!(!hit(&young_half).await);
        assert!(!hit(&busy).await);
        // The next newcomer takes the next half-sent one, not the one already closing.
        assert!(conns.make_room());
        assert!(hit(&young_half).await);
        // Every connection busy: the newcomer is turned away.
        let conns = Conns::new(limits);
        {
            let mut m = conns.map.lock().unwrap();
            for i in 0..3 {
                m.insert(i, conn(true, 1, 10));
            }
        }
        assert!(!conns.make_room());
    }
}
