//! The netboot page: the boot files (netboot kernel and initrd, iPXE binaries) present or
//! missing with size and sha256, upload of a boot file, the TFTP server's state, and a DHCP
//! cheat sheet (dnsmasq, ISC dhcpd, Kea, OpenWrt, MikroTik) filled with this server's address.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Operator;
use super::csrf::MultipartForm;
use super::{FieldErrors, base, error_page, render_status};
use crate::guard::Session;
use crate::state::AppState;

#[derive(Debug, Clone, Serialize)]
struct Artifact {
    name: String,
    role: &'static str,
    dir: String,
    present: bool,
    size: Option<u64>,
    sha256: Option<String>,
    modified: Option<String>,
}

/// Digests by path, valid while size and mtime stay the same (an initrd is hashed once).
type DigestCache = HashMap<PathBuf, (u64, SystemTime, String)>;
static DIGESTS: LazyLock<Mutex<DigestCache>> = LazyLock::new(Mutex::default);

fn sha256_of(path: &Path, len: u64, mtime: SystemTime) -> Option<String> {
    if let Ok(map) = DIGESTS.lock()
        && let Some((l, t, d)) = map.get(path)
        && *l == len
        && *t == mtime
    {
        return Some(d.clone());
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let d = hex::encode(h.finalize());
    if let Ok(mut map) = DIGESTS.lock() {
        map.insert(path.to_path_buf(), (len, mtime, d.clone()));
    }
    Some(d)
}

fn artifact(dir: &Path, name: &str, role: &'static str) -> Artifact {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
    let mtime = meta.as_ref().and_then(|m| m.modified().ok());
    Artifact {
        name: name.to_string(),
        role,
        dir: dir.display().to_string(),
        present: meta.is_some(),
        size: meta.as_ref().map(|m| m.len()),
        sha256: match (&meta, mtime) {
            (Some(m), Some(t)) => sha256_of(&path, m.len(), t),
            _ => None,
        },
        modified: mtime.map(|t| {
            time::OffsetDateTime::from(t)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        }),
    }
}

/// Names an upload may take: the netboot pair, and the iPXE files when TFTP serves the same
/// folder.
fn upload_names(s: &AppState) -> Vec<String> {
    let mut names = vec![s.cfg.netboot.kernel.clone(), s.cfg.netboot.initrd.clone()];
    if s.cfg.tftp_root() == s.cfg.boot_dir.as_path() {
        names.extend(crate::tftp::IPXE_FILES.iter().map(|n| n.to_string()));
    }
    names
}

async fn page(
    s: &AppState,
    session: &Session,
    headers: &HeaderMap,
    status: StatusCode,
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let (boot, tftp_root) = (s.cfg.boot_dir.clone(), s.cfg.tftp_root().to_path_buf());
    let (kernel, initrd) = (s.cfg.netboot.kernel.clone(), s.cfg.netboot.initrd.clone());
    let listed = tokio::task::spawn_blocking(move || {
        let mut v = vec![
            artifact(&boot, &kernel, "netboot kernel"),
            artifact(&boot, &initrd, "netboot initrd"),
        ];
        v.extend(
            crate::tftp::IPXE_FILES
                .iter()
                .map(|n| artifact(&tftp_root, n, "iPXE (TFTP and HTTP)")),
        );
        v
    })
    .await;
    let Ok(artifacts) = listed else {
        return error_page(
            s,
            session,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot list the boot files",
        )
        .await;
    };
    let base_url = crate::urls::base_url(s.cfg.public_url.as_deref(), headers)
        .unwrap_or_else(|| "http://SERVER:PORT".into());
    let host = host_of(&base_url);
    let ctx = minijinja::context! {
        artifacts => artifacts,
        upload_names => upload_names(s),
        errors => errors,
        notice => notice,
        tftp_enabled => s.cfg.tftp.is_some(),
        tftp_listening => s.tftp_addr.map(|a| a.to_string()),
        tftp_root => s.cfg.tftp_root().display().to_string(),
        boot_dir => s.cfg.boot_dir.display().to_string(),
        base_url => base_url,
        host => host,
        cmdline => s.cfg.netboot.cmdline.clone(),
        ..base(s, session, "netboot").await
    };
    render_status(status, "netboot.html", ctx)
}

/// `http://10.0.0.5:8080` → `10.0.0.5` (the TFTP next-server).
fn host_of(base_url: &str) -> String {
    let rest = base_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(base_url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    hostport
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(hostport)
        .to_string()
}

pub async fn show(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.get("uploaded").map(|n| format!("Stored {n}."));
    page(
        &s,
        &session,
        &headers,
        StatusCode::OK,
        FieldErrors::new(),
        notice,
    )
    .await
}

/// `POST /ui/netboot/upload` (multipart: `csrf`, `name`, then `file`, streamed to disk).
pub async fn upload(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    headers: HeaderMap,
    MultipartForm(mp): MultipartForm,
) -> Response {
    match receive(&s, mp).await {
        Ok(name) => Redirect::to(&format!(
            "/ui/netboot?uploaded={}",
            bty_source::oci::urlencode(&name)
        ))
        .into_response(),
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            page(&s, &session, &headers, status, errors, None).await
        }
    }
}

/// Store the upload's file under the chosen name; the name stored, or what to say by which
/// field.
async fn receive(s: &AppState, mut mp: axum::extract::Multipart) -> Result<String, FieldErrors> {
    let fail = |field: &str, msg: String| FieldErrors::from([(field.to_string(), msg)]);
    let allowed = upload_names(s);
    let mut name: Option<String> = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(fail("file", "Choose a file to upload.".into())),
            Err(e) => return Err(fail("file", format!("The upload was cut: {e}"))),
        };
        match field.name() {
            Some("name") => {
                name = super::csrf::small_text(field, super::csrf::TEXT_PART)
                    .await
                    .ok()
                    .map(|t| t.trim().to_string())
            }
            Some("file") => {
                let Some(n) = name.filter(|n| allowed.contains(n)) else {
                    let msg = "Choose which boot file this is (before the file).";
                    return Err(fail("name", msg.into()));
                };
                if field.file_name().is_none_or(str::is_empty) {
                    return Err(fail("file", "Choose a file to upload.".into()));
                }
                return match crate::ops::boot::store(s, &n, field).await {
                    Ok(_) => Ok(n),
                    Err(e) => Err(super::field_errors(&e, "file")),
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        assert_eq!(super::host_of("http://10.0.0.5:8080"), "10.0.0.5");
        assert_eq!(super::host_of("https://bty.lab/x"), "bty.lab");
        assert_eq!(super::host_of("http://[fe80::1]:80"), "fe80::1");
    }
}
