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
                e.name, e.format, e.src, e.resolved_src, e.disk_image_sha, e.arch, e.no_cache
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
                    arch: r.get(11)?,
                    cache: !r.get::<_, bool>(12)?,
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

/// A contact from `mac`: create it as `bty-inventory` if unknown and `admit` lets it in (one
/// `machine.discovered` however many contacts race), touch `last_seen`, and return whether it
/// was created and its state. `None`: an unknown machine that `admit` turned away (it is not
/// recorded); `admit` is asked only for unknown machines.
pub fn contact(
    c: &Connection,
    mac: &str,
    ip: &str,
    admit: &dyn Fn(&Connection) -> rusqlite::Result<bool>,
) -> rusqlite::Result<Option<(bool, PxeState)>> {
    let now = super::now();
    let seen = c
        .prepare_cached(
            "UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3, updated_at = ?2,
                 discovered_at = COALESCE(discovered_at, ?2) WHERE mac = ?1",
        )?
        .execute(rusqlite::params![mac, now, ip])?
        == 1;
    let mut new = false;
    if !seen {
        if !admit(c)? {
            return Ok(None);
        }
        new = c
            .prepare_cached(
                "INSERT INTO machines (mac, boot_mode, discovered_at, last_seen_at, last_seen_ip, created_at, updated_at, auto_created)
                 VALUES (?1, 'bty-inventory', ?2, ?2, ?3, ?2, ?2, 1) ON CONFLICT(mac) DO NOTHING",
            )?
            .execute(rusqlite::params![mac, now, ip])?
            == 1;
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
        }
    }
    let s = state(c, mac)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Some((new, s)))
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
    events::record_folded(c, &pxe_event(kind, mac, ip, summary, details))
}

/// What an arming attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Armed {
    /// A new cycle was armed from this address.
    New,
    /// Nothing to do: not a cycling mode, unknown machine, or already armed from this address.
    Nothing,
    /// Already armed from another address in this cycle: recorded and warned about (this
    /// address now counts as the arming one, unless strict).
    Conflict,
}

/// The flasher's kernel or initrd was fetched for `mac` from `ip`: arm a new cycle if the
/// machine is in a cycling mode and not armed yet, remembering the address. An arming from a
/// second address in the same cycle is recorded (`pxe.report.suspect`) and left on the machine
/// as a warning; the latest address wins, except under `strict`.
pub fn arm(
    c: &Connection,
    mac: &str,
    ip: &str,
    file: &str,
    strict: bool,
) -> rusqlite::Result<Armed> {
    let now = super::now();
    c.prepare_cached("UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3 WHERE mac = ?1")?
        .execute(rusqlite::params![mac, now, ip])?;
    let armed = c
        .prepare_cached(
            "UPDATE machines SET saw_flasher_boot = 1, cycle_done = 0, cycle = cycle + 1,
                 armed_ip = ?2, report_warning = NULL
         WHERE mac = ?1 AND saw_flasher_boot = 0
           AND boot_mode IN ('bty-flash-always', 'bty-flash-once', 'bty-inventory')",
        )?
        .execute([mac, ip])?
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
        return Ok(Armed::New);
    }
    match arming(c, mac)?.flatten() {
        Some((armed_ip, cycle)) if armed_ip != ip => {
            let why = format!("cycle {cycle} was armed from {armed_ip}, and armed again from {ip}");
            suspect(c, mac, ip, "arm", &armed_ip, &why)?;
            if !strict {
                c.prepare_cached("UPDATE machines SET armed_ip = ?2 WHERE mac = ?1")?
                    .execute([mac, ip])?;
            }
            Ok(Armed::Conflict)
        }
        _ => Ok(Armed::Nothing),
    }
}

/// `None`: unknown machine. `Some(Some((ip, cycle)))`: the address that armed the machine's
/// current cycle, and the cycle's number. `Some(None)`: no cycle armed (or armed before
/// addresses were kept).
pub fn arming(c: &Connection, mac: &str) -> rusqlite::Result<Option<Option<(String, i64)>>> {
    c.prepare_cached("SELECT saw_flasher_boot, armed_ip, cycle FROM machines WHERE mac = ?1")?
        .query_row([mac], |r| {
            let (armed, ip, cycle): (i64, Option<String>, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(ip.filter(|_| armed == 1).map(|ip| (ip, cycle)))
        })
        .optional()
}

/// Record a report or arming from an unexpected address: one `pxe.report.suspect` event and
/// the machine's warning (repeats of the same warning add no event).
fn suspect(
    c: &Connection,
    mac: &str,
    ip: &str,
    signal: &str,
    armed_ip: &str,
    why: &str,
) -> rusqlite::Result<()> {
    let changed = c
        .prepare_cached(
            "UPDATE machines SET report_warning = ?2
             WHERE mac = ?1 AND (report_warning IS NULL OR report_warning != ?2)",
        )?
        .execute([mac, why])?
        == 1;
    if changed {
        events::record(
            c,
            &pxe_event(
                "pxe.report.suspect",
                mac,
                ip,
                format!("{mac}: {why}"),
                json!({"signal": signal, "armed_ip": armed_ip, "from_ip": ip}),
            ),
        )?;
    }
    Ok(())
}

/// Whether a report (`signal`: done, failed, inventory, progress) for `mac` from `ip` comes
/// from the address that armed the current cycle. `Ok(None)`: it does, or no cycle is armed.
/// `Ok(Some(why))`: it does not; recorded as suspect.
pub fn vet_report(
    c: &Connection,
    mac: &str,
    ip: &str,
    signal: &str,
) -> rusqlite::Result<Option<String>> {
    match arming(c, mac)?.flatten() {
        Some((armed_ip, cycle)) if armed_ip != ip => {
            let why =
                format!("{signal} reported from {ip}, but cycle {cycle} was armed from {armed_ip}");
            suspect(c, mac, ip, signal, &armed_ip, &why)?;
            Ok(Some(why))
        }
        _ => Ok(None),
    }
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

/// What an inventory post stores.
pub struct Inventory<'a> {
    pub disks: &'a str,
    pub serials: Vec<String>,
    pub lshw: Option<&'a str>,
    /// The size of an lshw document that was over the cap and dropped.
    pub lshw_dropped: Option<usize>,
    /// The machine's CPU architecture, canonical, when the agent said.
    pub arch: Option<String>,
}

/// `POST /pxe/{mac}/inventory`. False for an unknown machine.
pub fn inventory(c: &Connection, mac: &str, ip: &str, inv: &Inventory) -> rusqlite::Result<bool> {
    let (disks, serials, lshw) = (inv.disks, &inv.serials, inv.lshw);
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
    if let Some(a) = &inv.arch {
        c.prepare_cached("UPDATE machines SET arch = ?2 WHERE mac = ?1")?
            .execute(rusqlite::params![mac, a])?;
    }
    let dropped = inv
        .lshw_dropped
        .map(|n| format!("; an lshw of {n} bytes was over the cap and dropped"))
        .unwrap_or_default();
    let mut details = json!({"count": serials.len(), "serials": serials, "lshw": lshw.is_some()});
    if let Some(a) = &inv.arch {
        details["arch"] = json!(a);
    }
    if let Some(n) = inv.lshw_dropped {
        details["lshw_dropped_bytes"] = json!(n);
    }
    events::record(
        c,
        &pxe_event(
            "machine.inventory",
            mac,
            ip,
            format!(
                "{mac} reported {} disks{}{dropped}",
                serials.len(),
                if lshw.is_some() { " and lshw" } else { "" }
            ),
            details,
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
            "machine.flash_failed",
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
