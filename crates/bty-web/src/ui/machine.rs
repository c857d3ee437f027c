//! One machine's page: the binding form (boot mode, image from the catalog, target disk from
//! the reported disks, labels, host name, sanboot drive), the hardware inventory, its events,
//! and delete. An unknown MAC gets an empty form that creates the machine.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bty_proto::{BootMode, Mac, Machine, MachineUpsert};
use serde::{Deserialize, Serialize};

use super::view;
use super::{FieldErrors, base, error_page, field_errors, render_status};
use super::{MacPath, Operator};
use crate::db::machines::{self, Blob};
use crate::db::{catalog, events};
use crate::guard::Session;
use crate::state::AppState;

/// The form as typed (re-shown as typed when it does not validate).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MachineForm {
    #[serde(default)]
    pub boot_mode: String,
    #[serde(default)]
    pub bty_image_ref: String,
    #[serde(default)]
    pub target_disk_serial: String,
    #[serde(default)]
    pub labels: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub sanboot_drive: String,
}

impl MachineForm {
    fn of(m: &Machine) -> MachineForm {
        MachineForm {
            boot_mode: m.boot_mode.as_str().into(),
            bty_image_ref: m.bty_image_ref.clone().unwrap_or_default(),
            target_disk_serial: m.target_disk_serial.clone().unwrap_or_default(),
            labels: m.labels.join(", "),
            hostname: m.hostname.clone().unwrap_or_default(),
            sanboot_drive: m.sanboot_drive.clone().unwrap_or_default(),
        }
    }

    /// The API body this form stands for (empty fields mean none), or the field errors.
    pub fn upsert(&self) -> Result<MachineUpsert, FieldErrors> {
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let Some(boot_mode) = BootMode::parse(self.boot_mode.trim()) else {
            let mut e = FieldErrors::new();
            let why = if self.boot_mode.trim() == bty_proto::machine::RAMBOOT {
                BootMode::refusal(bty_proto::machine::RAMBOOT)
            } else {
                "Pick one of the boot modes.".into()
            };
            e.insert("boot_mode".into(), why);
            return Err(e);
        };
        let labels: Vec<String> = self
            .labels
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let u = MachineUpsert {
            bty_image_ref: opt(&self.bty_image_ref),
            hostname: opt(&self.hostname),
            labels: Some(labels),
            boot_mode,
            sanboot_drive: opt(&self.sanboot_drive),
            target_disk_serial: opt(&self.target_disk_serial),
        };
        match u.validate() {
            Ok(()) => Ok(u),
            Err(v) => Err(field_errors(&crate::error::ApiError::Invalid(v), "_form")),
        }
    }
}

async fn page(
    s: &AppState,
    session: &Session,
    mac: &Mac,
    form: Option<MachineForm>,
    errors: FieldErrors,
    notice: Option<&str>,
) -> Response {
    let key = mac.to_string();
    let loaded =
        s.db.read(move |c| {
            let m = machines::get(c, &key)?;
            let entries = catalog::list(c)?;
            let lshw = machines::blob(c, &key, Blob::Lshw)?.flatten();
            let evs = events::query(
                c,
                &events::Filter {
                    subject_id: Some(key.clone()),
                    limit: Some(20),
                    ..Default::default()
                },
            )?;
            let warning = machines::report_warning(c, &key)?;
            Ok((m, entries, lshw, evs, warning))
        })
        .await;
    let Ok((mut m, entries, lshw, evs, warning)) = loaded else {
        return error_page(
            s,
            session,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the machine",
        )
        .await;
    };
    if let Some(m) = &mut m {
        s.with_progress(m);
    }
    let names = view::names(&entries);
    let row = m.as_ref().map(|m| view::row(m, &names));
    let arch_note = m.as_ref().and_then(|m| view::arch_note(m, &entries));
    let entries = view::bindable(entries);
    let form = form.unwrap_or_else(|| {
        m.as_ref()
            .map(MachineForm::of)
            .unwrap_or_else(|| MachineForm {
                boot_mode: BootMode::BtyInventory.as_str().into(),
                ..Default::default()
            })
    });
    let hardware = lshw
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| view::hardware(&v, &mac.to_string()));
    let disks = view::disk_choices(m.as_ref());
    let modes: Vec<&str> = BootMode::ALL.iter().map(|b| b.as_str()).collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = minijinja::context! {
        mac => mac.to_string(),
        mac_hyphen => mac.hyphenated(),
        machine => m,
        row => row,
        form => form,
        errors => errors,
        notice => notice,
        entries => entries,
        disks => disks,
        hardware => hardware,
        modes => modes,
        events => evs,
        warning => warning,
        arch_note => arch_note,
        ..base(s, session, "machines").await
    };
    render_status(status, "machine.html", ctx)
}

