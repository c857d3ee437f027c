//! Machine operations both faces call: store a whole binding (validated, refused when the
//! image cannot go onto this machine, audited, live subscribers told) and delete.

use axum::http::StatusCode;
use bty_proto::{Machine, MachineUpsert};

use crate::db::events::{self, NewEvent};
use crate::db::machines;
use crate::error::ApiError;
use crate::state::AppState;

/// Validate and store a machine's whole binding (API PUT and the UI's form), audit it and tell
/// live subscribers.
pub async fn save(
    s: &AppState,
    mac: String,
    u: MachineUpsert,
    ip: String,
) -> Result<Machine, ApiError> {
    u.validate().map_err(ApiError::Invalid)?;
    let m =
        s.db.write(move |c| {
            if let Some(r) = &u.bty_image_ref
                && let Some(why) = machines::binding_refusal(c, &mac, r)?
            {
                return Ok(Err(why));
            }
            let created = machines::upsert(c, &mac, &u)?;
            events::record(
                c,
                &NewEvent {
                    kind: if created {
                        "machine.created"
                    } else {
                        "machine.upserted"
                    },
                    subject_kind: Some("machine"),
                    subject_id: Some(mac.clone()),
                    actor: Some("operator"),
                    source_ip: Some(ip),
                    summary: format!(
                        "{mac} {} (boot_mode {})",
                        if created { "created" } else { "updated" },
                        u.boot_mode.as_str()
                    ),
                    details: Some(serde_json::json!({
                        "bty_image_ref": u.bty_image_ref,
                        "hostname": u.hostname,
                        "labels": u.normalised_labels(),
                        "boot_mode": u.boot_mode,
                        "sanboot_drive": u.sanboot_drive,
                        "target_disk_serial": u.target_disk_serial,
                    })),
                },
            )?;
            Ok(Ok(machines::get(c, &mac)?))
        })
        .await?
        .map_err(|why| ApiError::invalid("bty_image_ref", why))?;
    let m =
        m.ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "machine vanished"))?;
    s.changed(&m.mac, false).await;
    prefetch_binding(s, &m);
    Ok(m)
}

/// Bound to an image in a flash mode: fill the cache in the background, so even the first
/// machine flashes at LAN speed.
pub fn prefetch_binding(s: &AppState, m: &Machine) {
    let Some(r) = m.bty_image_ref.clone() else {
        return;
    };
    if !m.boot_mode.flashes() || !s.cfg.cache.enabled {
        return;
    }
    let s = s.clone();
    tokio::spawn(async move {
        let key = r.clone();
        let entry = match s
            .db
            .read(move |c| crate::db::catalog::by_key(c, &key))
            .await
        {
            Ok(Some(e)) if e.bty_image_ref == r && s.cache.serves(&e) => e,
            _ => return,
        };
        match s.cache.prefetch(&entry).await {
            Ok(state) => tracing::info!("cache: prefetch of {}: {state}", entry.src),
            Err(e) => tracing::warn!("cache: cannot prefetch {}: {e:?}", entry.src),
        }
    });
}

/// Delete a machine (API and UI); false when there was none.
pub async fn remove(s: &AppState, mac: String, ip: String) -> Result<bool, ApiError> {
    let m = mac.clone();
    let gone =
        s.db.write(move |c| {
            let gone = machines::delete(c, &m)?;
            if gone {
                events::record(
                    c,
                    &NewEvent {
                        kind: "machine.deleted",
                        subject_kind: Some("machine"),
                        subject_id: Some(m.clone()),
                        actor: Some("operator"),
                        source_ip: Some(ip),
                        summary: format!("{m} deleted"),
                        details: None,
                    },
                )?;
            }
            Ok(gone)
        })
        .await?;
    if gone {
        s.clear_progress(&mac);
        s.changed(&mac, false).await;
    }
    Ok(gone)
}
