//! An OCI distribution client for `oras://` references, focused on what a flasher needs:
//! resolve a tag to a manifest digest once (every later request uses that frozen digest),
//! follow an image index to this machine's platform, pick the disk-image layer, and hand its
//! blob to [`HttpSource`] (streaming with resume, or Range reads for qcow2) with the layer
//! digest as the digest the bytes must have.
//!
//! Auth: anonymous pull through the registry's `WWW-Authenticate` bearer challenge, or
//! credentials from `BTY_REGISTRY_USER`/`BTY_REGISTRY_PASSWORD` or the Docker config
//! (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`: `auths.<registry>.auth` or
//! `identitytoken`). Tokens travel only in request headers — never on a command line or in
//! logs. Plain HTTP is used only for loopback registries or those listed in
//! `BTY_INSECURE_REGISTRIES` (comma-separated `host[:port]`).

use std::sync::Arc;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::SourceError;
use crate::http::{HttpClient, HttpSource};
use crate::oras_ref::OrasRef;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A layer annotation that marks the disk image explicitly (value `"true"`).
pub const DISK_ANNOTATION: &str = "dev.bty.disk";
const TITLE: &str = "org.opencontainers.image.title";
const MAX_MANIFEST: u64 = 4 << 20;

/// Layer media types and title endings that are never the disk image.
const NOT_DISK_TYPES: [&str; 9] = [
    "application/vnd.dev.cosign",
    "application/vnd.dev.sigstore",
    "application/vnd.in-toto",
    "application/vnd.dsse",
    "spdx",
    "cyclonedx",
    "application/vnd.oci.empty.v1+json",
    "application/vnd.cncf.helm",
    "application/vnd.cncf.notary",
];
const NOT_DISK_TITLES: [&str; 10] = [
    ".sha256", ".sha512", ".sig", ".asc", ".pem", ".cert", ".sbom", ".att", ".json", ".txt",
];
const DISK_TITLES: [&str; 9] = [
    ".img", ".raw", ".qcow2", ".zst", ".xz", ".gz", ".bz2", ".iso", ".bin",
];

fn err(r: &OrasRef, detail: impl Into<String>) -> SourceError {
    SourceError::Protocol {
        url: r.to_string(),
        detail: detail.into(),
    }
}

/// Credentials for one registry.
#[derive(Clone)]
enum Credentials {
    Basic { user: String, password: String },
    IdentityToken(String),
}

fn docker_config_credentials(registry: &str) -> Option<Credentials> {
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => std::path::PathBuf::from(d).join("config.json"),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    let doc: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = doc.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(k, v)| {
        let key = k
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let key = key
            .strip_suffix("/v1")
            .or_else(|| key.strip_suffix("/v2"))
            .unwrap_or(key);
        (key == registry).then_some(v)
    })?;
    if let Some(t) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Some(Credentials::IdentityToken(t.to_string()));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credentials::Basic {
        user: user.into(),
        password: password.into(),
    })
}

