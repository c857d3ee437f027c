//! Live fragments for htmx's SSE extension: `/ui/live/machines` (the machines table body, with
//! the page's filter), `/ui/live/dashboard` (counts and flashes in progress) and
//! `/ui/live/machines/{mac}` (one machine's state). Each sends the
//! fragment on connect, then again after machine changes; a burst of changes renders once.

use std::convert::Infallible;
use std::future::Future;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::machines::{Filter, rows_html};
use crate::app::AppState;

/// `relevant` picks the bus messages (JSON naming the changed machine) that call for a new
/// render; a subscriber that fell behind renders anyway. `render` gives the fragments, each
/// under its event name.
fn sse<F, Fut, R>(
    s: AppState,
    relevant: R,
    render: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(AppState) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<(&'static str, String)>> + Send,
    R: Fn(&str) -> bool + Send + Sync + 'static,
{
    let rx = s.bus.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, true, s, render, relevant),
        move |(mut rx, first, s, render, relevant)| async move {
            if !first {
                loop {
                    match rx.recv().await {
                        Ok(msg) if !relevant(&msg) => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return None,
                    }
                }
                // Whatever else is queued is covered by this one render.
                while let Ok(_) | Err(TryRecvError::Lagged(_)) = rx.try_recv() {}
            }
            // SSE data cannot carry a carriage return; HTML does not need one.
            let events: Vec<Result<Event, Infallible>> = render(s.clone())
                .await
                .into_iter()
                .map(|(name, html)| Ok(Event::default().event(name).data(html.replace('\r', ""))))
                .collect();
            Some((
                futures_util::stream::iter(events),
                (rx, false, s, render, relevant),
            ))
        },
    );
    Sse::new(futures_util::StreamExt::flatten(stream)).keep_alive(KeepAlive::default())
}

/// The machines table (with the page's filter) and the machine activity list (whose
/// acknowledge buttons carry this session's CSRF token).
pub async fn machines(
    State(s): State<AppState>,
    super::Operator { session, .. }: super::Operator,
    Query(f): Query<Filter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let csrf = s.keys.csrf(&session.id);
    sse(
        s,
        |_| true,
        move |s| {
            let (f, csrf) = (f.clone(), csrf.clone());
            async move {
                let mut out = Vec::new();
                if let Some(h) = rows_html(&s, &f).await {
                    out.push(("rows", h));
                }
                if let Some(h) = super::machines::activity_html(&s, &csrf).await {
                    out.push(("activity", h));
                }
                out
            }
        },
    )
}

/// The dashboard's counts and flashes, and its failures list (whose acknowledge buttons carry
/// this session's CSRF token).
pub async fn dashboard(
    State(s): State<AppState>,
    super::Operator { session, .. }: super::Operator,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let csrf = s.keys.csrf(&session.id);
    sse(
        s,
        |_| true,
        move |s| {
            let csrf = csrf.clone();
            async move {
                let mut out = Vec::new();
                if let Some(h) = super::dashboard::live_html(&s).await {
                    out.push(("live", h));
                }
                if let Some(h) = super::dashboard::failures_html(&s, &csrf).await {
                    out.push(("failures", h));
                }
                out
            }
        },
    )
}

/// `/ui/live/machines/{mac}`: one machine's state, progress and timestamps.
pub async fn machine(
    State(s): State<AppState>,
    super::MacPath(mac): super::MacPath,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mac = mac.to_string();
    let needle = format!("\"mac\":\"{mac}\"");
    sse(
        s,
        move |msg| msg.contains(&needle),
        move |s| {
            let mac = mac.clone();
            async move {
                let h = super::machine::status_html(&s, &mac).await;
                h.map(|h| ("status", h)).into_iter().collect()
            }
        },
    )
}
