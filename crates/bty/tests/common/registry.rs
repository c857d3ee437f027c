//! A real OCI registry for the tests — Debian's `docker-registry` (the CNCF distribution
//! registry) on 127.0.0.1 with an ephemeral port and a temporary storage folder, stopped on
//! drop — plus pushing through the distribution API, and a token front end that demands a
//! bearer token the way public registries do.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let reg = Registry {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = agent().get(&format!("{}/v2/", reg.base())).call()
                && r.status().as_u16() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "the registry did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        reg
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let r = agent()
            .post(&format!("{}/v2/{repo}/blobs/uploads/", self.base()))
            .send_empty()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "start upload");
        let loc = r
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", self.base())
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = agent()
            .put(&format!("{loc}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "finish upload");
        digest
    }

    /// Push a manifest; returns its digest.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &serde_json::Value,
    ) -> String {
        let bytes = serde_json::to_vec(body).unwrap();
        let r = agent()
            .put(&format!("{}/v2/{repo}/manifests/{reference}", self.base()))
            .header("Content-Type", media_type)
            .send(&bytes[..])
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            201,
            "push manifest: {}",
            r.into_body().read_to_string().unwrap_or_default()
        );
        sha256_digest(&bytes)
    }

    /// Push an artifact whose layers are (media type, title, bytes); returns the manifest digest.
    pub fn push_artifact(&self, repo: &str, tag: &str, layers: &[(&str, &str, &[u8])]) -> String {
        let config = b"{}";
        let config_digest = self.push_blob(repo, config);
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(mt, title, data)| {
                let digest = self.push_blob(repo, data);
                serde_json::json!({
                    "mediaType": mt, "digest": digest, "size": data.len(),
                    "annotations": { "org.opencontainers.image.title": title }
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.bty.disk",
            "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2 },
            "layers": layers,
        });
        self.push_manifest(
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A front end that answers like a public registry's token flow: `/v2/…` without
/// `Authorization: Bearer <token>` gets 401 and a `WWW-Authenticate: Bearer realm=…` challenge;
/// `/token` hands out the token (checking Basic credentials when `basic` is set); everything
/// else is forwarded to the registry behind it.
pub struct TokenProxy {
    pub port: u16,
}

pub const TOKEN: &str = "test-token-7f3a";

impl TokenProxy {
    /// A front end whose token endpoint takes only an OAuth2 refresh token (`POST /token`,
    /// `grant_type=refresh_token`), as registries do for Docker identity tokens.
    pub fn start_oauth(upstream: u16, refresh_token: &str) -> TokenProxy {
        Self::start_with(upstream, Some(format!("refresh:{refresh_token}")))
    }

    pub fn start(upstream: u16, basic: Option<(&str, &str)>) -> TokenProxy {
        let expected = basic.map(|(u, p)| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        Self::start_with(upstream, expected)
    }

    fn start_with(upstream: u16, expected: Option<String>) -> TokenProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected_basic = expected;
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let expected_basic = expected_basic.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, port, upstream, expected_basic);
                });
            }
        });
        TokenProxy { port }
    }
}

fn handle(
    stream: TcpStream,
    port: u16,
    upstream: u16,
    basic: Option<String>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| {
        headers
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut out = stream;
    if target.starts_with("/token") {
        let granted = match basic.as_deref().map(|b| (b, b.strip_prefix("refresh:"))) {
            None => true,
            // OAuth2: POST with a form carrying the refresh token.
            Some((_, Some(refresh))) => {
                let len: usize = get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut form = vec![0u8; len];
                std::io::Read::read_exact(&mut reader, &mut form)?;
                let form = String::from_utf8_lossy(&form).to_string();
                method == "POST"
                    && form.split('&').any(|kv| kv == "grant_type=refresh_token")
                    && form
                        .split('&')
                        .any(|kv| kv == format!("refresh_token={refresh}"))
            }
            Some((want, None)) => get("authorization").as_deref() == Some(want),
        };
        if !granted {
            return out.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        let body = format!("{{\"token\":\"{TOKEN}\"}}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return out.write_all(resp.as_bytes());
    }
    if get("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        let repo = target
            .trim_start_matches("/v2/")
            .split("/manifests/")
            .next()
            .unwrap_or("")
            .split("/blobs/")
            .next()
            .unwrap_or("");
        let resp = format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test-registry\",scope=\"repository:{repo}:pull\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return out.write_all(resp.as_bytes());
    }
    if let Some(mut body) = forward(&mut out, &method, &target, &headers, upstream)? {
        std::io::copy(&mut body, &mut out)?;
    }
    out.flush()
}

/// Send a request on to the registry on `upstream` (with its Accept, Range and If-Range),
/// write the answer's status line and headers to `out`, and hand back the body for the caller
/// to copy (`None` for HEAD).
pub fn forward(
    out: &mut TcpStream,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    upstream: u16,
) -> std::io::Result<Option<Box<dyn std::io::Read + Send>>> {
    let get = |k: &str| {
        headers
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut req = match method {
        "HEAD" => agent().head(&format!("http://127.0.0.1:{upstream}{target}")),
        _ => agent().get(&format!("http://127.0.0.1:{upstream}{target}")),
    };
    for k in ["accept", "range", "if-range"] {
        if let Some(v) = get(k) {
            req = req.header(k, &v);
        }
    }
    let resp = req.call().map_err(std::io::Error::other)?;
    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", resp.status());
    for k in [
        "content-type",
        "content-length",
        "content-range",
        "etag",
        "docker-content-digest",
        "accept-ranges",
    ] {
        if let Some(v) = resp.headers().get(k).and_then(|v| v.to_str().ok()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    Ok((method != "HEAD")
        .then(|| Box::new(resp.into_body().into_reader()) as Box<dyn std::io::Read + Send>))
}
