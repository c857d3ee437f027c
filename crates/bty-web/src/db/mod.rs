//! The state database: SQLite in WAL mode. One writer thread owns the only writing connection
//! and commits whatever requests are queued in one transaction (each request in its own
//! savepoint, so one failing request does not undo the others); readers take a connection from
//! a small pool on tokio's blocking threads. Nothing touches SQLite on the async runtime.

pub mod cache;
pub mod catalog;
pub mod events;
pub mod machines;
pub mod migrations;
pub mod pxe;
pub mod sessions;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database writer stopped")]
    Gone,
    #[error("database commit failed: {0}")]
    Commit(String),
    #[error(
        "the state database {path} has schema version {found}, newer than this bty-web knows ({known}): a newer release wrote it; run that release, or restore the backup taken before the upgrade"
    )]
    NewerSchema {
        path: String,
        found: usize,
        known: usize,
    },
}

/// A write request: runs in the batch's transaction and returns how to answer once the
/// commit's outcome is known (`None`: committed; `Some(error)`: the batch was lost).
type Reply = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

#[derive(Clone)]
pub struct Db {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

fn open(path: &Path, write: bool) -> rusqlite::Result<Connection> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    if write {
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
    }
    Ok(c)
}

/// Make the database file exist with mode 0600 (it holds the password hash and sessions).
fn private_file(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path);
    set_mode(path, 0o600);
}

/// Set a file's mode when it exists (best effort: a read-only mount keeps its modes).
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if path.exists()
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    {
        tracing::warn!("cannot set mode {mode:o} on {}: {e}", path.display());
    }
}

/// Most requests one commit carries.
const BATCH: usize = 64;

impl Db {
    /// Open (creating) the database at `path` and apply the migrations.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_upto(path, usize::MAX)
    }

    /// As `open`, applying migrations only up to number `upto` (tests of upgrades).
    pub fn open_upto(path: &Path, upto: usize) -> Result<Db, DbError> {
        private_file(path);
        let mut conn = open(path, true)?;
        // SQLite gives its -wal and -shm files the database's mode; existing ones are fixed.
        for ext in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(ext);
            set_mode(Path::new(&p), 0o600);
        }
        let found = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
        let known = migrations::MIGRATIONS.len();
        if found.max(0) as usize > known {
            return Err(DbError::NewerSchema {
                path: path.display().to_string(),
                found: found as usize,
                known,
            });
        }
        migrations::migrate(&mut conn, upto)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("bty-db-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|_| DbError::Gone)?;
        Ok(Db {
            path: path.to_path_buf(),
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Run `f` on the writer, inside the current batch's transaction.
    pub async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |c: &Connection| {
            let r = (|| {
                c.execute_batch("SAVEPOINT job")?;
                match f(c) {
                    Ok(v) => {
                        c.execute_batch("RELEASE job")?;
                        Ok(v)
                    }
                    Err(e) => {
                        c.execute_batch("ROLLBACK TO job; RELEASE job")?;
                        Err(e)
                    }
                }
            })();
            Box::new(move |commit_error: Option<String>| {
                let r = match (r, commit_error) {
                    (Ok(_), Some(e)) => Err(DbError::Commit(e)),
                    (r, _) => r.map_err(DbError::from),
                };
                let _ = tx.send(r);
            })
        });
        self.writer.send(job).map_err(|_| DbError::Gone)?;
        rx.await.map_err(|_| DbError::Gone)?
    }

    /// Run `f` on a read connection, on a blocking thread.
    pub async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => open(&path, false)?,
            };
            let r = f(&conn);
            if let Ok(mut p) = pool.lock()
                && p.len() < 8
            {
                p.push(conn);
            }
            Ok(r?)
        })
        .await
        .map_err(|_| DbError::Gone)?
    }
}

fn writer(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!("state: cannot begin a transaction: {e}");
        }
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job(&conn)).collect();
        let outcome = match conn.execute_batch("COMMIT") {
            Ok(()) => None,
            Err(e) => {
                tracing::error!("state: commit failed: {e}");
                let _ = conn.execute_batch("ROLLBACK");
                Some(e.to_string())
            }
        };
        for reply in replies {
            reply(outcome.clone());
        }
    }
}

