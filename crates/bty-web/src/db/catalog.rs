//! Catalog rows: insert (unique `src`), list by time added, delete by `src`, and which machines
//! are bound to an entry.

use bty_proto::catalog::CatalogEntry;
use rusqlite::{Connection, Row};

fn from_row(r: &Row) -> rusqlite::Result<CatalogEntry> {
    Ok(CatalogEntry {
        bty_image_ref: r.get(0)?,
        src: r.get(1)?,
        resolved_src: r.get(2)?,
        disk_image_sha: r.get(3)?,
        name: r.get(4)?,
        sha_url: r.get(5)?,
        format: r.get(6)?,
        size_bytes: r.get::<_, Option<i64>>(7)?.map(|n| n.max(0) as u64),
        description: r.get(8)?,
        added_at: r.get(9)?,
        arch: r.get(10)?,
        cache: !r.get::<_, bool>(11)?,
    })
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<CatalogEntry>> {
    let mut st = c.prepare_cached(
        "SELECT bty_image_ref, src, resolved_src, disk_image_sha, name, sha_url, format, size_bytes, description, added_at, arch, no_cache
         FROM catalog_entries ORDER BY added_at, rowid",
    )?;
    st.query_map([], from_row)?.collect()
}

/// Insert; false if an entry with the same `src` (or ref) exists.
pub fn insert(c: &Connection, e: &CatalogEntry) -> rusqlite::Result<bool> {
    let n = c.prepare_cached(
        "INSERT OR IGNORE INTO catalog_entries
         (bty_image_ref, src, resolved_src, disk_image_sha, name, sha_url, format, size_bytes, description, added_at, arch, no_cache)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")?
    .execute(
        rusqlite::params![
            e.bty_image_ref,
            e.src,
            e.resolved_src,
            e.disk_image_sha,
            e.name,
            e.sha_url,
            e.format,
            e.size_bytes.map(|n| n as i64),
            e.description,
            e.added_at,
            e.arch,
            !e.cache
        ],
    )?;
    Ok(n == 1)
}

pub fn delete_by_src(c: &Connection, src: &str) -> rusqlite::Result<Option<CatalogEntry>> {
    let found = list(c)?.into_iter().find(|e| e.src == src);
    if let Some(e) = &found {
        c.execute(
            "DELETE FROM catalog_entries WHERE bty_image_ref = ?1",
            [&e.bty_image_ref],
        )?;
    }
    Ok(found)
}

pub fn machines_using(c: &Connection, image_ref: &str) -> rusqlite::Result<Vec<String>> {
    let mut st =
        c.prepare_cached("SELECT mac FROM machines WHERE bty_image_ref = ?1 ORDER BY mac")?;
    st.query_map([image_ref], |r| r.get(0))?.collect()
}

/// The entry a blob route names (the cache's, the `/images` proxy's): by its digest, else by
/// its ref.
pub fn by_key(c: &Connection, key: &str) -> rusqlite::Result<Option<CatalogEntry>> {
    use rusqlite::OptionalExtension;
    c.prepare_cached(
        "SELECT bty_image_ref, src, resolved_src, disk_image_sha, name, sha_url, format, size_bytes, description, added_at, arch, no_cache
         FROM catalog_entries WHERE disk_image_sha = ?1 OR bty_image_ref = ?1
         ORDER BY disk_image_sha IS NOT ?1, added_at, rowid LIMIT 1",
    )?
    .query_row([key], from_row)
    .optional()
}
