//! The images page: the catalog (name, format, size, digest, origin, the machines bound to
//! each entry), add by URL (optional sha256 or checksum-file link), import a catalog (URL or
//! uploaded file), and delete after a confirmation that names the machines using the entry.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bty_proto::catalog::CatalogEntryAdd;
use serde::{Deserialize, Serialize};

use super::Operator;
use super::csrf::MultipartForm;
use super::{FieldErrors, base, error_page, field_errors, render_status};
use crate::db::{catalog, events, machines};
use crate::guard::Session;
use crate::state::AppState;

/// The add form as typed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub sha_url: String,
}

impl AddForm {
    fn body(&self) -> CatalogEntryAdd {
        let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        CatalogEntryAdd {
            image_url: self.image_url.trim().to_string(),
            sha_url: opt(&self.sha_url),
            image_ref: None,
            name: opt(&self.name),
            sha256: opt(&self.sha256),
            description: None,
            arch: None,
            cache: None,
        }
    }
}

#[derive(Debug, Default)]
struct View {
    add: AddForm,
    import_source: String,
    errors: FieldErrors,
    notice: Option<String>,
}

/// MACs bound to each image ref.
async fn bound(s: &AppState) -> HashMap<String, Vec<String>> {
    let list = s.db.read(machines::list).await.unwrap_or_default();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for m in list {
        if let Some(r) = m.bty_image_ref {
            out.entry(r).or_default().push(m.mac);
        }
    }
    out
}

async fn page(s: &AppState, session: &Session, status: StatusCode, v: View) -> Response {
    let Ok(entries) = s.db.read(catalog::list).await else {
        return error_page(
            s,
            session,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the catalog",
        )
        .await;
    };
    let used = bound(s).await;
    let cached =
        s.db.read(crate::db::cache::complete)
            .await
            .unwrap_or_default();
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            let in_cache = cached.contains(&e.bty_image_ref)
                || e.disk_image_sha.as_ref().is_some_and(|d| cached.contains(d));
            minijinja::context! {
                e => e,
                cache => if !s.cache.serves(e) { "not cached" } else if in_cache { "cached" } else { "on first use" },
                unflashable => e.unflashable(),
                machines => used.get(&e.bty_image_ref).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let activity =
        s.db.read(|c| {
            events::query(
                c,
                &events::Filter {
                    subject_kind: Some("catalog".into()),
                    limit: Some(10),
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap_or_default();
    let ctx = minijinja::context! {
        rows => rows,
        add => v.add,
        import_source => v.import_source,
        errors => v.errors,
        notice => v.notice,
        activity => activity,
        ..base(s, session, "images").await
    };
    render_status(status, "images.html", ctx)
}

pub async fn show(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let notice = q
        .get("added")
        .map(|n| format!("Added {n}."))
        .or_else(|| q.get("deleted").map(|n| format!("Deleted {n}.")))
        .or_else(|| q.get("imported").cloned());
    page(
        &s,
        &session,
        StatusCode::OK,
        View {
            notice,
            ..Default::default()
        },
    )
    .await
}

pub async fn add(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    Form(form): Form<AddForm>,
) -> Response {
    let refused = |form: AddForm, errors: FieldErrors| View {
        add: form,
        errors,
        ..Default::default()
    };
    if form.image_url.trim().is_empty() {
        let msg = "Give the image's http(s):// or oras:// URL.".to_string();
        let v = refused(form, FieldErrors::from([("image_url".to_string(), msg)]));
        return page(&s, &session, StatusCode::UNPROCESSABLE_ENTITY, v).await;
    }
    match crate::ops::catalog::add_entry(&s, form.body(), ip).await {
        Ok(e) => Redirect::to(&format!(
            "/ui/images?added={}",
            bty_source::oci::urlencode(&e.name)
        ))
        .into_response(),
        Err(e) => {
            let mut errors = field_errors(&e, "image_url");
            // The API calls the ref field `ref`; the form has no such field.
            if let Some(m) = errors.remove("ref") {
                errors.insert("image_url".into(), m);
            }
            let v = refused(form, errors);
            page(&s, &session, StatusCode::UNPROCESSABLE_ENTITY, v).await
        }
    }
}

fn imported_notice(r: &bty_proto::catalog::ImportResult) -> String {
    format!(
        "Imported {} entries from {} ({} already present).",
        r.imported, r.source, r.skipped
    )
}

/// `POST /ui/images/import`: a catalog by URL.
pub async fn import_url(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let source = form
        .get("source")
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    let fail = |msg: String, source: String| View {
        import_source: source,
        errors: FieldErrors::from([("source".to_string(), msg)]),
        ..Default::default()
    };
    if !bty_source::catalog::fetchable(&source) {
        let v = fail(
            "Give the catalog's http(s):// or oras:// URL.".into(),
            source,
        );
        return page(&s, &session, StatusCode::UNPROCESSABLE_ENTITY, v).await;
    }
    let src = source.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        bty_source::catalog::load_published(&src, &crate::fetch::operator())
    })
    .await;
    let loaded = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let v = fail(format!("Cannot import: {e}"), source);
            return page(&s, &session, StatusCode::UNPROCESSABLE_ENTITY, v).await;
        }
        Err(_) => {
            return error_page(
                &s,
                &session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the loader failed",
            )
            .await;
        }
    };
    finish_import(&s, &session, source, loaded, ip).await
}

async fn finish_import(
    s: &AppState,
    session: &Session,
    source: String,
    loaded: bty_source::catalog::Catalog,
    ip: String,
) -> Response {
    match crate::ops::catalog::store_import(s, source, loaded, ip).await {
        Ok(r) => Redirect::to(&format!(
            "/ui/images?imported={}",
            bty_source::oci::urlencode(&imported_notice(&r))
        ))
        .into_response(),
        Err(_) => {
            error_page(
                s,
                session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store the catalog",
            )
            .await
        }
    }
}

/// `POST /ui/images/upload`: a catalog file (multipart: `csrf`, then `file`).
pub async fn import_upload(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    MultipartForm(mut mp): MultipartForm,
) -> Response {
    let mut text = None;
    let mut filename = String::from("upload");
    let fail = |msg: String| View {
        errors: FieldErrors::from([("file".to_string(), msg)]),
        ..Default::default()
    };
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some("file") {
            if let Some(n) = field.file_name() {
                filename = n.to_string();
            }
            let cap = bty_source::catalog::MAX_CATALOG_BYTES as usize;
            match super::csrf::small_text(field, cap).await {
                Ok(t) => text = Some(t),
                Err(e) => {
                    return page(
                        &s,
                        &session,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        fail(format!("Cannot read the file: {e}")),
                    )
                    .await;
                }
            }
        }
    }
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return page(
            &s,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            fail("Choose a catalog.toml file.".into()),
        )
        .await;
    };
    let source = format!("upload:{filename}");
    let loaded = match bty_source::catalog::parse_untrusted(&text, &source) {
        Ok(c) => c,
        Err(e) => {
            return page(
                &s,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                fail(e.to_string()),
            )
            .await;
        }
    };
    finish_import(&s, &session, source, loaded, ip).await
}

