//! What firmware and the netboot agent reach, without a session: `/pxe-bootstrap.ipxe`,
//! `/pxe/{mac}` (the per-machine script), `/pxe/{mac}/plan`, and the agent's reports
//! (`inventory`, `done`, upstream 0.61+'s `status`, and ours: `failed`, `progress`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bty_proto::{FlashFailed, FlashProgress, InventoryPost, PxeStatus, TerminalStatus};
use serde_json::json;

use crate::db::events::{self, NewEvent};
use crate::db::pxe as state;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::pxe::decide::{self, Script};
use crate::pxe::scripts;
use crate::routes::machines::{body, parse_mac};
use crate::state::AppState;
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

/// Whether an unknown machine may be created now: the source address is within its creation
/// rate and the machines unknown clients created are under `[limits] max_discovered`. A
/// refusal is written to the audit log at most once a minute.
fn admission(
    s: &AppState,
    ip: IpAddr,
) -> impl Fn(&rusqlite::Connection) -> rusqlite::Result<bool> + Send + 'static {
    let limits = s.pxe_limits.clone();
    let cap = s.cfg.limits.max_discovered;
    move |c| {
        let why = if !limits.discover.allow(&ip) {
            Some("too many new machines from this address in the last minute")
        } else if !limits.admit_discovered(cap, || crate::db::machines::auto_created(c))? {
            Some(
                "the limit on machines created by unknown clients ([limits] max_discovered) is reached",
            )
        } else {
            None
        };
        let Some(why) = why else {
            return Ok(true);
        };
        if limits.note_refusal() {
            events::record(
                c,
                &NewEvent {
                    kind: "pxe.discovery.refused",
                    subject_kind: Some("pxe"),
                    subject_id: None,
                    actor: Some("pxe-client"),
                    source_ip: Some(ip.to_string()),
                    summary: format!(
                        "an unknown machine was not recorded: {why} (further refusals this minute are not logged)"
                    ),
                    details: Some(json!({"reason": why, "max_discovered": cap})),
                },
            )?;
        }
        Ok(false)
    }
}

pub async fn script(
    State(s): State<AppState>,
    ClientIp(addr): ClientIp,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = addr.to_string();
    let Some(base) = base(&s, &headers) else {
        return Ok(ipxe(scripts::bootstrap(None)));
    };
    let netboot = s.cfg.netboot.clone();
    let m = mac.clone();
    let admit = admission(&s, addr);
    let answer =
        s.db.write(move |c| {
            let Some((new, st)) = state::contact(c, &m, &ip, &admit)? else {
                return Ok(None);
            };
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
            Ok(Some((
                new,
                scripts::machine(&offer.script, &base, &m, &netboot, &comment),
            )))
        })
        .await?;
    let Some((new, text)) = answer else {
        return Ok(ipxe(scripts::not_registered()));
    };
    s.changed(&mac, new).await;
    s.metrics
        .pxe_contacts
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(ipxe(text))
}

pub async fn plan(
    State(s): State<AppState>,
    ClientIp(addr): ClientIp,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let ip = addr.to_string();
    let base = base(&s, &headers).ok_or_else(|| {
        ApiError::bad_request("no usable server address: set [server] public_url")
    })?;
    let m = mac.clone();
    let admit = admission(&s, addr);
    let cache_on = s.cfg.cache.enabled;
    let answer =
        s.db.write(move |c| {
            let Some((new, mut st)) = state::contact(c, &m, &ip, &admit)? else {
                return Ok(None);
            };
            if let Some(e) = st.entry.as_mut() {
                e.cache &= cache_on;
            }
            let (plan, kind) = decide::plan(&st, &base);
            let cached = st.entry.as_ref().is_some_and(|e| e.cache);
            let details = json!({"plan": plan, "boot_mode": st.boot_mode, "offer_kind": kind, "cache": cached});
            state::offered(c, &m, &ip, "netboot.pxe.plan", false, details)?;
            Ok(Some((new, plan)))
        })
        .await?;
    let Some((new, plan)) = answer else {
        return Ok(too_many(
            "new machines are not being recorded now; try again later",
            60,
        ));
    };
    s.changed(&mac, new).await;
    Ok(Json(plan).into_response())
}

/// 429 with `Retry-After`.
fn too_many(why: &str, secs: u64) -> Response {
    let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, why).into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// 403 for a report refused under `[pxe] strict_reports` (distinct from a missing route's 404).
fn refused_report(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("report refused: {why} ([pxe] strict_reports is on)"),
    )
}

