//! Live and operational views: `GET /events/machines` (server-sent events, one per changed
//! machine, heartbeats every 15 s, `resync` when a subscriber fell behind — publishing never
//! waits for a subscriber), `GET /metrics` (Prometheus text), and the request counter.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn machines(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.bus.subscribe();
    let hello =
        futures_util::stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let changes = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(msg) => Event::default().event("machine").data(msg),
            Err(RecvError::Lagged(n)) => Event::default()
                .event("resync")
                .data(format!("{{\"missed\":{n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    Sse::new(futures_util::StreamExt::chain(hello, changes)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("heartbeat"),
    )
}

/// Count answers by route and status: a shared read lock and an atomic add once the pair has
/// been seen (no allocation, no exclusive lock on the hot path).
pub async fn count_requests(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = res.status().as_u16();
    if let Ok(map) = s.metrics.requests.read()
        && let Some(n) = map.get(route).and_then(|r| r.get(&status))
    {
        n.fetch_add(1, Ordering::Relaxed);
        return res;
    }
    if let Ok(mut map) = s.metrics.requests.write() {
        map.entry(route.to_string())
            .or_default()
            .entry(status)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
    res
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let modes: Vec<(String, i64)> = s.db.read(crate::db::machines::count_by_mode).await?;
    let m = &s.metrics;
    let mut out = String::new();
    out.push_str("# HELP bty_http_requests_total HTTP answers by route and status.\n# TYPE bty_http_requests_total counter\n");
    if let Ok(map) = m.requests.read() {
        let mut rows: Vec<(&String, u16, u64)> = map
            .iter()
            .flat_map(|(route, by_status)| {
                by_status
                    .iter()
                    .map(move |(st, n)| (route, *st, n.load(Ordering::Relaxed)))
            })
            .collect();
        rows.sort();
        for (route, status, n) in rows {
            out.push_str(&format!(
                "bty_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}\n",
                escape_label(route)
            ));
        }
    }
    for (name, help, v) in [
        (
            "bty_pxe_contacts_total",
            "Per-machine iPXE scripts served.",
            m.pxe_contacts.load(Ordering::Relaxed),
        ),
        (
            "bty_flashes_done_total",
            "Flashes reported done.",
            m.flashes_done.load(Ordering::Relaxed),
        ),
        (
            "bty_flashes_failed_total",
            "Flashes reported failed.",
            m.flashes_failed.load(Ordering::Relaxed),
        ),
        (
            "bty_ui_live_renders_total",
            "Live UI fragments rendered, all streams together.",
            m.live_renders.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_hits_total",
            "Image requests answered from the cache or a running fill.",
            s.cache.stats.hits.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_misses_total",
            "Image requests that started a fill.",
            s.cache.stats.misses.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_origin_bytes_total",
            "Bytes received from image origins (fills and pass-through ranges).",
            s.cache.stats.origin_bytes.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_served_bytes_total",
            "Image bytes sent to clients by the cache.",
            s.cache.stats.served_bytes.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_fills_total",
            "Fills completed and verified.",
            s.cache.stats.fills.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_fill_failures_total",
            "Fills discarded (origin error, short body, digest mismatch, no space).",
            s.cache.stats.fill_failures.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_evictions_total",
            "Blobs evicted to stay under the cap.",
            s.cache.stats.evictions.load(Ordering::Relaxed),
        ),
        (
            "bty_cache_passthrough_total",
            "Ranges far ahead of a fill, passed through from the origin.",
            s.cache.stats.passthrough.load(Ordering::Relaxed),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    let c = &s.conns;
    for (name, kind, help, v) in [
        (
            "bty_http_connections",
            "gauge",
            "Open HTTP connections.",
            c.open() as u64,
        ),
        (
            "bty_http_streams",
            "gauge",
            "Open live streams (SSE).",
            c.streams_open() as u64,
        ),
        (
            "bty_http_connections_evicted_total",
            "counter",
            "Connections closed at the cap to make room (half-sent ones first).",
            c.evicted.load(Ordering::Relaxed),
        ),
        (
            "bty_http_connections_timed_out_total",
            "counter",
            "Connections closed after the idle timeout.",
            c.timed_out.load(Ordering::Relaxed),
        ),
        (
            "bty_http_streams_refused_total",
            "counter",
            "Live streams refused at their cap.",
            c.streams_refused.load(Ordering::Relaxed),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    out.push_str("# HELP bty_machines Machines by boot mode.\n# TYPE bty_machines gauge\n");
    for (mode, n) in modes {
        out.push_str(&format!(
            "bty_machines{{boot_mode=\"{}\"}} {n}\n",
            escape_label(&mode)
        ));
    }
    out.push_str(&format!(
        "# HELP bty_flashes_in_progress Machines that reported progress in the last 5 minutes.\n# TYPE bty_flashes_in_progress gauge\nbty_flashes_in_progress {}\n",
        s.flashes_in_progress()
    ));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
