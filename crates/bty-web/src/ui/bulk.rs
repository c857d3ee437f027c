//! Bulk binding from the machines page: one boot mode (and, if chosen, one image) for every
//! machine the page's filter shows. Each machine keeps its own target disk, labels and host
//! name — a bulk change never picks a disk — and a machine the new binding does not validate
//! for (a flash mode without a target serial, an image for another CPU architecture) is
//! skipped and named; images that cannot be flashed are not offered. The form carries how many
//! machines it showed; if the filter matches a different number by the time it is posted,
//! nothing changes and the page says so.

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use bty_proto::{BootMode, Machine, MachineUpsert};
use serde::Deserialize;

use super::Operator;
use super::machines::{Filter, load};
use super::view;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    boot_mode: String,
    /// Empty: each machine keeps its image.
    #[serde(default)]
    bty_image_ref: String,
    /// How many machines the form was shown for.
    #[serde(default)]
    count: usize,
}

fn back(f: &BulkForm, notice: &str) -> Response {
    let q = serde_urlencoded::to_string([
        ("q", f.q.as_str()),
        ("label", f.label.as_str()),
        ("bulk", notice),
    ])
    .unwrap_or_default();
    Redirect::to(&format!("/ui/machines?{q}")).into_response()
}

pub async fn apply(
    State(s): State<AppState>,
    Operator { ip, .. }: Operator,
    Form(form): Form<BulkForm>,
) -> Response {
    let Some(mode) = BootMode::parse(form.boot_mode.trim()) else {
        return back(&form, "Nothing changed: pick a boot mode.");
    };
    let filter = Filter {
        q: form.q.clone(),
        label: form.label.clone(),
    };
    let Some((all, _)) = load(&s).await else {
        return back(&form, "Nothing changed: the machines could not be read.");
    };
    let shown: Vec<Machine> = all
        .into_iter()
        .filter(|(_, r)| view::matches(r, &filter.q, &filter.label))
        .map(|(m, _)| m)
        .collect();
    if shown.len() != form.count {
        return back(
            &form,
            &format!(
                "Nothing changed: the filter now matches {} machines, not the {} the form was for. Check the list and apply again.",
                shown.len(),
                form.count
            ),
        );
    }
    let image = Some(form.bty_image_ref.trim().to_string()).filter(|r| !r.is_empty());
    let (mut changed, mut skipped) = (0usize, Vec::new());
    for m in shown {
        let u = MachineUpsert {
            bty_image_ref: image.clone().or(m.bty_image_ref),
            hostname: m.hostname,
            labels: Some(m.labels),
            boot_mode: mode,
            sanboot_drive: m.sanboot_drive,
            target_disk_serial: m.target_disk_serial,
        };
        if let Err(v) = u.validate() {
            let why = v.first().map(|e| e.msg.clone()).unwrap_or_default();
            skipped.push(format!("{} ({why})", m.mac));
            continue;
        }
        match crate::ops::machines::save(&s, m.mac.clone(), u, ip.clone()).await {
            Ok(_) => changed += 1,
            Err(e) => skipped.push(format!("{} ({})", m.mac, e.message())),
        }
    }
    let mut notice = format!("Set {changed} machines to {}.", mode.as_str());
    if !skipped.is_empty() {
        let more = skipped.len().saturating_sub(10);
        let named: Vec<String> = skipped.into_iter().take(10).collect();
        notice.push_str(&format!(
            " Skipped {}: {}",
            named.len() + more,
            named.join("; ")
        ));
        if more > 0 {
            notice.push_str(&format!("; and {more} more"));
        }
        notice.push('.');
    }
    back(&form, &notice)
}
