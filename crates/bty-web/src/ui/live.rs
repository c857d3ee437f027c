//! Live fragments for htmx's SSE extension: `/ui/live/machines` (the machines table body, with
//! the page's filter), `/ui/live/dashboard` (counts and flashes in progress) and
//! `/ui/live/machines/{mac}` (one machine's state). Each sends the fragment on connect, then
//! again after machine changes, at most once per [`MIN_RENDER_INTERVAL`]: a burst of changes
//! renders once, and the render is told which machines changed.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::machines::{Filter, rows_html};
use crate::state::AppState;

/// Renders of one stream are at least this far apart, whatever the rate of changes (a storm
/// of PXE contacts cannot make every open tab re-render the table for each).
pub const MIN_RENDER_INTERVAL: Duration = Duration::from_millis(300);

/// What changed since a stream's last render: these machines, or possibly any (the stream
/// fell behind the bus).
#[derive(Debug, Default, Clone)]
pub struct Changed {
    pub macs: HashSet<String>,
    pub all: bool,
}

impl Changed {
    fn is_empty(&self) -> bool {
        !self.all && self.macs.is_empty()
    }

    fn note(&mut self, msg: &str) {
        match mac_of(msg) {
            Some(m) => {
                self.macs.insert(m.to_string());
            }
            None => self.all = true,
        }
    }
}

/// The MAC a bus message names (`{"mac":"aa:bb:…",…}`).
fn mac_of(msg: &str) -> Option<&str> {
    let at = msg.find("\"mac\":\"")? + 7;
    msg.get(at..at + 17)
}

/// `relevant` picks the bus messages (JSON naming the changed machine) that call for a new
/// render; a subscriber that fell behind renders anyway. `render` gives the fragments, each
/// under its event name. Changes are coalesced: after a render, the stream collects what
/// changes during [`MIN_RENDER_INTERVAL`] and renders once for all of them.
fn sse<F, Fut, R>(
    s: AppState,
    relevant: R,
    render: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(AppState, Changed) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<(&'static str, String)>> + Send,
    R: Fn(&str) -> bool + Send + Sync + 'static,
{
    let rx = s.bus.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, None::<Instant>, s, render, relevant),
        move |(mut rx, last, s, render, relevant)| async move {
            let mut changed = Changed::default();
            if let Some(last) = last {
                // Wait for a change that matters, then gather what else changes until the next
                // render is due.
                let due = tokio::time::Instant::from_std(last + MIN_RENDER_INTERVAL);
                loop {
                    let r = if changed.is_empty() {
                        rx.recv().await
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep_until(due) => break,
                            r = rx.recv() => r,
                        }
                    };
                    match r {
                        Ok(msg) if relevant(&msg) => changed.note(&msg),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => changed.all = true,
                        Err(RecvError::Closed) => return None,
                    }
                }
                // Whatever is queued now is covered by this render too.
                while let Ok(msg) = rx.try_recv() {
                    if relevant(&msg) {
                        changed.note(&msg);
                    }
                }
            } else {
                changed.all = true;
            }
            let now = Instant::now();
            s.metrics.live_renders.fetch_add(1, Ordering::Relaxed);
            // SSE data cannot carry a carriage return; HTML does not need one.
            let events: Vec<Result<Event, Infallible>> = render(s.clone(), changed)
                .await
                .into_iter()
                .map(|(name, html)| Ok(Event::default().event(name).data(html.replace('\r', ""))))
                .collect();
            Some((
                futures_util::stream::iter(events),
                (rx, Some(now), s, render, relevant),
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
        move |s, _changed| {
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
        move |s, _changed| {
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
        move |s, _changed| {
            let mac = mac.clone();
            async move {
                let h = super::machine::status_html(&s, &mac).await;
                h.map(|h| ("status", h)).into_iter().collect()
            }
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn changes_name_their_machine() {
        let mut c = super::Changed::default();
        c.note(r#"{"mac":"aa:bb:cc:dd:ee:ff","discovered":false}"#);
        c.note(r#"{"mac":"aa:bb:cc:dd:ee:ff","deleted":true}"#);
        assert_eq!(c.macs.len(), 1);
        assert!(!c.all);
        c.note("{}");
        assert!(c.all);
    }
}
