//! State changes from machines: the PXE contact (race-free discovery of unknown MACs), arming
//! a cycle, completions (`done`, inventory), failures and ending a cycle. Each runs inside the
//! caller's write, with its events.

use rusqlite::{Connection, OptionalExtension};
use serde_json::json;

use super::events::{self, NewEvent};
use crate::pxe::decide::{EntryInfo, PxeState};

fn pxe_event(
    kind: &'static str,
    mac: &str,
    ip: &str,
    summary: String,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        kind,
        subject_kind: Some("machine"),
        subject_id: Some(mac.to_string()),
        actor: Some("pxe-client"),
        source_ip: Some(ip.to_string()),
        summary,
        details: Some(details),
    }
}

/// The machine's state for the decisions, with its catalog entry.
pub fn state(c: &Connection, mac: &str) -> rusqlite::Result<Option<PxeState>> {
    c.prepare_cached(
        "SELECT m.boot_mode, m.bty_image_ref, m.target_disk_serial, m.sanboot_drive, m.saw_flasher_boot, m.cycle_done,
                e.name, e.format, e.src, e.resolved_src, e.disk_image_sha
         FROM machines m LEFT JOIN catalog_entries e ON e.bty_image_ref = m.bty_image_ref
         WHERE m.mac = ?1",
    )?
    .query_row(
        [mac],
        |r| {
            let name: Option<String> = r.get(6)?;
            let entry = match name {
                Some(name) => Some(EntryInfo {
                    name,
                    format: r.get(7)?,
                    src: r.get(8)?,
                    resolved_src: r.get(9)?,
                    disk_image_sha: r.get(10)?,
                }),
                None => None,
            };
            Ok(PxeState {
                mac: mac.to_string(),
                boot_mode: r.get(0)?,
                image_ref: r.get(1)?,
                target_disk_serial: r.get(2)?,
                sanboot_drive: r.get(3)?,
                armed: r.get::<_, i64>(4)? != 0,
                cycle_done: r.get::<_, i64>(5)? != 0,
                entry,
            })
        },
    )
    .optional()
}

/// A contact from `mac`: create it as `bty-inventory` if unknown (one `machine.discovered`
/// however many contacts race), touch `last_seen`, and return its state.
pub fn contact(c: &Connection, mac: &str, ip: &str) -> rusqlite::Result<(bool, PxeState)> {
    let now = super::now();
    let new = c.prepare_cached(
        "INSERT INTO machines (mac, boot_mode, discovered_at, last_seen_at, last_seen_ip, created_at, updated_at)
         VALUES (?1, 'bty-inventory', ?2, ?2, ?3, ?2, ?2) ON CONFLICT(mac) DO NOTHING",
    )?
    .execute(
        rusqlite::params![mac, now, ip],
    )? == 1;
    if new {
        events::record(
            c,
            &pxe_event(
                "machine.discovered",
                mac,
                ip,
                format!("{mac} discovered"),
                json!({"bty_image_ref": null, "boot_mode": "bty-inventory", "sanboot_drive": null, "hostname": null, "target_disk_serial": null}),
            ),
        )?;
    } else {
        c.prepare_cached(
            "UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3, updated_at = ?2,
                 discovered_at = COALESCE(discovered_at, ?2) WHERE mac = ?1",
        )?
        .execute(rusqlite::params![mac, now, ip])?;
    }
    let s = state(c, mac)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok((new, s))
}

/// Record an offer (and end the cycle when the offer says so).
pub fn offered(
    c: &Connection,
    mac: &str,
    ip: &str,
    kind: &'static str,
    clear: bool,
    details: serde_json::Value,
) -> rusqlite::Result<()> {
    if clear {
        c.prepare_cached(
            "UPDATE machines SET saw_flasher_boot = 0, cycle_done = 0 WHERE mac = ?1",
        )?
        .execute([mac])?;
    }
    let summary = format!("{mac}: {}", details["offer_kind"].as_str().unwrap_or(kind));
    events::record(c, &pxe_event(kind, mac, ip, summary, details))?;
    Ok(())
}

/// The flasher's kernel or initrd was fetched for `mac`: arm a new cycle if the machine is in a
/// cycling mode and not armed yet. True when this armed it.
pub fn arm(c: &Connection, mac: &str, ip: &str, file: &str) -> rusqlite::Result<bool> {
    let now = super::now();
    c.prepare_cached("UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3 WHERE mac = ?1")?
        .execute(rusqlite::params![mac, now, ip])?;
    let armed = c
        .prepare_cached(
            "UPDATE machines SET saw_flasher_boot = 1, cycle_done = 0, cycle = cycle + 1
         WHERE mac = ?1 AND saw_flasher_boot = 0
           AND boot_mode IN ('bty-flash-always', 'bty-flash-once', 'bty-inventory')",
        )?
        .execute([mac])?
        == 1;
    if armed {
        let cycle: i64 = c.query_row("SELECT cycle FROM machines WHERE mac = ?1", [mac], |r| {
            r.get(0)
        })?;
        events::record(
            c,
            &pxe_event(
                "netboot.flasher.armed",
                mac,
                ip,
                format!("{mac}: netboot environment fetched ({file}); cycle {cycle} armed"),
                json!({"file": file, "cycle": cycle}),
            ),
        )?;
    }
    Ok(armed)
}

