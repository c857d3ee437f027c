//! Machine rows: listing, full-replace upsert (a changed mode, image or target serial starts a
//! new flash cycle), delete, and the stored inventory blobs.

use bty_proto::{BootMode, Machine, MachineUpsert};
use rusqlite::{Connection, OptionalExtension, Row};

const COLUMNS: &str = "mac, bty_image_ref, hostname, discovered_at, last_seen_at, last_seen_ip, \
     boot_mode, sanboot_drive, last_flashed_at, known_disks, known_disks_at, target_disk_serial, \
     created_at, updated_at, last_failed_at, arch";

fn labels(c: &Connection, mac: &str) -> rusqlite::Result<Vec<String>> {
    let mut st =
        c.prepare_cached("SELECT label FROM machine_labels WHERE mac = ?1 ORDER BY label")?;
    st.query_map([mac], |r| r.get(0))?.collect()
}

fn from_row(r: &Row) -> rusqlite::Result<Machine> {
    let disks: Option<String> = r.get(9)?;
    let mode: String = r.get(6)?;
    Ok(Machine {
        mac: r.get(0)?,
        bty_image_ref: r.get(1)?,
        hostname: r.get(2)?,
        labels: Vec::new(),
        discovered_at: r.get(3)?,
        last_seen_at: r.get(4)?,
        last_seen_ip: r.get(5)?,
        boot_mode: BootMode::parse(&mode).unwrap_or_default(),
        sanboot_drive: r.get(7)?,
        last_flashed_at: r.get(8)?,
        known_disks: disks.and_then(|d| serde_json::from_str(&d).ok()),
        known_disks_at: r.get(10)?,
        target_disk_serial: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        flash_progress: None,
        last_failed_at: r.get(14)?,
        arch: r.get(15)?,
    })
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<Machine>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM machines ORDER BY mac"))?;
    let mut v: Vec<Machine> = st.query_map([], from_row)?.collect::<Result<_, _>>()?;
    for m in &mut v {
        m.labels = labels(c, &m.mac)?;
    }
    Ok(v)
}

pub fn get(c: &Connection, mac: &str) -> rusqlite::Result<Option<Machine>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM machines WHERE mac = ?1"))?;
    let m = st.query_row([mac], from_row).optional()?;
    match m {
        Some(mut m) => {
            m.labels = labels(c, mac)?;
            Ok(Some(m))
        }
        None => Ok(None),
    }
}

