//! Image-cache rows: one per blob, complete or filling (with the watermark known to be on
//! disk), and which blobs are pinned by a machine bound to their entry in a flash mode.

use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;

/// A blob as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobRow {
    /// The blob's key: its sha256 (hex) when the digest was known before the fill, else
    /// `src-<hash of ref and validator>`.
    pub key: String,
    pub image_ref: String,
    pub src: String,
    /// The digest the bytes must have (the catalog's `sha256`, the OCI layer digest).
    pub expected_sha: Option<String>,
    /// The digest computed on fill (complete blobs).
    pub sha256: Option<String>,
    /// The origin's ETag or Last-Modified when the fill started.
    pub validator: Option<String>,
    pub size: Option<u64>,
    /// Bytes known to be on disk.
    pub filled: u64,
    /// `filling` or `complete`.
    pub state: String,
    pub created_at: String,
    /// Unix seconds.
    pub last_used: i64,
    pub hits: u64,
    /// Unix seconds of the last check with the origin (blobs without a known digest).
    pub validated_at: i64,
}

pub const FILLING: &str = "filling";
pub const COMPLETE: &str = "complete";

const COLUMNS: &str = "key, image_ref, src, expected_sha, sha256, validator, size, filled, state, created_at, last_used, hits, validated_at";

fn from_row(r: &Row) -> rusqlite::Result<BlobRow> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    Ok(BlobRow {
        key: r.get(0)?,
        image_ref: r.get(1)?,
        src: r.get(2)?,
        expected_sha: r.get(3)?,
        sha256: r.get(4)?,
        validator: r.get(5)?,
        size: r.get::<_, Option<i64>>(6)?.map(|v| v.max(0) as u64),
        filled: n(7)?,
        state: r.get(8)?,
        created_at: r.get(9)?,
        last_used: r.get(10)?,
        hits: n(11)?,
        validated_at: r.get(12)?,
    })
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<BlobRow>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM cache_blobs ORDER BY last_used DESC, key"
    ))?
    .query_map([], from_row)?
    .collect()
}

pub fn get(c: &Connection, key: &str) -> rusqlite::Result<Option<BlobRow>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM cache_blobs WHERE key = ?1"))?
        .query_row([key], from_row)
        .optional()
}

/// The newest blob of an entry (what a digest-less entry is served from).
pub fn newest_for_ref(c: &Connection, image_ref: &str) -> rusqlite::Result<Option<BlobRow>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM cache_blobs WHERE image_ref = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"
    ))?
    .query_row([image_ref], from_row)
    .optional()
}

/// Insert a new filling row; false when the key exists.
pub fn insert(c: &Connection, b: &BlobRow) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO cache_blobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?
        .execute(rusqlite::params![
            b.key,
            b.image_ref,
            b.src,
            b.expected_sha,
            b.sha256,
            b.validator,
            b.size.map(|v| v as i64),
            b.filled as i64,
            b.state,
            b.created_at,
            b.last_used,
            b.hits as i64,
            b.validated_at
        ])?;
    Ok(n == 1)
}

/// Record the watermark that is on disk (and the size once the origin told it).
pub fn set_filled(
    c: &Connection,
    key: &str,
    filled: u64,
    size: Option<u64>,
    validator: Option<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE cache_blobs SET filled = ?2, size = COALESCE(?3, size), validator = COALESCE(?4, validator) WHERE key = ?1",
    )?
    .execute(rusqlite::params![
        key,
        filled as i64,
        size.map(|v| v as i64),
        validator
    ])?;
    Ok(())
}

pub fn set_complete(c: &Connection, key: &str, size: u64, sha256: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE cache_blobs SET state = 'complete', filled = ?2, size = ?2, sha256 = ?3 WHERE key = ?1",
    )?
    .execute(rusqlite::params![key, size as i64, sha256])?;
    Ok(())
}

/// A request was answered from this blob.
pub fn touch(c: &Connection, key: &str, now: i64) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE cache_blobs SET last_used = ?2, hits = hits + 1 WHERE key = ?1")?
        .execute(rusqlite::params![key, now])?;
    Ok(())
}

pub fn set_validated(c: &Connection, key: &str, now: i64) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE cache_blobs SET validated_at = ?2 WHERE key = ?1")?
        .execute(rusqlite::params![key, now])?;
    Ok(())
}

pub fn delete(c: &Connection, key: &str) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached("DELETE FROM cache_blobs WHERE key = ?1")?
        .execute([key])?
        == 1)
}

/// The refs and digests of the entries bound to a machine in a flash mode: their blobs are
/// pinned (never evicted, fills resumed at start).
pub fn pinned_entries(c: &Connection) -> rusqlite::Result<Vec<(String, Option<String>)>> {
    c.prepare_cached(
        "SELECT DISTINCT e.bty_image_ref, e.disk_image_sha FROM machines m
         JOIN catalog_entries e ON e.bty_image_ref = m.bty_image_ref
         WHERE m.boot_mode IN ('bty-flash-always', 'bty-flash-once')",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// The keys and refs of complete blobs (what `/images` calls `cached`).
pub fn complete(c: &Connection) -> rusqlite::Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    let mut st =
        c.prepare_cached("SELECT key, image_ref FROM cache_blobs WHERE state = 'complete'")?;
    for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (k, r) = r?;
        out.insert(k);
        out.insert(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, r: &str, created: &str) -> BlobRow {
        BlobRow {
            key: key.into(),
            image_ref: r.into(),
            src: "http://o/x.img".into(),
            expected_sha: None,
            sha256: None,
            validator: Some("\"v1\"".into()),
            size: None,
            filled: 0,
            state: FILLING.into(),
            created_at: created.into(),
            last_used: 1,
            hits: 0,
            validated_at: 0,
        }
    }

    #[tokio::test]
    async fn rows_fill_complete_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("s.db")).unwrap();
        let out = db
            .write(|c| {
                assert!(insert(c, &row("a", "r1", "2026-01-01"))?);
                assert!(!insert(c, &row("a", "r1", "2026-01-01"))?);
                assert!(insert(c, &row("b", "r1", "2026-01-02"))?);
                set_filled(c, "a", 4096, Some(8192), None)?;
                set_complete(c, "b", 10, "ab")?;
                touch(c, "b", 99)?;
                let newest = newest_for_ref(c, "r1")?.map(|b| b.key);
                let a = get(c, "a")?;
                let listed = list(c)?.into_iter().map(|b| b.key).collect::<Vec<_>>();
                assert!(delete(c, "a")?);
                assert!(!delete(c, "a")?);
                Ok((newest, a, listed, get(c, "b")?))
            })
            .await
            .unwrap();
        assert_eq!(out.0.as_deref(), Some("b"));
        let a = out.1.unwrap();
        assert_eq!(
            (a.filled, a.size, a.state.as_str()),
            (4096, Some(8192), FILLING)
        );
        assert_eq!(out.2, ["b", "a"]);
        let b = out.3.unwrap();
        assert_eq!(
            (b.state.as_str(), b.size, b.hits, b.last_used),
            (COMPLETE, Some(10), 1, 99)
        );
    }
}