fn orphan(c: &Connection, mac: &str, ip: &str, signal: &str) -> rusqlite::Result<()> {
    events::record(
        c,
        &pxe_event(
            "pxe.client.orphan",
            mac,
            ip,
            format!("{signal} from unknown machine {mac}"),
            json!({"signal": signal}),
        ),
    )?;
    Ok(())
}

fn known(c: &Connection, mac: &str) -> rusqlite::Result<bool> {
    Ok(
        c.query_row("SELECT 1 FROM machines WHERE mac = ?1", [mac], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

/// `POST /pxe/{mac}/done`. False for an unknown machine.
pub fn done(c: &Connection, mac: &str, ip: &str) -> rusqlite::Result<bool> {
    if !known(c, mac)? {
        orphan(c, mac, ip, "done")?;
        return Ok(false);
    }
    let now = super::now();
    c.prepare_cached(
        "UPDATE machines SET last_flashed_at = ?2, last_seen_at = ?2, last_seen_ip = ?3, updated_at = ?2,
             cycle_done = CASE WHEN saw_flasher_boot = 1 AND boot_mode IN ('bty-flash-always', 'bty-flash-once') THEN 1 ELSE cycle_done END
         WHERE mac = ?1",
    )?
    .execute(
        rusqlite::params![mac, now, ip],
    )?;
    events::record(
        c,
        &pxe_event(
            "machine.flashed",
            mac,
            ip,
            format!("{mac} flashed"),
            json!({}),
        ),
    )?;
    Ok(true)
}

/// `POST /pxe/{mac}/inventory`. False for an unknown machine.
pub fn inventory(
    c: &Connection,
    mac: &str,
    ip: &str,
    disks: &str,
    serials: Vec<String>,
    lshw: Option<&str>,
) -> rusqlite::Result<bool> {
    if !known(c, mac)? {
        events::record(
            c,
            &pxe_event(
                "pxe.client.orphan",
                mac,
                ip,
                format!("inventory from unknown machine {mac}"),
                json!({"signal": "inventory", "disk_count": serials.len()}),
            ),
        )?;
        return Ok(false);
    }
    let now = super::now();
    c.prepare_cached(
        "UPDATE machines SET known_disks = ?2, known_disks_at = ?3, last_seen_at = ?3, last_seen_ip = ?4, updated_at = ?3,
             cycle_done = CASE WHEN saw_flasher_boot = 1 AND boot_mode = 'bty-inventory' THEN 1 ELSE cycle_done END
         WHERE mac = ?1",
    )?
    .execute(
        rusqlite::params![mac, disks, now, ip],
    )?;
    if let Some(l) = lshw {
        c.prepare_cached("UPDATE machines SET hw_lshw = ?2, hw_lshw_at = ?3 WHERE mac = ?1")?
            .execute(rusqlite::params![mac, l, now])?;
    }
    events::record(
        c,
        &pxe_event(
            "machine.inventory",
            mac,
            ip,
            format!(
                "{mac} reported {} disks{}",
                serials.len(),
                if lshw.is_some() { " and lshw" } else { "" }
            ),
            json!({"count": serials.len(), "serials": serials, "lshw": lshw.is_some()}),
        ),
    )?;
    Ok(true)
}

/// `POST /pxe/{mac}/failed`: the cycle ends without a completion, so the next contact offers
/// the flasher again. False for an unknown machine.
pub fn failed(
    c: &Connection,
    mac: &str,
    ip: &str,
    stage: Option<&str>,
    reason: Option<&str>,
) -> rusqlite::Result<bool> {
    if !known(c, mac)? {
        orphan(c, mac, ip, "failed")?;
        return Ok(false);
    }
    let now = super::now();
    c.prepare_cached(
        "UPDATE machines SET saw_flasher_boot = 0, cycle_done = 0, last_failed_at = ?2, last_seen_at = ?2, last_seen_ip = ?3 WHERE mac = ?1",
    )?
    .execute(
        rusqlite::params![mac, now, ip],
    )?;
    events::record(
        c,
        &pxe_event(
            "machine.flash.failed",
            mac,
            ip,
            format!(
                "{mac}: flash failed{}{}",
                stage.map(|s| format!(" while {s}")).unwrap_or_default(),
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            json!({"stage": stage, "reason": reason}),
        ),
    )?;
    Ok(true)
}
