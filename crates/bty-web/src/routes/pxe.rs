//! What firmware and the netboot agent reach, without a session: `/pxe-bootstrap.ipxe`,
//! `/pxe/{mac}` (the per-machine script), `/pxe/{mac}/plan`, and the agent's reports
//! (`inventory`, `done`, and ours: `failed`, `progress`).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bty_proto::plan::Plan;
use bty_proto::{FlashFailed, FlashProgress, InventoryPost};
use serde_json::json;

use crate::app::AppState;
use crate::db::pxe as state;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::pxe::decide::{self, Script};
use crate::pxe::scripts;
use crate::routes::machines::{body, parse_mac};
use crate::urls::base_url;

/// Largest lshw document kept, re-serialised.
pub const MAX_LSHW: usize = 4 << 20;
/// Progress reports closer together than this are refused (429).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

fn ipxe(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn base(s: &AppState, headers: &HeaderMap) -> Option<String> {
    base_url(s.cfg.public_url.as_deref(), headers)
}

pub async fn bootstrap(State(s): State<AppState>, headers: HeaderMap) -> Response {
    ipxe(scripts::bootstrap(base(&s, &headers).as_deref()))
}

pub async fn script(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = ip.to_string();
    let Some(base) = base(&s, &headers) else {
        return Ok(ipxe(scripts::bootstrap(None)));
    };
    let netboot = s.cfg.netboot.clone();
    let m = mac.clone();
    let (new, text) =
        s.db.write(move |c| {
            let (new, st) = state::contact(c, &m, &ip)?;
            let offer = decide::pxe(&st);
            let mut details = json!({"boot_mode": st.boot_mode, "offer_kind": offer.offer_kind});
            if let Some(r) = offer.reason {
                details["reason"] = json!(r);
            }
            if offer.retry {
                details["retry_after_armed_without_completion"] = json!(true);
            }
            state::offered(
                c,
                &m,
                &ip,
                "netboot.pxe.offered",
                offer.clear_cycle,
                details,
            )?;
            let comment = match &offer.script {
                Script::LiveChain => format!("{} for {m}", offer.offer_kind),
                _ => offer.offer_kind.clone(),
            };
            Ok((
                new,
                scripts::machine(&offer.script, &base, &m, &netboot, &comment),
            ))
        })
        .await?;
    s.changed(&mac, new).await;
    s.metrics
        .pxe_contacts
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(ipxe(text))
}

pub async fn plan(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Json<Plan>, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = ip.to_string();
    let base = base(&s, &headers).ok_or_else(|| {
        ApiError::bad_request("no usable server address: set [server] public_url")
    })?;
    let m = mac.clone();
    let (new, plan) =
        s.db.write(move |c| {
            let (new, st) = state::contact(c, &m, &ip)?;
            let (plan, kind) = decide::plan(&st, &base);
            let details = json!({"plan": plan, "boot_mode": st.boot_mode, "offer_kind": kind});
            state::offered(c, &m, &ip, "netboot.pxe.plan", false, details)?;
            Ok((new, plan))
        })
        .await?;
    s.changed(&mac, new).await;
    Ok(Json(plan))
}

pub async fn inventory(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let post: InventoryPost = body(b)?;
    post.validate().map_err(ApiError::Invalid)?;
    let lshw = match &post.lshw {
        Some(v) if !v.is_null() => {
            let text = v.to_string();
            if text.len() > MAX_LSHW {
                return Err(ApiError::invalid(
                    "lshw",
                    format!("larger than {MAX_LSHW} bytes"),
                ));
            }
            Some(text)
        }
        _ => None,
    };
    let mut disks: Vec<serde_json::Value> = Vec::new();
    for d in &post.disks {
        disks.push(serde_json::to_value(d).map_err(|e| ApiError::bad_request(e.to_string()))?);
    }
    let disks_text = serde_json::Value::Array(disks).to_string();
    let serials: Vec<String> = post.disks.iter().filter_map(|d| d.serial.clone()).collect();
    let ip = ip.to_string();
    let m = mac.clone();
    let known =
        s.db.write(move |c| state::inventory(c, &m, &ip, &disks_text, serials, lshw.as_deref()))
            .await?;
    if !known {
        return Err(ApiError::not_found(format!("no machine record for {mac}")));
    }
    s.changed(&mac, false).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A report that ends a flash (`done`, `failed`): record it, drop the progress, count it.
async fn end_of_flash<F>(
    s: &AppState,
    mac: String,
    record: F,
    counter: &std::sync::atomic::AtomicU64,
) -> Result<StatusCode, ApiError>
where
    F: FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<bool> + Send + 'static,
{
    let m = mac.clone();
    if !s.db.write(move |c| record(c, &m)).await? {
        return Err(ApiError::not_found(format!("no machine record for {mac}")));
    }
    s.clear_progress(&mac);
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    s.changed(&mac, false).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn done(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = ip.to_string();
    let record = move |c: &rusqlite::Connection, m: &str| state::done(c, m, &ip);
    end_of_flash(&s, mac, record, &s.metrics.flashes_done).await
}

pub async fn failed(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let f: FlashFailed = body(b)?;
    let cut = |v: Option<String>| v.map(|s| s.chars().take(1024).collect::<String>());
    let (stage, reason) = (cut(f.stage), cut(f.reason));
    let ip = ip.to_string();
    let record = move |c: &rusqlite::Connection, m: &str| {
        state::failed(c, m, &ip, stage.as_deref(), reason.as_deref())
    };
    end_of_flash(&s, mac, record, &s.metrics.flashes_failed).await
}

pub async fn progress(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let mut p: FlashProgress = body(b)?;
    p.stage = p.stage.map(|s| s.chars().take(64).collect());
    p.at = Some(crate::db::now());
    let m = mac.clone();
    if !s
        .db
        .read(move |c| crate::db::machines::get(c, &m).map(|m| m.is_some()))
        .await?
    {
        return Err(ApiError::not_found(format!("no machine record for {mac}")));
    }
    {
        let Ok(mut map) = s.progress.lock() else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "progress table poisoned",
            ));
        };
        if let Some((_, last)) = map.get(&mac)
            && last.elapsed() < PROGRESS_INTERVAL
        {
            let mut res =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "progress reported too often")
                    .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(res);
        }
        map.insert(mac.clone(), (p, Instant::now()));
    }
    s.changed(&mac, false).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
