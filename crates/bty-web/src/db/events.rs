//! The audit log: recording events (inside the caller's write; repeats folded where asked)
//! and querying them with upstream's filters and `before_id` paging, newest first.

use bty_proto::event::Event;
use rusqlite::OptionalExtension;
use rusqlite::{Connection, params_from_iter};

/// What an event says, before it is stored.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub kind: &'static str,
    pub subject_kind: Option<&'static str>,
    pub subject_id: Option<String>,
    pub actor: Option<&'static str>,
    pub source_ip: Option<String>,
    pub summary: String,
    pub details: Option<serde_json::Value>,
}

pub fn record(c: &Connection, e: &NewEvent) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO events (ts, kind, subject_kind, subject_id, actor, source_ip, summary, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(
        rusqlite::params![
            super::now(),
            e.kind,
            e.subject_kind,
            e.subject_id,
            e.actor,
            e.source_ip,
            e.summary,
            e.details.as_ref().map(|d| d.to_string()),
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// Record `e`, or fold it into the subject's latest event when that one is the same (kind,
/// address and summary) and recent: its time moves forward and `details.repeats` counts the
/// contacts it stands for. A machine that PXE-boots in a loop costs one row, not one a boot.
pub fn record_folded(c: &Connection, e: &NewEvent) -> rusqlite::Result<()> {
    const FOLD_WITHIN_SECS: i64 = 3600;
    let last: Option<(i64, String, Option<String>, String, String)> = c
        .prepare_cached(
            "SELECT id, kind, source_ip, summary, ts FROM events
             WHERE subject_kind = ?1 AND subject_id = ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(rusqlite::params![e.subject_kind, e.subject_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    if let Some((id, kind, ip, summary, ts)) = last
        && kind == e.kind
        && ip == e.source_ip
        && summary == e.summary
        // Timestamps share one fixed-width UTC format, so they compare as text.
        && ts >= super::timestamp(
            time::OffsetDateTime::now_utc() - time::Duration::seconds(FOLD_WITHIN_SECS),
        )
    {
        c.prepare_cached(
            "UPDATE events SET ts = ?2,
                 details = json_set(COALESCE(?3, details, '{}'), '$.repeats',
                     COALESCE(json_extract(details, '$.repeats'), 1) + 1)
             WHERE id = ?1",
        )?
        .execute(rusqlite::params![
            id,
            super::now(),
            e.details.as_ref().map(|d| d.to_string())
        ])?;
        return Ok(());
    }
    record(c, e)?;
    Ok(())
}

/// `GET /events` filters.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Filter {
    pub kind: Option<String>,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub actor: Option<String>,
    pub source_ip: Option<String>,
    /// Any non-empty value: only failures (`kind` ending in `failed`).
    pub failed: Option<String>,
    /// Free text over kind, subject, summary and details.
    pub q: Option<String>,
    /// Any non-empty value: only events not yet acknowledged.
    pub unacked: Option<String>,
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Kinds renamed to upstream's spelling, old → new; the old one still works as a filter.
const RENAMED: [(&str, &str); 1] = [("machine.flash.failed", "machine.flash_failed")];

/// The kind stored today for a filter that may use an old spelling.
pub fn current_kind(kind: &str) -> &str {
    RENAMED
        .iter()
        .find(|(old, _)| *old == kind)
        .map_or(kind, |(_, new)| new)
}

pub fn query(c: &Connection, f: &Filter) -> rusqlite::Result<Vec<Event>> {
    let mut sql = String::from(
        "SELECT id, ts, kind, subject_kind, subject_id, actor, source_ip, summary, details, acknowledged
         FROM events WHERE 1=1",
    );
    let mut args: Vec<String> = Vec::new();
    for (col, v) in [
        ("kind", &f.kind),
        ("subject_kind", &f.subject_kind),
        ("subject_id", &f.subject_id),
        ("actor", &f.actor),
        ("source_ip", &f.source_ip),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            let v = if col == "kind" { current_kind(v) } else { v };
            args.push(v.to_string());
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        }
    }
    if f.failed.as_ref().is_some_and(|v| !v.is_empty()) {
        sql.push_str(" AND kind LIKE '%failed'");
    }
    if f.unacked.as_ref().is_some_and(|v| !v.is_empty()) {
        sql.push_str(" AND acknowledged = 0");
    }
    if let Some(q) = f.q.as_ref().filter(|q| !q.trim().is_empty()) {
        let escaped = q
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        args.push(format!("%{escaped}%"));
        let n = args.len();
        sql.push_str(&format!(
            " AND (kind LIKE ?{n} ESCAPE '\\' OR subject_id LIKE ?{n} ESCAPE '\\' OR summary LIKE ?{n} ESCAPE '\\' OR details LIKE ?{n} ESCAPE '\\' OR source_ip LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(b) = f.before_id {
        args.push(b.to_string());
        sql.push_str(&format!(" AND id < CAST(?{} AS INTEGER)", args.len()));
    }
    let limit = f.limit.unwrap_or(50).clamp(1, 500);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(args.iter()), |r| {
        let details: Option<String> = r.get(8)?;
        Ok(Event {
            id: r.get(0)?,
            ts: r.get(1)?,
            kind: r.get(2)?,
            subject_kind: r.get(3)?,
            subject_id: r.get(4)?,
            actor: r.get(5)?,
            source_ip: r.get(6)?,
            summary: r.get(7)?,
            details: details.and_then(|d| serde_json::from_str(&d).ok()),
            acknowledged: r.get::<_, i64>(9)? != 0,
        })
    })?;
    rows.collect()
}

/// Delete up to `chunk` of the oldest events stamped before `cutoff` (a timestamp in the stored
/// format); how many went. Ids grow with time, so the oldest rows come first and a log with
/// nothing to prune costs one row read.
pub fn prune(c: &Connection, cutoff: &str, chunk: usize) -> rusqlite::Result<usize> {
    let oldest: Option<String> = c
        .prepare_cached("SELECT ts FROM events ORDER BY id LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    if oldest.is_none_or(|ts| ts.as_str() >= cutoff) {
        return Ok(0);
    }
    c.prepare_cached(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ?1 ORDER BY id LIMIT ?2)",
    )?
    .execute(rusqlite::params![cutoff, chunk as i64])
}

/// Mark one event acknowledged; false if there is none with that id.
pub fn ack(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("UPDATE events SET acknowledged = 1 WHERE id = ?1")?
            .execute([id])?
            == 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(c: &Connection, ts: &str) {
        record(
            c,
            &NewEvent {
                kind: "machine.discovered",
                summary: ts.into(),
                ..Default::default()
            },
        )
        .unwrap();
        c.execute(
            "UPDATE events SET ts = ?1 WHERE id = last_insert_rowid()",
            [ts],
        )
        .unwrap();
    }

    #[test]
    fn prune_takes_the_oldest_in_chunks() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations::migrate(&mut c, usize::MAX).unwrap();
        assert_eq!(prune(&c, "2026-01-01", 10).unwrap(), 0, "empty log");
        for d in 1..=9 {
            at(&c, &format!("2025-12-0{d}T00:00:00.000000+00:00"));
        }
        at(&c, "2026-02-01T00:00:00.000000+00:00");
        assert_eq!(prune(&c, "2026-01-01", 4).unwrap(), 4);
        assert_eq!(prune(&c, "2026-01-01", 4).unwrap(), 4);
        assert_eq!(prune(&c, "2026-01-01", 4).unwrap(), 1);
        assert_eq!(prune(&c, "2026-01-01", 4).unwrap(), 0);
        let left: Vec<String> = c
            .prepare("SELECT ts FROM events")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, vec!["2026-02-01T00:00:00.000000+00:00"]);
    }
}
