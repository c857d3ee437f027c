//! Numbered forward migrations, applied in order at start; `PRAGMA user_version` records the
//! last one applied. Migrations only add: an upgrade keeps every machine, binding, setting and
//! event. Never edit a released migration; append a new one.

use rusqlite::Connection;

pub const MIGRATIONS: &[&str] = &[
    // 1: upstream 0.47's tables.
    r#"
    CREATE TABLE machines (
        mac TEXT PRIMARY KEY,
        bty_image_ref TEXT,
        hostname TEXT,
        discovered_at TEXT,
        last_seen_at TEXT,
        last_seen_ip TEXT,
        boot_mode TEXT NOT NULL DEFAULT 'ipxe-exit',
        sanboot_drive TEXT,
        last_flashed_at TEXT,
        saw_flasher_boot INTEGER NOT NULL DEFAULT 0,
        known_disks TEXT,
        known_disks_at TEXT,
        hw_lshw TEXT,
        hw_lshw_at TEXT,
        target_disk_serial TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE catalog_entries (
        bty_image_ref TEXT PRIMARY KEY,
        src TEXT NOT NULL UNIQUE,
        resolved_src TEXT,
        disk_image_sha TEXT,
        name TEXT NOT NULL,
        sha_url TEXT,
        format TEXT,
        size_bytes INTEGER,
        description TEXT,
        added_at TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject_kind TEXT,
        subject_id TEXT,
        actor TEXT,
        source_ip TEXT,
        summary TEXT NOT NULL,
        details TEXT,
        acknowledged INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_kind ON events(kind);
    CREATE INDEX events_subject ON events(subject_kind, subject_id);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    "#,
    // 2: machine labels, and server-side sessions (revocable cookies).
    r#"
    CREATE TABLE machine_labels (
        mac TEXT NOT NULL REFERENCES machines(mac) ON DELETE CASCADE,
        label TEXT NOT NULL,
        PRIMARY KEY (mac, label)
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        source_ip TEXT
    );
    "#,
    // 3: the flash cycle made per cycle: `cycle_done` is set only by a completion (done, or an
    // inventory for bty-inventory) in the currently armed cycle; `cycle` counts arms.
    r#"
    ALTER TABLE machines ADD COLUMN cycle INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE machines ADD COLUMN cycle_done INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE machines ADD COLUMN last_failed_at TEXT;
    "#,
    // 4: the hostile LAN: machines created by unknown PXE clients are marked (for their cap),
    // each cycle remembers the address that armed it, and a report from elsewhere leaves a
    // warning on the machine until the operator saves it or a clean cycle is armed.
    r#"
    ALTER TABLE machines ADD COLUMN auto_created INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE machines ADD COLUMN armed_ip TEXT;
    ALTER TABLE machines ADD COLUMN report_warning TEXT;
    UPDATE machines SET auto_created = 1
        WHERE discovered_at IS NOT NULL AND bty_image_ref IS NULL AND boot_mode = 'bty-inventory';
    CREATE INDEX machines_auto_created ON machines(auto_created);
    "#,
    // 5: event kinds spelled as upstream 0.77 spells them; machines remember their inventory's
    // CPU architecture, catalog entries the one they are built for.
    r#"
    UPDATE events SET kind = 'machine.flash_failed' WHERE kind = 'machine.flash.failed';
    ALTER TABLE machines ADD COLUMN arch TEXT;
    ALTER TABLE catalog_entries ADD COLUMN arch TEXT;
    "#,
    // 6: the image cache: one row per blob (complete or filling, with the watermark that is
    // on disk), and entries that opt out of it.
    r#"
    ALTER TABLE catalog_entries ADD COLUMN no_cache INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE cache_blobs (
        key TEXT PRIMARY KEY,
        image_ref TEXT NOT NULL,
        src TEXT NOT NULL,
        expected_sha TEXT,
        sha256 TEXT,
        validator TEXT,
        size INTEGER,
        filled INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used INTEGER NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0,
        validated_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cache_blobs_ref ON cache_blobs(image_ref);
    "#,
];

/// Apply the migrations not yet applied, each in its own transaction; up to `upto` (for tests
/// that build an older database).
pub fn migrate(conn: &mut Connection, upto: usize) -> rusqlite::Result<usize> {
    let current: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    let target = upto.min(MIGRATIONS.len());
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!("state: applied migration {}", i + 1);
    }
    Ok(target.max(current))
}
