//! `bty-web export DIR` / `bty-web import DIR`: a bundle `DIR/inventory.json` in upstream's
//! format (`bty_export_version = 3`: per machine its MAC, known disks and lshw, as native JSON)
//! which upstream can import. We add each machine's binding (image ref, boot mode, hostname,
//! labels, sanboot drive, target serial) and the catalog entries; upstream ignores those keys,
//! and our import restores them when present. Import validates MACs, keeps existing catalog
//! entries, and records one event.

use std::path::Path;

use anyhow::{Context, bail};
use bty_proto::catalog::CatalogEntry;
use bty_proto::{BootMode, Mac, MachineUpsert};
use serde_json::{Value, json};

use crate::db::events::{self, NewEvent};
use crate::db::{self, Db};

pub const EXPORT_VERSION: i64 = 3;

pub async fn export(db: &Db, dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (machines, catalog) = db
        .read(|c| Ok((db::machines::export_rows(c)?, db::catalog::list(c)?)))
        .await?;
    let n = machines.len();
    let doc = json!({
        "bty_export_version": EXPORT_VERSION,
        "exported_at": db::now(),
        "exported_by_bty_version": env!("CARGO_PKG_VERSION"),
        "machines": machines,
        "catalog_entries": catalog,
    });
    let path = dir.join("inventory.json");
    let tmp = dir.join(".inventory.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    Ok(n)
}

/// A JSON column given as native JSON or as a JSON string.
fn column(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub async fn import(db: &Db, dir: &Path) -> anyhow::Result<(usize, usize)> {
    let path = dir.join("inventory.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let version = doc.get("bty_export_version").and_then(Value::as_i64);
    if version != Some(EXPORT_VERSION) {
        bail!(
            "{}: bty_export_version {version:?} is not {EXPORT_VERSION}",
            path.display()
        );
    }
    let Some(list) = doc.get("machines").and_then(Value::as_array) else {
        bail!("{}: no machines list", path.display());
    };
    let mut machines = Vec::new();
    for m in list {
        let raw = m.get("mac").and_then(Value::as_str).unwrap_or("");
        let mac =
            Mac::parse(raw).with_context(|| format!("{}: machine {raw:?}", path.display()))?;
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        // A mode this server cannot serve is not quietly turned into another one.
        if text("boot_mode").as_deref() == Some(bty_proto::machine::RAMBOOT) {
            bail!(
                "{}: machine {mac}: {}; change its boot_mode in the bundle and import again",
                path.display(),
                BootMode::refusal(bty_proto::machine::RAMBOOT)
            );
        }
        let binding = MachineUpsert {
            bty_image_ref: text("bty_image_ref"),
            hostname: text("hostname"),
            labels: m
                .get("labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok()),
            boot_mode: m
                .get("boot_mode")
                .and_then(Value::as_str)
                .and_then(BootMode::parse)
                .unwrap_or(BootMode::BtyInventory),
            sanboot_drive: text("sanboot_drive"),
            target_disk_serial: text("target_disk_serial"),
        };
        // A binding that does not validate (say a flash mode without a serial) falls back to
        // inventory, as upstream imports every machine.
        let binding = if binding.validate().is_ok() {
            binding
        } else {
            MachineUpsert {
                boot_mode: BootMode::BtyInventory,
                ..MachineUpsert::default()
            }
        };
        machines.push((
            mac.to_string(),
            binding,
            column(m.get("known_disks").unwrap_or(&Value::Null)),
            m.get("known_disks_at")
                .and_then(Value::as_str)
                .map(str::to_string),
            column(m.get("hw_lshw").unwrap_or(&Value::Null)),
            m.get("hw_lshw_at")
                .and_then(Value::as_str)
                .map(str::to_string),
        ));
    }
    let entries: Vec<CatalogEntry> = match doc.get("catalog_entries") {
        Some(v) => serde_json::from_value(v.clone())
            .with_context(|| format!("{}: catalog_entries", path.display()))?,
        None => Vec::new(),
    };
    let source = path.display().to_string();
    let counts = db
        .write(move |c| {
            for (mac, b, disks, disks_at, lshw, lshw_at) in &machines {
                db::machines::upsert(c, mac, b)?;
                db::machines::set_inventory_blobs(c, mac, [disks, disks_at, lshw, lshw_at])?;
            }
            let mut added = 0;
            for e in &entries {
                if db::catalog::insert(c, e)? {
                    added += 1;
                }
            }
            events::record(
                c,
                &NewEvent {
                    kind: "state.imported",
                    subject_kind: Some("settings"),
                    actor: Some("operator"),
                    summary: format!("imported {} machines and {added} catalog entries from {source}", machines.len()),
                    details: Some(json!({ "source": source, "machines": machines.len(), "catalog_entries": added })),
                    ..NewEvent::default()
                },
            )?;
            Ok((machines.len(), added))
        })
        .await?;
    Ok(counts)
}