fn credentials(registry: &str) -> Option<Credentials> {
    match (
        std::env::var("BTY_REGISTRY_USER"),
        std::env::var("BTY_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) if !user.is_empty() => Some(Credentials::Basic { user, password }),
        _ => docker_config_credentials(registry),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "[::1]" || host == "::1"
}

/// `Bearer realm="…",service="…",scope="…"` → lower-cased keys and values.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.push((k.trim().to_ascii_lowercase(), v.to_string()));
        rest = next.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

/// What resolving an `oras://` reference produced.
pub struct ResolvedBlob {
    /// The reference pinned to the manifest digest actually used.
    pub pinned: OrasRef,
    pub layer_digest: String,
    pub layer_size: Option<u64>,
    pub layer_media_type: String,
    pub layer_title: Option<String>,
    /// Why this layer was chosen, for `inspect`.
    pub choice: String,
    pub source: Arc<HttpSource>,
}

pub struct OciClient {
    http: HttpClient,
    platform: String,
    insecure: Vec<String>,
}

fn this_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("linux/{arch}")
}

impl ResolvedBlob {
    /// Lines explaining the resolution, for `inspect`.
    pub fn notes(&self) -> Vec<String> {
        vec![
            format!("resolved to {}", self.pinned),
            format!(
                "disk layer {} ({}{}), chosen because {}",
                self.layer_digest,
                self.layer_media_type,
                self.layer_title
                    .as_deref()
                    .map(|t| format!(", {t}"))
                    .unwrap_or_default(),
                self.choice
            ),
        ]
    }
}

impl OciClient {
    /// `platform` as `os/arch[/variant]` (default: this machine); `insecure`: registries that
    /// may be reached over plain HTTP, in addition to loopback and `BTY_INSECURE_REGISTRIES`.
    pub fn new(http: HttpClient, platform: Option<String>, insecure: Vec<String>) -> OciClient {
        let mut insecure = insecure;
        if let Ok(env) = std::env::var("BTY_INSECURE_REGISTRIES") {
            insecure.extend(
                env.split(',')
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty()),
            );
        }
        OciClient {
            http,
            platform: platform.unwrap_or_else(this_platform),
            insecure,
        }
    }

    fn base(&self, r: &OrasRef) -> String {
        let plain = is_loopback(r.host())
            || self
                .insecure
                .iter()
                .any(|h| *h == r.registry || h == r.host());
        format!(
            "{}://{}/v2/{}",
            if plain { "http" } else { "https" },
            r.registry,
            r.repository
        )
    }

    /// The Authorization header for `r`, from the registry's challenge (or none needed).
    fn authorize(&self, r: &OrasRef, probe_url: &str) -> Result<Option<String>, SourceError> {
        let resp = self
            .http
            .get(probe_url, &[("Accept".into(), OCI_MANIFEST.into())])?;
        if resp.status().as_u16() != 401 {
            return Ok(None);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                err(
                    r,
                    "the registry wants authentication but sent no WWW-Authenticate challenge",
                )
            })?;
        let (scheme, params) = parse_challenge(&challenge);
        let creds = credentials(&r.registry);
        let basic = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        if scheme == "basic" {
            return match creds {
                Some(Credentials::Basic { user, password }) => Ok(Some(basic(&user, &password))),
                _ => Err(SourceError::Denied {
                    url: r.to_string(),
                    status: 401,
                }),
            };
        }
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let realm = get("realm").ok_or_else(|| err(r, "the bearer challenge has no realm"))?;
        let scope = get("scope").unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        let mut url = format!("{realm}?scope={}", urlencode(&scope));
        if let Some(service) = get("service") {
            url.push_str(&format!("&service={}", urlencode(&service)));
        }
        let (parts, body) = match &creds {
            // An identity token (from `docker login` with some registries) is an OAuth2 refresh
            // token: exchanged by POST, as the distribution token spec describes.
            Some(Credentials::IdentityToken(t)) => {
                let service = get("service").unwrap_or_default();
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                    ("service", service.as_str()),
                    ("scope", scope.as_str()),
                    ("client_id", "bty"),
                ];
                self.http.post_form_small(&realm, &form, 1 << 20)?
            }
            Some(Credentials::Basic { user, password }) => self.http.get_small(
                &url,
                &[("Authorization".to_string(), basic(user, password))],
                1 << 20,
            )?,
            None => self.http.get_small(&url, &[], 1 << 20)?,
        };
        match parts.status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(SourceError::Denied {
                    url: r.to_string(),
                    status: parts.status.as_u16(),
                });
            }
            s => {
                return Err(SourceError::Status {
                    url: realm,
                    status: s,
                });
            }
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| err(r, format!("bad token response: {e}")))?;
        let token = doc
            .get("token")
            .or_else(|| doc.get("access_token"))
            .and_then(Value::as_str)
            .ok_or_else(|| err(r, "the token response has no token"))?;
        Ok(Some(format!("Bearer {token}")))
    }

    /// GET a manifest by tag or digest; returns (media type, body, sha256 digest of the body).
    fn manifest(
        &self,
        r: &OrasRef,
        base: &str,
        reference: &str,
        auth: &Option<String>,
    ) -> Result<(String, Vec<u8>, String), SourceError> {
        let url = format!("{base}/manifests/{reference}");
        let mut headers = vec![(
            "Accept".to_string(),
            [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", "),
        )];
        if let Some(a) = auth {
            headers.push(("Authorization".into(), a.clone()));
        }
        let (parts, body) = self.http.get_small(&url, &headers, MAX_MANIFEST)?;
        match parts.status.as_u16() {
            200 => {}
            404 => return Err(SourceError::NotFound { url: r.to_string() }),
            401 | 403 => {
                return Err(SourceError::Denied {
                    url: r.to_string(),
                    status: parts.status.as_u16(),
                });
            }
            s => return Err(SourceError::Status { url, status: s }),
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(err(
                r,
                format!("the manifest's digest is {digest}, not the {reference} asked for"),
            ));
        }
        let declared: Option<String> = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .or(declared)
            .unwrap_or_default();
        if ![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&content_type.as_str())
        {
            return Err(err(r, format!("unexpected manifest type {content_type:?}")));
        }
        Ok((content_type, body, digest))
    }

    /// Resolve `r` to its disk-image blob.
    pub fn resolve(&self, r: &OrasRef) -> Result<ResolvedBlob, SourceError> {
        let base = self.base(r);
        let auth = self.authorize(r, &format!("{base}/manifests/{}", r.reference_str()))?;
        let (mut kind, mut body, mut digest) = self.manifest(r, &base, r.reference_str(), &auth)?;
        if kind == OCI_INDEX || kind == DOCKER_LIST {
            let index: Value =
                serde_json::from_slice(&body).map_err(|e| err(r, format!("bad index: {e}")))?;
            let child = self.pick_platform(r, &index)?;
            (kind, body, digest) = self.manifest(r, &base, &child, &auth)?;
            if kind == OCI_INDEX || kind == DOCKER_LIST {
                return Err(err(r, "an index inside an index is not supported"));
            }
        }
        let manifest: Value =
            serde_json::from_slice(&body).map_err(|e| err(r, format!("bad manifest: {e}")))?;
        let layers = manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (layer, choice) = pick_layer(&layers).map_err(|d| err(r, d))?;
        let layer_digest = layer
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !layer_digest.starts_with("sha256:") || layer_digest.len() != 71 {
            return Err(err(
                r,
                format!("the chosen layer has an unusable digest {layer_digest:?}"),
            ));
        }
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization".to_string(), a.clone()));
        }
        let source = HttpSource::open(
            self.http.clone(),
            &format!("{base}/blobs/{layer_digest}"),
            headers,
        )?;
        Ok(ResolvedBlob {
            pinned: r.pinned(&digest),
            layer_size: layer.get("size").and_then(Value::as_u64),
            layer_media_type: layer
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            layer_title: title(&layer).map(str::to_string),
            layer_digest,
            choice,
            source: Arc::new(source),
        })
    }

    /// Open the blob `digest` (`sha256:<hex>`) of `r`'s repository directly, with a fresh token:
    /// what a cache that already knows the layer uses to fill, and to resume after a token or a
    /// pre-signed redirect expired (each call authorizes anew; each request follows the
    /// registry's redirect anew).
    pub fn open_blob(&self, r: &OrasRef, digest: &str) -> Result<HttpSource, SourceError> {
        let base = self.base(r);
        let auth = self.authorize(r, &format!("{base}/manifests/{}", r.reference_str()))?;
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization".to_string(), a.clone()));
        }
        HttpSource::open(
            self.http.clone(),
            &format!("{base}/blobs/{digest}"),
            headers,
        )
    }

    fn pick_platform(&self, r: &OrasRef, index: &Value) -> Result<String, SourceError> {
        let entries = index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let want: Vec<&str> = self.platform.split('/').collect();
        let matches = |e: &Value| {
            let p = e.get("platform");
            let field = |k: &str| {
                p.and_then(|p| p.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            field("os") == want.first().copied().unwrap_or("")
                && field("architecture") == want.get(1).copied().unwrap_or("")
                && want.get(2).is_none_or(|v| field("variant") == *v)
        };
        let chosen = entries.iter().find(|e| matches(e)).or_else(|| {
            // An artifact index without platforms: the only entry is the one.
            (entries.len() == 1 && entries[0].get("platform").is_none()).then(|| &entries[0])
        });
        let Some(e) = chosen else {
            let seen: Vec<String> = entries
                .iter()
                .filter_map(|e| e.get("platform"))
                .map(|p| {
                    let f = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
                    format!("{}/{}", f("os"), f("architecture"))
                })
                .collect();
            return Err(err(
                r,
                format!(
                    "the index has no manifest for {} (it has: {}); choose one with --platform",
                    self.platform,
                    seen.join(", ")
                ),
            ));
        };
        e.get("digest")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err(r, "index entry without digest"))
    }
}