/// Replace the machine's binding; true if the row was created.
pub fn upsert(c: &Connection, mac: &str, u: &MachineUpsert) -> rusqlite::Result<bool> {
    let now = super::now();
    let old: Option<(Option<String>, String, Option<String>)> = c
        .query_row(
            "SELECT bty_image_ref, boot_mode, target_disk_serial FROM machines WHERE mac = ?1",
            [mac],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let created = old.is_none();
    let new_cycle = old.as_ref().is_none_or(|(r, m, s)| {
        r.clone().unwrap_or_default() != u.bty_image_ref.clone().unwrap_or_default()
            || m != u.boot_mode.as_str()
            || s.clone().unwrap_or_default() != u.target_disk_serial.clone().unwrap_or_default()
    });
    if created {
        c.execute(
            "INSERT INTO machines (mac, bty_image_ref, hostname, boot_mode, sanboot_drive, target_disk_serial, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            rusqlite::params![mac, u.bty_image_ref, u.hostname, u.boot_mode.as_str(), u.sanboot_drive, u.target_disk_serial, now],
        )?;
    } else {
        c.execute(
            "UPDATE machines SET bty_image_ref = ?2, hostname = ?3, boot_mode = ?4, sanboot_drive = ?5,
                 target_disk_serial = ?6, updated_at = ?7, auto_created = 0, report_warning = NULL
             WHERE mac = ?1",
            rusqlite::params![mac, u.bty_image_ref, u.hostname, u.boot_mode.as_str(), u.sanboot_drive, u.target_disk_serial, now],
        )?;
        if new_cycle {
            c.execute(
                "UPDATE machines SET saw_flasher_boot = 0, cycle_done = 0, last_flashed_at = NULL, known_disks_at = NULL WHERE mac = ?1",
                [mac],
            )?;
        }
    }
    c.execute("DELETE FROM machine_labels WHERE mac = ?1", [mac])?;
    for l in u.normalised_labels() {
        c.execute(
            "INSERT INTO machine_labels (mac, label) VALUES (?1, ?2)",
            [mac, &l],
        )?;
    }
    Ok(created)
}

/// Machines created by unknown PXE clients and not yet claimed by the operator.
pub fn auto_created(c: &Connection) -> rusqlite::Result<u64> {
    c.prepare_cached("SELECT COUNT(*) FROM machines WHERE auto_created = 1")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

/// Machines with a warning about reports from an unexpected address: (mac, warning).
pub fn report_warnings(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT mac, report_warning FROM machines WHERE report_warning IS NOT NULL ORDER BY mac",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// One machine's report warning, if it has one.
pub fn report_warning(c: &Connection, mac: &str) -> rusqlite::Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT report_warning FROM machines WHERE mac = ?1")?
            .query_row([mac], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten(),
    )
}

pub fn delete(c: &Connection, mac: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM machines WHERE mac = ?1", [mac])? == 1)
}

/// A stored blob: `hw_lshw` or `known_disks`. Outer `None`: no machine.
pub fn blob(c: &Connection, mac: &str, column: Blob) -> rusqlite::Result<Option<Option<String>>> {
    let col = match column {
        Blob::Lshw => "hw_lshw",
        Blob::Disks => "known_disks",
    };
    c.query_row(
        &format!("SELECT {col} FROM machines WHERE mac = ?1"),
        [mac],
        |r| r.get(0),
    )
    .optional()
}

#[derive(Debug, Clone, Copy)]
pub enum Blob {
    Lshw,
    Disks,
}

/// Why `image_ref` must not be bound to `mac`, if it must not: the entry cannot be flashed (a
/// netboot bundle), or it is built for another CPU architecture than the machine reported. A
/// machine of unknown architecture may be bound (its page warns).
pub fn binding_refusal(
    c: &Connection,
    mac: &str,
    image_ref: &str,
) -> rusqlite::Result<Option<String>> {
    let entry: Option<(String, Option<String>, Option<String>)> = c
        .prepare_cached("SELECT name, format, arch FROM catalog_entries WHERE bty_image_ref = ?1")?
        .query_row([image_ref], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((name, format, image_arch)) = entry else {
        return Ok(None);
    };
    if let Some(why) = bty_proto::catalog::unflashable(format.as_deref()) {
        return Ok(Some(format!("{name}: {why}")));
    }
    let machine_arch: Option<String> = c
        .prepare_cached("SELECT arch FROM machines WHERE mac = ?1")?
        .query_row([mac], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(match (image_arch, machine_arch) {
        (Some(i), Some(m)) if !same_arch(&i, &m) => Some(format!(
            "{name} is built for {i}, but {mac} reported {m}: bind an image for {m}"
        )),
        _ => None,
    })
}

/// Whether two architecture names are the same one (`amd64` is `x86_64`).
pub fn same_arch(a: &str, b: &str) -> bool {
    let canon = |s: &str| {
        bty_proto::arch::canonical(s).map_or_else(|| s.to_ascii_lowercase(), str::to_string)
    };
    canon(a) == canon(b)
}

/// Machines per boot mode (`/metrics`).
pub fn count_by_mode(c: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = c.prepare_cached(
        "SELECT boot_mode, COUNT(*) FROM machines GROUP BY boot_mode ORDER BY boot_mode",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// A JSON column's text as JSON (null when absent or not JSON).
fn native(v: Option<String>) -> serde_json::Value {
    v.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Every machine as the export bundle (upstream's v3 shape, plus labels) holds it.
pub fn export_rows(c: &Connection) -> rusqlite::Result<Vec<serde_json::Value>> {
    let mut st = c.prepare(
        "SELECT mac, known_disks, known_disks_at, hw_lshw, hw_lshw_at, bty_image_ref, boot_mode,
                hostname, sanboot_drive, target_disk_serial FROM machines ORDER BY mac",
    )?;
    let rows: Vec<(String, serde_json::Value)> = st
        .query_map([], |r| {
            let mac: String = r.get(0)?;
            Ok((
                mac.clone(),
                serde_json::json!({
                    "mac": mac,
                    "known_disks": native(r.get(1)?),
                    "known_disks_at": r.get::<_, Option<String>>(2)?,
                    "hw_lshw": native(r.get(3)?),
                    "hw_lshw_at": r.get::<_, Option<String>>(4)?,
                    "bty_image_ref": r.get::<_, Option<String>>(5)?,
                    "boot_mode": r.get::<_, String>(6)?,
                    "hostname": r.get::<_, Option<String>>(7)?,
                    "sanboot_drive": r.get::<_, Option<String>>(8)?,
                    "target_disk_serial": r.get::<_, Option<String>>(9)?,
                }),
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (mac, mut m) in rows {
        m["labels"] = serde_json::json!(labels(c, &mac)?);
        out.push(m);
    }
    Ok(out)
}

/// Set an imported machine's stored inventory: known disks, when, lshw, when.
pub fn set_inventory_blobs(
    c: &Connection,
    mac: &str,
    [disks, disks_at, lshw, lshw_at]: [&Option<String>; 4],
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE machines SET known_disks = ?2, known_disks_at = ?3, hw_lshw = ?4, hw_lshw_at = ?5 WHERE mac = ?1",
    )?
    .execute(rusqlite::params![mac, disks, disks_at, lshw, lshw_at])?;
    Ok(())
}
