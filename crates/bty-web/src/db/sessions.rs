//! Server-side sessions: a cookie is valid only while its row exists and has not expired, so
//! logout and a password change revoke it. Expiry slides forward as the session is used.

use rusqlite::{Connection, OptionalExtension};

/// Session lifetime, renewed on use.
pub const TTL_SECS: i64 = 7 * 24 * 3600;

pub fn create(c: &Connection, id: &str, source_ip: Option<&str>) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO sessions (id, created_at, expires_at, source_ip) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![id, super::now(), super::unix_now() + TTL_SECS, source_ip],
    )?;
    Ok(())
}

/// The session's expiry if it exists and is still valid.
pub fn valid_until(c: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    Ok(
        c.query_row("SELECT expires_at FROM sessions WHERE id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .filter(|&exp| exp > super::unix_now()),
    )
}

pub fn touch(c: &Connection, id: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE sessions SET expires_at = ?2 WHERE id = ?1",
        rusqlite::params![id, super::unix_now() + TTL_SECS],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM sessions WHERE id = ?1", [id])? == 1)
}

/// Revoke every session (a password change), and drop expired rows.
pub fn delete_all(c: &Connection) -> rusqlite::Result<usize> {
    c.execute("DELETE FROM sessions", [])
}

pub fn purge_expired(c: &Connection) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1",
        [super::unix_now()],
    )
}
