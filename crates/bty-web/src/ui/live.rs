//! Live fragments for htmx's SSE extension: `/ui/live/machines` (the machines table body, with
//! the page's filter) and `/ui/live/dashboard` (counts and flashes in progress). Each sends the
//! fragment on connect, then again after machine changes; a burst of changes renders once.

use std::convert::Infallible;
use std::future::Future;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::machines::{Filter, rows_html};
use crate::app::AppState;

fn sse<F, Fut>(
    s: AppState,
    event: &'static str,
    render: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(AppState) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<String>> + Send,
{
    let rx = s.bus.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, true, s, render),
        move |(mut rx, first, s, render)| async move {
            if !first {
                match rx.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
                // Whatever else is queued is covered by this one render.
                while let Ok(_) | Err(TryRecvError::Lagged(_)) = rx.try_recv() {}
            }
            // SSE data cannot carry a carriage return; HTML does not need one.
            let html = render(s.clone())
                .await
                .unwrap_or_default()
                .replace('\r', "");
            Some((
                Ok(Event::default().event(event).data(html)),
                (rx, false, s, render),
            ))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub async fn machines(
    State(s): State<AppState>,
    Query(f): Query<Filter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    sse(s, "rows", move |s| {
        let f = f.clone();
        async move { rows_html(&s, &f).await }
    })
}

pub async fn dashboard(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    sse(s, "live", |s| async move {
        super::dashboard::live_html(&s).await
    })
}
