//! Helpers for the bty-web end-to-end tests: the real binary on 127.0.0.1 with an ephemeral
//! port and its own state folder, and a small HTTP client that keeps the session cookie.

#![allow(dead_code)]

pub mod origin;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    pub base: String,
    /// What the server printed before it was ready.
    pub startup: Vec<String>,
    pub state: tempfile::TempDir,
    child: Child,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start with extra environment variables; no config files but an empty one.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Server::spawn(tempfile::tempdir().unwrap(), env)
    }

    /// Stop the server and start it again on the same state folder.
    pub fn restart(self, env: &[(&str, &str)]) -> Server {
        let mut me = self;
        let _ = me.child.kill();
        let _ = me.child.wait();
        let state = std::mem::replace(&mut me.state, tempfile::tempdir().unwrap());
        Server::spawn(state, env)
    }

    fn spawn(state: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bty-web"));
        cmd.arg("--config")
            .arg(state.path().join("none.toml"))
            .env("BTY_SERVER_HOST", "127.0.0.1")
            .env("BTY_SERVER_PORT", "0")
            .env("BTY_PATHS_STATE_DIR", state.path())
            .env("BTY_LOG", "warn")
            .env_remove("BTY_ADMIN_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start bty-web");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut startup = Vec::new();
        let base = loop {
            let line = lines
                .next()
                .expect("bty-web exited before serving")
                .unwrap();
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            startup.push(line);
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server {
            base,
            startup,
            state,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// The server's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The built-in TFTP server's port, from the start-up line (needs `BTY_TFTP_ENABLED`).
    pub fn tftp_port(&self) -> u16 {
        let line = self
            .startup
            .iter()
            .find(|l| l.contains("tftp on udp"))
            .unwrap_or_else(|| panic!("no tftp line in {:?}", self.startup));
        line.split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line}"))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state.path().to_path_buf()
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            cookie: None,
        }
    }

    /// A client signed in with `password`.
    pub fn signed_in(&self, password: &str) -> Client {
        let mut c = self.client();
        let r = c.login(password);
        assert_eq!(r.status, 303, "login: {}", r.body);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Client {
    pub base: String,
    agent: ureq::Agent,
    /// The `bty-token` cookie, as `bty-token=VALUE`.
    pub cookie: Option<String>,
}

impl Client {
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (ctype, bytes) = body.unwrap_or(("", Vec::new()));
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        let req = req.body(bytes).unwrap();
        let mut resp = self.agent.run(req).expect("HTTP request");
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (k, v) in &headers {
            if k == "set-cookie" && v.starts_with("bty-token=") {
                let pair = v.split(';').next().unwrap().to_string();
                self.cookie = if pair == "bty-token=" {
                    None
                } else {
                    Some(pair)
                };
            }
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Resp {
            status: resp.status().as_u16(),
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    pub fn delete(&mut self, path: &str) -> Resp {
        self.request("DELETE", path, &[], None)
    }

    pub fn json(&mut self, method: &str, path: &str, body: &serde_json::Value) -> Resp {
        self.request(
            method,
            path,
            &[],
            Some(("application/json", body.to_string().into_bytes())),
        )
    }

    /// This session's CSRF token, read from a UI form.
    pub fn csrf(&mut self) -> String {
        let page = self.get("/ui/account").body;
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .expect("a CSRF token on /ui/account")
            .to_string()
    }

    /// The kinds of the events `GET /events?QUERY` lists, newest first.
    pub fn event_kinds(&mut self, query: &str) -> Vec<String> {
        self.get(&format!("/events?{query}")).json()["events"]
            .as_array()
            .expect("an events list")
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    }

    /// Sign out through the UI form (with the CSRF token).
    pub fn logout(&mut self) -> Resp {
        let token = self.csrf();
        self.form("/ui/logout", &[("csrf", &token)])
    }

    pub fn form(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.form_with(path, fields, &[])
    }

    pub fn form_with(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect();
        self.request(
            "POST",
            path,
            headers,
            Some((
                "application/x-www-form-urlencoded",
                body.join("&").into_bytes(),
            )),
        )
    }

    pub fn login(&mut self, password: &str) -> Resp {
        self.form("/ui/login", &[("password", password)])
    }
}

pub fn urlencode(s: &str) -> String {
    bty_source::oci::urlencode(s)
}

/// A one-file HTTP server on 127.0.0.1 (for sha256 manifests and catalogs).
pub fn serve_files(files: Vec<(&'static str, String)>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            let found = files.iter().find(|(p, _)| *p == path);
            let resp = match found {
                Some((_, body)) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .into(),
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// An HTTP server on 127.0.0.1 serving the current contents of `path` at every URL.
pub fn serve_path(path: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let resp = match std::fs::read(&path) {
                Ok(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                }
                Err(_) => {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                }
            };
            let _ = s.write_all(&resp);
        }
    });
    format!("http://127.0.0.1:{port}/catalog.toml")
}

pub fn sha256_hex_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

pub fn sha256_hex(s: &str) -> String {
    sha256_hex_bytes(s.as_bytes())
}

pub fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A TCP connection to `to` from the local address `from` (127.0.0.2 and the like: loopback
/// answers on all of 127.0.0.0/8), so a test can be a second client address.
pub fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(to) = to else {
        panic!("IPv4 only");
    };
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the addresses are valid
    // sockaddr_in values for the length given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let local = sin(from, 0);
        assert_eq!(
            libc::bind(fd, &local as *const _ as *const libc::sockaddr, len),
            0,
            "bind {from}"
        );
        let remote = sin(*to.ip(), to.port());
        assert_eq!(
            libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len),
            0,
            "connect {to}"
        );
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// One HTTP/1.1 exchange from the local address `from`: status and body.
pub fn http_from(
    from: &str,
    to: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = connect_from(from.parse().unwrap(), to);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of metric `name` in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}
