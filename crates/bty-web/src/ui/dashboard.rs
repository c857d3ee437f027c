//! The dashboard: machine counts by boot mode and state, flashes in progress (live), recent
//! failures to acknowledge, the readiness checklist with a link to fix each item, recent
//! activity.

use axum::extract::State;
use axum::response::Response;
use bty_proto::BootMode;
use minijinja::Value;
use serde::Serialize;

use super::Operator;
use super::view::{self, State as MState};
use super::{base, default_password_in_use, render};
use crate::db::events;
use crate::state::AppState;

/// What the live part of the dashboard shows.
async fn live_ctx(s: &AppState) -> Option<Value> {
    let (rows, entries) = super::machines::all_rows(s).await?;
    let by_mode: Vec<(&str, usize)> = BootMode::ALL
        .iter()
        .map(|b| {
            (
                b.as_str(),
                rows.iter().filter(|r| r.boot_mode == b.as_str()).count(),
            )
        })
        .collect();
    let by_state: Vec<(&str, usize)> = MState::ALL
        .iter()
        .map(|st| {
            (
                st.as_str(),
                rows.iter().filter(|r| r.state == st.as_str()).count(),
            )
        })
        .collect();
    let total = rows.len();
    let (warnings, discovered) =
        s.db.read(|c| {
            Ok((
                crate::db::machines::report_warnings(c)?,
                crate::db::machines::auto_created(c)?,
            ))
        })
        .await
        .ok()?;
    let cap = s.cfg.limits.max_discovered;
    let flashing: Vec<view::Row> = rows.into_iter().filter(|r| r.state == "flashing").collect();
    Some(minijinja::context! {
        total => total,
        by_mode => by_mode,
        by_state => by_state,
        flashing => flashing,
        images => entries.len(),
        warnings => warnings.into_iter().take(20).collect::<Vec<_>>(),
        discovered => discovered,
        max_discovered => cap,
        // Warn from 80 % of the cap on.
        discovery_warn => discovered.saturating_mul(5) >= cap.saturating_mul(4),
    })
}

pub async fn live_html(s: &AppState) -> Option<String> {
    let ctx = live_ctx(s).await?;
    super::templates::render("dashboard_live.html", minijinja::context! { l => ctx })
        .map_err(|e| tracing::error!("dashboard: {e:#}"))
        .ok()
}

/// Failures nobody acknowledged yet, newest first.
async fn failures(s: &AppState) -> Vec<bty_proto::event::Event> {
    s.db.read(|c| {
        events::query(
            c,
            &events::Filter {
                failed: Some("1".into()),
                unacked: Some("1".into()),
                limit: Some(10),
                ..Default::default()
            },
        )
    })
    .await
    .unwrap_or_default()
}

pub async fn failures_html(s: &AppState, csrf: &str) -> Option<String> {
    let ctx = minijinja::context! { failures => failures(s).await, csrf => csrf, back => "/ui/dashboard" };
    super::templates::render("dashboard_failures.html", ctx)
        .map_err(|e| tracing::error!("dashboard failures: {e:#}"))
        .ok()
}

#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    label: String,
    detail: String,
    href: &'static str,
    fix: &'static str,
}

async fn checklist(s: &AppState, images: usize) -> Vec<Check> {
    let boot = &s.cfg.boot_dir;
    let present = |n: &str| boot.join(n).is_file();
    let (kernel, initrd) = (&s.cfg.netboot.kernel, &s.cfg.netboot.initrd);
    let missing: Vec<&str> = [kernel.as_str(), initrd.as_str()]
        .into_iter()
        .filter(|n| !present(n))
        .collect();
    vec![
        Check {
            ok: missing.is_empty(),
            label: "Netboot environment in place".into(),
            detail: if missing.is_empty() {
                format!("{kernel} and {initrd} are in {}", boot.display())
            } else {
                format!("missing in {}: {}", boot.display(), missing.join(", "))
            },
            href: "/ui/netboot",
            fix: "Upload or build them",
        },
        Check {
            ok: images > 0,
            label: "Catalog has images".into(),
            detail: format!("{images} entries"),
            href: "/ui/images",
            fix: "Add an image",
        },
        Check {
            ok: s.tftp_addr.is_some(),
            label: "TFTP server running".into(),
            detail: match s.tftp_addr {
                Some(a) => format!("listening on {a}"),
                None if s.cfg.tftp.is_some() => "enabled but not listening (see the log)".into(),
                None => "disabled ([tftp] enabled = true to serve iPXE to BIOS/UEFI PXE)".into(),
            },
            href: "/ui/netboot#tftp",
            fix: "See TFTP",
        },
        {
            let over = s.cache.over_cap_note();
            Check {
                ok: over.is_none(),
                label: "Image cache within its cap".into(),
                detail: match over {
                    Some(note) => note,
                    None if s.cfg.cache.enabled => format!(
                        "cap {} in {}",
                        crate::ui::templates::human_bytes(s.cache.cap),
                        s.cfg.cache.dir.display()
                    ),
                    None => {
                        "off ([cache] enabled = false): every machine downloads from the origin"
                            .into()
                    }
                },
                href: "/ui/cache",
                fix: "See the cache",
            }
        },
        Check {
            ok: !default_password_in_use(s).await,
            label: "Default password changed".into(),
            detail: "the admin password is not the built-in one".into(),
            href: "/ui/account",
            fix: "Change it",
        },
    ]
}

pub async fn show(State(s): State<AppState>, Operator { session, .. }: Operator) -> Response {
    let live = live_ctx(&s).await.unwrap_or_default();
    let images = live
        .get_attr("images")
        .ok()
        .and_then(|v| v.as_usize())
        .unwrap_or(0);
    let (failures, recent) =
        s.db.read(|c| {
            let failures = events::query(
                c,
                &events::Filter {
                    failed: Some("1".into()),
                    unacked: Some("1".into()),
                    limit: Some(10),
                    ..Default::default()
                },
            )?;
            let recent = events::query(
                c,
                &events::Filter {
                    limit: Some(10),
                    ..Default::default()
                },
            )?;
            Ok((failures, recent))
        })
        .await
        .unwrap_or_default();
    let checks = checklist(&s, images).await;
    let ok = checks.iter().filter(|c| c.ok).count();
    let ctx = minijinja::context! {
        live => live,
        checks => checks,
        checks_ok => ok,
        failures => failures,
        recent => recent,
        back => "/ui/dashboard",
        ..base(&s, &session, "dashboard").await
    };
    render("dashboard.html", ctx)
}
