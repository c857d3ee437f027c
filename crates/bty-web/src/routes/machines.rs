//! The machines API: list, get, full-replace PUT, DELETE, and the stored inventory blobs.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bty_proto::{Mac, Machine, MachineUpsert};

use crate::app::AppState;
use crate::db::events::{self, NewEvent};
use crate::db::machines::{self, Blob};
use crate::error::ApiError;
use crate::guard::ClientIp;

pub fn parse_mac(raw: &str) -> Result<Mac, ApiError> {
    Mac::parse(raw).map_err(|_| ApiError::bad_request(format!("invalid MAC: '{raw}'")))
}

/// A JSON object body as `T`, with axum's refusals in our error shape (415 without the JSON
/// content type, 400 for bad syntax, 413 over the limit) and 422 for anything that is not an
/// object of the right fields.
pub fn body<T: serde::de::DeserializeOwned>(
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let v = b
        .map(|Json(v)| v)
        .map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    if !v.is_object() {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    }
    serde_json::from_value(v).map_err(|e| ApiError::invalid("", e.to_string()))
}

pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<Machine>>, ApiError> {
    let mut v = s.db.read(machines::list).await?;
    for m in &mut v {
        s.with_progress(m);
    }
    Ok(Json(v))
}

pub async fn get_one(
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Machine>, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let m = s.db.read({
        let mac = mac.clone();
        move |c| machines::get(c, &mac)
    });
    let mut m = m
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no machine {mac}")))?;
    s.with_progress(&mut m);
    Ok(Json(m))
}

pub async fn put(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Machine>, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let u: MachineUpsert = body(b)?;
    let ip = ip.to_string();
    Ok(Json(save(&s, mac, u, ip).await?))
}

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
    Ok(m)
}

pub async fn delete(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = ip.to_string();
    if remove(&s, mac.clone(), ip).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no machine {mac}")))
    }
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

async fn blob(s: AppState, raw: String, which: Blob, suffix: &str) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?;
    let key = mac.to_string();
    let found = s.db.read(move |c| machines::blob(c, &key, which)).await?;
    let Some(Some(text)) = found else {
        return Err(ApiError::not_found(format!("nothing stored for {mac}")));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-{suffix}.json\"",
                    mac.hyphenated()
                ),
            ),
        ],
        text,
    )
        .into_response())
}

pub async fn lshw(
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    blob(s, raw, Blob::Lshw, "lshw").await
}

pub async fn disks(
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    blob(s, raw, Blob::Disks, "disks").await
}