/// The live part of a machine's page: its state, progress and timestamps.
pub async fn status_html(s: &AppState, mac: &str) -> Option<String> {
    let key = mac.to_string();
    let (m, entries, warning) =
        s.db.read(move |c| {
            Ok((
                machines::get(c, &key)?,
                catalog::list(c)?,
                machines::report_warning(c, &key)?,
            ))
        })
        .await
        .ok()?;
    let mut m = m?;
    s.with_progress(&mut m);
    let row = view::row(&m, &view::names(&entries));
    let arch_note = view::arch_note(&m, &entries);
    super::templates::render(
        "machine_status.html",
        minijinja::context! { machine => m, row => row, warning => warning, arch_note => arch_note },
    )
    .map_err(|e| tracing::error!("machine status: {e:#}"))
    .ok()
}

pub async fn show(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    MacPath(mac): MacPath,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let notice = q.contains_key("saved").then_some("Saved.");
    page(&s, &session, &mac, None, FieldErrors::new(), notice).await
}

pub async fn save(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    MacPath(mac): MacPath,
    Form(form): Form<MachineForm>,
) -> Response {
    let u = match form.upsert() {
        Ok(u) => u,
        Err(errors) => return page(&s, &session, &mac, Some(form), errors, None).await,
    };
    match crate::ops::machines::save(&s, mac.to_string(), u, ip).await {
        Ok(_) => Redirect::to(&format!("/ui/machines/{mac}?saved=1")).into_response(),
        Err(e) => {
            page(
                &s,
                &session,
                &mac,
                Some(form),
                field_errors(&e, "_form"),
                None,
            )
            .await
        }
    }
}

pub async fn delete(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    MacPath(mac): MacPath,
) -> Response {
    match crate::ops::machines::remove(&s, mac.to_string(), ip).await {
        Ok(_) => Redirect::to(&format!("/ui/machines?deleted={mac}")).into_response(),
        Err(_) => {
            error_page(
                &s,
                &session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the delete failed",
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_to_upsert() {
        let f = MachineForm {
            boot_mode: "bty-flash-once".into(),
            bty_image_ref: "a".repeat(64),
            target_disk_serial: " S1 ".into(),
            labels: "rack-1, , gpu".into(),
            ..Default::default()
        };
        let u = f.upsert().unwrap();
        assert_eq!(u.target_disk_serial.as_deref(), Some("S1"));
        assert_eq!(u.labels.unwrap(), vec!["rack-1", "gpu"]);
        assert_eq!(u.hostname, None);
        let bad = MachineForm {
            boot_mode: "bty-flash-once".into(),
            hostname: "-bad-".into(),
            ..Default::default()
        };
        let e = bad.upsert().unwrap_err();
        assert!(e.contains_key("hostname"), "{e:?}");
        assert!(e.contains_key("target_disk_serial"), "{e:?}");
        let e = MachineForm::default().upsert().unwrap_err();
        assert!(e.contains_key("boot_mode"));
    }
}