/// `GET /ui/images/delete?src=`: the confirmation, naming the machines bound to the entry.
pub async fn confirm_delete(
    State(s): State<AppState>,
    Operator { session, .. }: Operator,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let src = q.get("src").cloned().unwrap_or_default();
    let entries = s.db.read(catalog::list).await.unwrap_or_default();
    let Some(entry) = entries.into_iter().find(|e| e.src == src) else {
        return error_page(
            &s,
            &session,
            StatusCode::NOT_FOUND,
            "no catalog entry with that source",
        )
        .await;
    };
    let r = entry.bty_image_ref.clone();
    let used =
        s.db.read(move |c| catalog::machines_using(c, &r))
            .await
            .unwrap_or_default();
    let ctx = minijinja::context! {
        e => entry,
        machines => used,
        ..base(&s, &session, "images").await
    };
    render_status(StatusCode::OK, "image_delete.html", ctx)
}

pub async fn delete(
    State(s): State<AppState>,
    Operator { session, ip }: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let src = form.get("src").cloned().unwrap_or_default();
    match crate::ops::catalog::delete_entry(&s, src, ip).await {
        Ok(Some(e)) => Redirect::to(&format!(
            "/ui/images?deleted={}",
            bty_source::oci::urlencode(&e.name)
        ))
        .into_response(),
        Ok(None) => {
            error_page(
                &s,
                &session,
                StatusCode::NOT_FOUND,
                "no catalog entry with that source",
            )
            .await
        }
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
