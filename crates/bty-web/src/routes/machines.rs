//! The machines API: list, get, full-replace PUT, DELETE, and the stored inventory blobs.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bty_proto::{Mac, Machine, MachineUpsert};

use crate::db::machines::{self, Blob};
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::ops;
use crate::state::AppState;

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
    Ok(Json(ops::machines::save(&s, mac, u, ip).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = ip.to_string();
    if ops::machines::remove(&s, mac.clone(), ip).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no machine {mac}")))
    }
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