fn title(layer: &Value) -> Option<&str> {
    layer
        .get("annotations")
        .and_then(|a| a.get(TITLE))
        .and_then(Value::as_str)
}

/// Choose the disk-image layer and say why.
pub fn pick_layer(layers: &[Value]) -> Result<(Value, String), String> {
    if layers.is_empty() {
        return Err("the manifest has no layers".into());
    }
    let media = |l: &Value| {
        l.get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let size = |l: &Value| l.get("size").and_then(Value::as_u64).unwrap_or(0);
    if let Some(l) = layers.iter().find(|l| {
        l.get("annotations")
            .and_then(|a| a.get(DISK_ANNOTATION))
            .and_then(Value::as_str)
            == Some("true")
    }) {
        return Ok((l.clone(), format!("annotated {DISK_ANNOTATION}=true")));
    }
    let candidates: Vec<&Value> = layers
        .iter()
        .filter(|l| !NOT_DISK_TYPES.iter().any(|t| media(l).contains(t)))
        .filter(|l| {
            title(l).is_none_or(|t| {
                !NOT_DISK_TITLES
                    .iter()
                    .any(|s| t.to_ascii_lowercase().ends_with(s))
            })
        })
        .collect();
    if let Some(l) = candidates.iter().find(|l| {
        title(l).is_some_and(|t| {
            DISK_TITLES
                .iter()
                .any(|s| t.to_ascii_lowercase().ends_with(s))
        })
    }) {
        return Ok((
            (*l).clone(),
            format!("its title {:?} names a disk image", title(l).unwrap_or("")),
        ));
    }
    let Some(l) = candidates.iter().max_by_key(|l| size(l)) else {
        let kinds: Vec<String> = layers.iter().map(media).collect();
        return Err(format!(
            "no disk-image layer: every layer is a signature, checksum, SBOM or similar ({})",
            kinds.join(", ")
        ));
    };
    Ok((
        (*l).clone(),
        "the largest layer that is not a signature, checksum or SBOM".into(),
    ))
}

/// Everything but RFC 3986's unreserved characters, percent-encoded.
pub fn urlencode(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn challenges_are_parsed() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
    }

    #[test]
    fn the_disk_layer_is_chosen_over_signatures_and_bigger_blobs() {
        let layers = vec![
            json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": 9_999_999, "digest": "sha256:a"}),
            json!({"mediaType": "application/octet-stream", "size": 5_000_000, "digest": "sha256:b", "annotations": {TITLE: "notes.txt"}}),
            json!({"mediaType": "application/vnd.bty.disk.raw.zst", "size": 100, "digest": "sha256:c", "annotations": {TITLE: "disk.img.zst"}}),
        ];
        let (l, why) = pick_layer(&layers).unwrap();
        assert_eq!(l["digest"], "sha256:c");
        assert!(why.contains("title"));
        let only_sigs = vec![layers[0].clone()];
        assert!(
            pick_layer(&only_sigs)
                .unwrap_err()
                .contains("no disk-image layer")
        );
        let marked = vec![
            layers[2].clone(),
            json!({"digest": "sha256:d", "size": 1, "annotations": {DISK_ANNOTATION: "true"}}),
        ];
        assert_eq!(pick_layer(&marked).unwrap().0["digest"], "sha256:d");
    }
}