/// Now as upstream writes timestamps: ISO-8601 UTC with microseconds and `+00:00`.
pub fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

/// A time in the stored timestamp format (which sorts as text in time order).
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upgrade_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        // A database as the previous release left it (migration 1 only), with rows.
        {
            let db = Db::open_upto(&path, OLD_RELEASE).unwrap();
            db.write(|c| {
                c.execute_batch(
                    "INSERT INTO machines (mac, bty_image_ref, boot_mode, target_disk_serial, created_at, updated_at)
                       VALUES ('aa:bb:cc:dd:ee:ff', NULL, 'bty-flash-once', 'S1', 'x', 'x');
                     INSERT INTO settings (key, value, updated_at) VALUES ('k', 'v', 'x');
                     INSERT INTO events (ts, kind, summary) VALUES ('x', 'machine.created', 'old');
                     INSERT INTO events (ts, kind, summary) VALUES ('x', 'machine.flash.failed', 'failed');",
                )
            })
            .await
            .unwrap();
            let v: i64 = db
                .read(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
                .await
                .unwrap();
            assert_eq!(v as usize, OLD_RELEASE);
        }
        let db = Db::open(&path).unwrap();
        let (v, m, s, e): (i64, String, String, String) = db
            .read(|c| {
                Ok((
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                    c.query_row("SELECT target_disk_serial FROM machines", [], |r| r.get(0))?,
                    c.query_row("SELECT value FROM settings WHERE key = 'k'", [], |r| {
                        r.get(0)
                    })?,
                    c.query_row("SELECT summary FROM events ORDER BY id LIMIT 1", [], |r| {
                        r.get(0)
                    })?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(v as usize, migrations::MIGRATIONS.len());
        assert_eq!((m.as_str(), s.as_str(), e.as_str()), ("S1", "v", "old"));
        // Renamed event kinds: stored under the new name, found under either.
        for kind in ["machine.flash_failed", "machine.flash.failed"] {
            let f = events::Filter {
                kind: Some(kind.to_string()),
                ..Default::default()
            };
            let found = db.read(move |c| events::query(c, &f)).await.unwrap();
            assert_eq!(found.len(), 1, "{kind}");
            assert_eq!(found[0].kind, "machine.flash_failed");
        }
        // The new migration's tables work on the old rows.
        db.write(|c| {
            c.execute(
                "INSERT INTO machine_labels (mac, label) VALUES ('aa:bb:cc:dd:ee:ff', 'rack1')",
                [],
            )?;
            c.execute_batch(
                "INSERT INTO catalog_entries (bty_image_ref, src, name, added_at) VALUES ('r', 'http://h/x.img', 'x', 'x');
                 INSERT INTO cache_blobs (key, image_ref, src, state, created_at, last_used) VALUES ('k', 'r', 'http://h/x.img', 'filling', 'x', 0);",
            )?;
            let no_cache: i64 = c.query_row("SELECT no_cache FROM catalog_entries", [], |r| r.get(0))?;
            assert_eq!(no_cache, 0);
            Ok(1)
        })
        .await
        .unwrap();
        let mode: String = db
            .read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_database_from_a_newer_release_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Db::open(&path).unwrap());
        let newer = migrations::MIGRATIONS.len() + 3;
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", newer as i64).unwrap();
        }
        let e = Db::open(&path).err().expect("refused");
        assert!(
            matches!(e, DbError::NewerSchema { found, known, .. } if found == newer && known == migrations::MIGRATIONS.len()),
            "{e}"
        );
        assert!(e.to_string().contains("newer release"), "{e}");
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, newer, "the schema version was changed");
    }

    /// The schema of the release before the event-kind rename (migration 5) and the cache (6).
    const OLD_RELEASE: usize = 4;

    #[tokio::test]
    async fn concurrent_writes_all_commit_and_a_failing_one_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute(
                        "INSERT INTO settings (key, value, updated_at) VALUES (?1, 'v', 'x')",
                        [format!("k{i}")],
                    )?;
                    if i % 50 == 7 {
                        // Fails after its own insert: that insert must be rolled back.
                        c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut failed = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 4);
        let n: i64 = db
            .read(|c| c.query_row("SELECT COUNT(*) FROM settings", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 196);
    }
}
