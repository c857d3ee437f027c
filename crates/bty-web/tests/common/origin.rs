//! An image origin for the cache tests, on 127.0.0.1: serves one object at every path with
//! ETag, single Range, If-Range and If-None-Match, counts the body bytes it sends and the
//! requests it answers, and on demand throttles, drops a connection mid-body once, damages a
//! byte, serves a truncated object, or changes the object between requests. Also the raw-bytes
//! GET the cache tests read blobs with. Paths under
//! `/presign/` redirect to a one-time URL under `/signed/`, as object stores' pre-signed URLs
//! do: a second use of one is refused with 403.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Faults {
    /// Pause after every 64 KiB sent.
    pause: Option<Duration>,
    /// Close the next full-body response after this many body bytes (once).
    drop_once_after: Option<u64>,
    /// Flip the byte at this offset in every response.
    damage_at: Option<u64>,
    /// Serve only this many bytes of the object (a truncated publication).
    truncate_to: Option<u64>,
    /// Pre-signed URLs handed out, and which were used.
    signed: u64,
    used: std::collections::HashSet<String>,
}

struct Object {
    body: Arc<Vec<u8>>,
    etag: String,
}

pub struct Origin {
    pub base: String,
    object: Arc<Mutex<Object>>,
    faults: Arc<Mutex<Faults>>,
    sent: Arc<AtomicU64>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Deterministic bytes that do not compress to nothing.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Status, headers and body of a whole transfer, or the error it ended with.
pub type Fetched = Result<(u16, Vec<(String, String)>, Vec<u8>), String>;

/// A GET with raw bytes.
pub fn fetch(url: &str, range: Option<&str>) -> Fetched {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok((status, headers, body))
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `n` clients GET `url` at the same moment (a barrier releases them together).
pub fn fetch_together(url: &str, n: usize) -> Vec<Fetched> {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (url, b) = (url.to_string(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                fetch(&url, None)
            })
        })
        .collect();
    clients.into_iter().map(|t| t.join().unwrap()).collect()
}

impl Origin {
    pub fn start(body: Vec<u8>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let o = Origin {
            base: format!("http://127.0.0.1:{port}"),
            object: Arc::new(Mutex::new(Object {
                body: Arc::new(body),
                etag: "\"v1\"".into(),
            })),
            faults: Arc::default(),
            sent: Arc::default(),
            requests: Arc::default(),
        };
        let (object, faults, sent, requests) = (
            o.object.clone(),
            o.faults.clone(),
            o.sent.clone(),
            o.requests.clone(),
        );
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let (object, faults, sent, requests) = (
                    object.clone(),
                    faults.clone(),
                    sent.clone(),
                    requests.clone(),
                );
                std::thread::spawn(move || {
                    let _ = answer(s, &object, &faults, &sent, &requests);
                });
            }
        });
        o
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Body bytes sent so far, all responses together.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Each request as `METHOD range-or-dash`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn pause(&self, p: Option<Duration>) {
        self.faults.lock().unwrap().pause = p;
    }

    pub fn drop_once_after(&self, n: u64) {
        self.faults.lock().unwrap().drop_once_after = Some(n);
    }

    pub fn damage_at(&self, at: u64) {
        self.faults.lock().unwrap().damage_at = Some(at);
    }

    pub fn truncate_to(&self, n: u64) {
        self.faults.lock().unwrap().truncate_to = Some(n);
    }

    /// Publish another object under the same URL (a new ETag).
    pub fn replace(&self, body: Vec<u8>, etag: &str) {
        let mut o = self.object.lock().unwrap();
        o.body = Arc::new(body);
        o.etag = etag.into();
    }
}

fn answer(
    s: TcpStream,
    object: &Mutex<Object>,
    faults: &Mutex<Faults>,
    sent: &AtomicU64,
    requests: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let method = line.split_whitespace().next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (body, etag) = {
        let o = object.lock().unwrap();
        (o.body.clone(), o.etag.clone())
    };
    let (pause, damage, truncate) = {
        let f = faults.lock().unwrap();
        (f.pause, f.damage_at, f.truncate_to)
    };
    let len = truncate.unwrap_or(body.len() as u64).min(body.len() as u64);
    requests.lock().unwrap().push(format!(
        "{method} {}",
        get("range").unwrap_or_else(|| "-".into())
    ));
    let mut w = s;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    if path.starts_with("/presign/") {
        let n = {
            let mut f = faults.lock().unwrap();
            f.signed += 1;
            f.signed
        };
        write!(
            w,
            "HTTP/1.1 302 Found\r\nLocation: /signed/{n}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    if path.starts_with("/signed/") && !faults.lock().unwrap().used.insert(path.clone()) {
        write!(
            w,
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    if get("if-none-match").as_deref() == Some(etag.as_str()) {
        write!(
            w,
            "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    let if_range_ok = get("if-range").is_none_or(|v| v == etag);
    let range = get("range").filter(|_| if_range_ok).and_then(|r| {
        let spec = r.strip_prefix("bytes=")?.to_string();
        let (a, b) = spec.split_once('-')?;
        let a: u64 = a.parse().ok()?;
        let b: u64 = if b.is_empty() {
            len.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
        };
        (a <= b && a < len).then_some((a, b))
    });
    let (status, start, end) = match range {
        Some((a, b)) => ("206 Partial Content", a, b + 1),
        None => ("200 OK", 0, len),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\nConnection: close\r\n",
        end - start
    );
    if range.is_some() {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            end - 1
        ));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    let drop_after = if range.is_none() {
        faults.lock().unwrap().drop_once_after.take()
    } else {
        None
    };
    let mut at = start;
    let mut in_this = 0u64;
    while at < end {
        let n = (end - at).min(64 << 10);
        let mut chunk = body[at as usize..(at + n) as usize].to_vec();
        if let Some(d) = damage
            && d >= at
            && d < at + n
        {
            chunk[(d - at) as usize] ^= 0xff;
        }
        if let Some(limit) = drop_after
            && in_this + n > limit
        {
            let keep = (limit - in_this) as usize;
            w.write_all(&chunk[..keep])?;
            sent.fetch_add(keep as u64, Ordering::SeqCst);
            let _ = w.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        w.write_all(&chunk)?;
        sent.fetch_add(n, Ordering::SeqCst);
        at += n;
        in_this += n;
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    Ok(())
}
