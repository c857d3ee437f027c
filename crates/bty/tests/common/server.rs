//! A small HTTP/1.1 file server for the tests, on 127.0.0.1 with an ephemeral port: single
//! byte ranges, ETag and If-Range, and injected faults — connections cut mid-body, and an
//! object that changes between requests. It counts requests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Faults {
    /// Cut this many responses short (only responses longer than `drop_after` count)…
    pub drops: usize,
    /// …after sending this many body bytes.
    pub drop_after: usize,
    /// When a request resumes (an open range from a byte past 0), serve this content (with a
    /// new ETag) from then on.
    pub change_on_resume: Option<Vec<u8>>,
    /// Ignore Range headers (always 200 with the whole body).
    pub no_ranges: bool,
    /// Send the body only up to this offset of the object, then hold the connection open
    /// without sending more (a stalled download); `stalled()` tells when it happened.
    pub stall_at: Option<usize>,
}

struct Object {
    body: Arc<Vec<u8>>,
    etag: String,
    faults: Faults,
    served: usize,
}

#[derive(Clone)]
pub struct TestServer {
    pub port: u16,
    objects: Arc<Mutex<HashMap<String, Object>>>,
    redirects: Arc<Mutex<HashMap<String, String>>>,
    requests: Arc<AtomicUsize>,
    stalls: Arc<AtomicUsize>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = TestServer {
            port,
            objects: Default::default(),
            redirects: Default::default(),
            requests: Default::default(),
            stalls: Default::default(),
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = s.handle(stream);
                });
            }
        });
        server
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.put_with(path, body, Faults::default());
    }

    pub fn put_with(&self, path: &str, body: Vec<u8>, faults: Faults) {
        let etag = format!("\"v1-{}\"", body.len());
        self.objects.lock().unwrap().insert(
            path.to_string(),
            Object {
                body: Arc::new(body),
                etag,
                faults,
                served: 0,
            },
        );
    }

    /// Answer requests for `from` with a 302 to `to`.
    pub fn redirect(&self, from: &str, to: &str) {
        self.redirects
            .lock()
            .unwrap()
            .insert(from.to_string(), to.to_string());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many responses have stalled (see `Faults::stall_at`).
    pub fn stalled(&self) -> usize {
        self.stalls.load(Ordering::SeqCst)
    }

    fn handle(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let target = line.split_whitespace().nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or("/").to_string();
        let head = line.starts_with("HEAD");
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut out = stream;
        if let Some(to) = self.redirects.lock().unwrap().get(&path).cloned() {
            let msg = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return out.write_all(msg.as_bytes());
        }
        let (body, etag, faults, cut) = {
            let mut objects = self.objects.lock().unwrap();
            let Some(obj) = objects.get_mut(&path) else {
                return out.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            };
            obj.served += 1;
            let resuming = headers
                .get("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .is_some_and(|r| r.ends_with('-') && !r.starts_with("0-"));
            if resuming && let Some(new) = obj.faults.change_on_resume.take() {
                obj.etag = format!("\"v2-{}\"", new.len());
                obj.body = Arc::new(new);
            }
            (
                obj.body.clone(),
                obj.etag.clone(),
                obj.faults.clone(),
                obj.faults.drops > 0,
            )
        };
        let total = body.len();
        let mut range = None;
        if let Some(r) = headers.get("range").filter(|_| !faults.no_ranges) {
            let if_range_ok = headers.get("if-range").is_none_or(|v| *v == etag);
            if if_range_ok
                && let Some((a, b)) = r.strip_prefix("bytes=").and_then(|s| s.split_once('-'))
            {
                let start: usize = a.parse().unwrap_or(0);
                let end: usize = if b.is_empty() {
                    total.saturating_sub(1)
                } else {
                    b.parse().unwrap_or(0)
                };
                if start >= total {
                    let msg = format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return out.write_all(msg.as_bytes());
                }
                range = Some((start, end.min(total - 1)));
            }
        }
        let start = range.map_or(0, |(s, _)| s);
        let (status, slice, extra) = match range {
            Some((s, e)) => (
                "206 Partial Content",
                &body[s..=e],
                format!("Content-Range: bytes {s}-{e}/{total}\r\n"),
            ),
            None => ("200 OK", &body[..], String::new()),
        };
        let head_text = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
            slice.len()
        );
        out.write_all(head_text.as_bytes())?;
        if head {
            return Ok(());
        }
        if cut && slice.len() > faults.drop_after {
            // Only answers long enough to be cut count against the budget.
            if let Some(obj) = self.objects.lock().unwrap().get_mut(&path) {
                obj.faults.drops = obj.faults.drops.saturating_sub(1);
            }
            out.write_all(&slice[..faults.drop_after])?;
            // Drop the connection mid-body.
            return out.shutdown(std::net::Shutdown::Both);
        }
        if let Some(at) = faults.stall_at
            && start < at
            && start + slice.len() > at
        {
            out.write_all(&slice[..at - start])?;
            out.flush()?;
            self.stalls.fetch_add(1, Ordering::SeqCst);
            // Hold the connection open, sending nothing, for as long as a test runs.
            std::thread::sleep(std::time::Duration::from_secs(300));
            return Ok(());
        }
        out.write_all(slice)
    }
}
