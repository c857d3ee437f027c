//! The settings table: small key/value state owned by the server (the admin password hash set
//! from the UI, for one).

use rusqlite::{Connection, OptionalExtension};

pub const ADMIN_PASSWORD_HASH: &str = "admin.password_hash";

pub fn get(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

pub fn set(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        rusqlite::params![key, value, super::now()],
    )?;
    Ok(())
}
