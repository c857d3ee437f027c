//! Event log retention: before serving and then hourly, events older than `[events] retention_days`
//! are deleted, a few thousand per write so PXE traffic is never held up for long, and the
//! prune itself is logged as an `events.pruned` event.

use std::time::Duration;

use crate::db::events::{self, NewEvent};
use crate::state::AppState;

const CHUNK: usize = 5000;
const EVERY: Duration = Duration::from_secs(3600);

/// Delete the events older than the retention; how many went.
pub async fn prune_once(s: &AppState) -> usize {
    let days = s.cfg.event_retention_days;
    if days == 0 {
        return 0;
    }
    let cutoff = crate::db::timestamp(
        time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days)),
    );
    let mut total = 0;
    loop {
        let c = cutoff.clone();
        match s.db.write(move |db| events::prune(db, &c, CHUNK)).await {
            Ok(n) => {
                total += n;
                if n < CHUNK {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!("event retention: {e}");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!("event retention: deleted {total} events older than {days} days");
        let e = NewEvent {
            kind: "events.pruned",
            subject_kind: Some("events"),
            subject_id: None,
            actor: Some("system"),
            source_ip: None,
            summary: format!("deleted {total} events older than {days} days"),
            details: Some(
                serde_json::json!({ "deleted": total, "retention_days": days, "before": cutoff }),
            ),
        };
        let _ = s.db.write(move |db| events::record(db, &e)).await;
    }
    total
}

/// The hourly job (runs until the server stops); the first prune is the caller's, before
/// serving.
pub fn spawn(s: AppState) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            prune_once(&s).await;
        }
    });
}
