//! A registry front end whose bearer tokens expire a second after they are minted, as public
//! registries' short-lived tokens do over a long pull, and which drops the first whole blob
//! download midway while sending it slowly — so the pull must resume after its token expired.
//! Forwarding is the registry helper's (`registry::forward`); included by `catalog_oras.rs`
//! beside that module.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a token is good for.
pub const TOKEN_LIFE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Seen {
    /// Tokens minted.
    pub minted: AtomicU64,
    /// Requests that came with a token that had expired.
    pub expired: AtomicU64,
    dropped: AtomicBool,
    tokens: Mutex<Vec<(String, Instant)>>,
}

pub struct Front {
    pub port: u16,
    pub seen: Arc<Seen>,
}

impl Front {
    pub fn start(upstream: u16) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, port, upstream, &s);
                });
            }
        });
        Front { port, seen }
    }
}

fn handle(stream: TcpStream, port: u16, upstream: u16, seen: &Seen) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
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
        let n = seen.minted.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("short-lived-{n}");
        seen.tokens
            .lock()
            .unwrap()
            .push((token.clone(), Instant::now()));
        let body = format!("{{\"token\":\"{token}\"}}");
        return write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let given = get("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
    let minted = given.as_ref().and_then(|t| {
        seen.tokens
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == t)
            .map(|(_, at)| *at)
    });
    let valid = minted.is_some_and(|at| at.elapsed() < TOKEN_LIFE);
    if minted.is_some() && !valid {
        seen.expired.fetch_add(1, Ordering::SeqCst);
    }
    if !valid {
        let repo = target
            .trim_start_matches("/v2/")
            .split("/manifests/")
            .next()
            .unwrap_or("")
            .split("/blobs/")
            .next()
            .unwrap_or("");
        return write!(
            out,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test\",scope=\"repository:{repo}:pull\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let Some(mut body) = crate::registry::forward(&mut out, "GET", &target, &headers, upstream)?
    else {
        return Ok(());
    };
    let whole_blob = target.contains("/blobs/") && get("range").is_none();
    let drop_this = whole_blob && !seen.dropped.swap(true, Ordering::SeqCst);
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0usize;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            return out.flush();
        }
        out.write_all(&buf[..n])?;
        sent += n;
        if drop_this {
            // Slowly, then cut: by the time the pull resumes, its token has expired.
            std::thread::sleep(Duration::from_millis(40));
            if sent >= 2 << 20 {
                let _ = out.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
    }
}