pub async fn inventory(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let post: InventoryPost = body(b)?;
    post.validate().map_err(ApiError::Invalid)?;
    if !s.pxe_limits.inventory.allow(&mac) {
        return Ok(too_many(
            "inventory posted too often for this machine",
            crate::pxe::limits::INVENTORY_WINDOW.as_secs(),
        ));
    }
    // An oversized lshw document is dropped, as upstream does; the disks are still kept.
    let cap = s.cfg.limits.lshw_max_bytes;
    let mut lshw_dropped = None;
    let lshw = match &post.lshw {
        Some(v) if !v.is_null() => {
            let text = v.to_string();
            if text.len() > cap {
                lshw_dropped = Some(text.len());
                None
            } else {
                Some(text)
            }
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
    // Kept in the canonical spelling when known, as given otherwise (validated above).
    let arch = post
        .arch
        .as_deref()
        .map(|a| bty_proto::arch::canonical(a).map_or_else(|| a.to_string(), str::to_string));
    let stored = move |c: &rusqlite::Connection, m: &str, ip: &str| {
        let inv = state::Inventory {
            disks: &disks_text,
            serials,
            lshw: lshw.as_deref(),
            lshw_dropped,
            arch,
        };
        state::inventory(c, m, ip, &inv)
    };
    vetted(&s, &mac, ip, "inventory", stored).await?;
    s.changed(&mac, false).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Record a report (`signal`) for `mac` from `ip` with `record`, in one write after vetting
/// its address (a report from elsewhere than the arming address is recorded as suspect, and
/// refused under `[pxe] strict_reports`); 404 when `record` finds no such machine.
async fn vetted<F>(
    s: &AppState,
    mac: &str,
    ip: String,
    signal: &'static str,
    record: F,
) -> Result<(), ApiError>
where
    F: FnOnce(&rusqlite::Connection, &str, &str) -> rusqlite::Result<bool> + Send + 'static,
{
    let m = mac.to_string();
    let strict = s.cfg.strict_reports;
    let outcome =
        s.db.write(move |c| {
            if let Some(why) = state::vet_report(c, &m, &ip, signal)?
                && strict
            {
                return Ok(Err(why));
            }
            Ok(Ok(record(c, &m, &ip)?))
        })
        .await?;
    match outcome {
        Err(why) => Err(refused_report(&why)),
        Ok(false) => Err(ApiError::not_found(format!("no machine record for {mac}"))),
        Ok(true) => Ok(()),
    }
}

/// A report that ends a flash (`done`, `failed`): vet and record it, drop the progress, count
/// it.
async fn end_of_flash<F>(
    s: &AppState,
    mac: String,
    ip: String,
    signal: &'static str,
    record: F,
    counter: &std::sync::atomic::AtomicU64,
) -> Result<StatusCode, ApiError>
where
    F: FnOnce(&rusqlite::Connection, &str, &str) -> rusqlite::Result<bool> + Send + 'static,
{
    vetted(s, &mac, ip, signal, record).await?;
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
    end_of_flash(&s, mac, ip, "done", state::done, &s.metrics.flashes_done).await
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
    flash_failed(&s, mac, ip.to_string(), stage, reason).await
}

/// End the cycle without a completion (`/failed`, `/status` failed).
async fn flash_failed(
    s: &AppState,
    mac: String,
    ip: String,
    stage: Option<String>,
    reason: Option<String>,
) -> Result<StatusCode, ApiError> {
    let record = move |c: &rusqlite::Connection, m: &str, ip: &str| {
        state::failed(c, m, ip, stage.as_deref(), reason.as_deref())
    };
    end_of_flash(s, mac, ip, "failed", record, &s.metrics.flashes_failed).await
}

/// Upstream 0.61+'s one terminal report: `{"status": "done"|"failed", "reason"}`, ending the
/// cycle exactly as `/done` and `/failed` do.
pub async fn status(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let st: PxeStatus = body(b)?;
    st.validate().map_err(ApiError::Invalid)?;
    let ip = ip.to_string();
    match st.status {
        TerminalStatus::Done => {
            end_of_flash(&s, mac, ip, "done", state::done, &s.metrics.flashes_done).await
        }
        TerminalStatus::Failed => flash_failed(&s, mac, ip, None, st.reason).await,
    }
}

pub async fn progress(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(raw): Path<String>,
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&raw)?.to_string();
    let mut p: FlashProgress = body(b)?;
    p.stage = p.stage.map(|s| s.chars().take(64).collect());
    p.at = Some(crate::db::now());
    let m = mac.clone();
    let Some(arming) = s.db.read(move |c| state::arming(c, &m)).await? else {
        return Err(ApiError::not_found(format!("no machine record for {mac}")));
    };
    let ip = ip.to_string();
    if arming.is_some_and(|(armed_ip, _)| armed_ip != ip) {
        // Recorded once per distinct warning; refused under strict_reports.
        let (m, i) = (mac.clone(), ip.clone());
        let why =
            s.db.write(move |c| state::vet_report(c, &m, &i, "progress"))
                .await?;
        if let Some(why) = why
            && s.cfg.strict_reports
        {
            return Err(refused_report(&why));
        }
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
            return Ok(too_many("progress reported too often", 1));
        }
        map.insert(mac.clone(), (p, Instant::now()));
    }
    s.changed(&mac, false).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
