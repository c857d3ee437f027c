//! HTTP(S) sources. One [`HttpClient`] (ureq with rustls: connect and idle-read timeouts,
//! redirects, a User-Agent with bty's version) serves sequential streams that resume after a
//! dropped connection — `Range` from the next needed byte plus `If-Range` on the ETag or
//! Last-Modified seen first, bounded retries with backoff, and a clear failure when the server
//! cannot resume or the object changed — and positional reads by `Range` for qcow2, with a
//! small read-ahead so tiny metadata reads do not each cost a request.

use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bty_image::{ImageSource, ReadAt};

use crate::error::SourceError;

/// Attempts per byte position before giving up on a stream or a range.
const MAX_ATTEMPTS: u32 = 6;
/// Reads smaller than this are widened so nearby reads hit the cache.
const READ_AHEAD: u64 = 256 * 1024;

#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    /// First retry delay; doubles per attempt.
    backoff: Duration,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(Duration::from_millis(500))
    }
}

/// A validator that identifies one version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Validator {
    ETag(String),
    LastModified(String),
}

impl Validator {
    fn header_value(&self) -> &str {
        match self {
            Validator::ETag(v) | Validator::LastModified(v) => v,
        }
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => authority.to_string(),
    }
}

fn map_err(url: &str, e: ureq::Error) -> SourceError {
    let url = url.to_string();
    match e {
        ureq::Error::HostNotFound => SourceError::HostNotFound {
            host: host_of(&url),
            url,
        },
        ureq::Error::ConnectionFailed => SourceError::ConnectionFailed {
            url,
            detail: "connection failed".into(),
        },
        ureq::Error::Timeout(t) => SourceError::Timeout {
            url,
            detail: t.to_string(),
        },
        ureq::Error::Io(io) if io.to_string().contains("lookup address") => {
            SourceError::HostNotFound {
                host: host_of(&url),
                url,
            }
        }
        ureq::Error::Io(io) => match io.kind() {
            io::ErrorKind::PermissionDenied => SourceError::Refused {
                url,
                detail: io.to_string(),
            },
            io::ErrorKind::ConnectionRefused => SourceError::ConnectionFailed {
                url,
                detail: "connection refused".into(),
            },
            io::ErrorKind::TimedOut => SourceError::Timeout {
                url,
                detail: io.to_string(),
            },
            _ => SourceError::ConnectionFailed {
                url,
                detail: io.to_string(),
            },
        },
        other => {
            let detail = other.to_string();
            if detail.to_ascii_lowercase().contains("tls") || detail.contains("certificate") {
                SourceError::Tls { url, detail }
            } else {
                SourceError::Protocol { url, detail }
            }
        }
    }
}

fn status_err(url: &str, status: u16) -> SourceError {
    let url = url.to_string();
    match status {
        404 => SourceError::NotFound { url },
        401 | 403 => SourceError::Denied { url, status },
        _ => SourceError::Status { url, status },
    }
}

/// Whether an error is worth another attempt.
fn transient(e: &SourceError) -> bool {
    match e {
        SourceError::ConnectionFailed { .. }
        | SourceError::Timeout { .. }
        | SourceError::Protocol { .. } => true,
        SourceError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
        SourceError::Io { .. } => true,
        _ => false,
    }
}

type Response = ureq::http::Response<ureq::Body>;

/// At most `limit` bytes of a response body.
fn read_up_to(body: ureq::Body, url: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
    let mut data = Vec::new();
    body.into_with_config()
        .reader()
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| SourceError::Io {
            what: format!("reading {url}"),
            source: e,
        })?;
    Ok(data)
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// `Content-Range: bytes START-END/TOTAL` → (start, total).
fn content_range(resp: &Response) -> Option<(u64, Option<u64>)> {
    let v = header(resp, "content-range")?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Addresses a server's fetch never connects to: IPv4 and IPv6 link-local (where cloud
/// metadata services answer, 169.254.169.254 among them) and the EC2 IPv6 metadata address.
pub fn forbidden_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            let s = v6.segments();
            (s[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// Name resolution that drops forbidden addresses ([`forbidden_addr`]). ureq connects only to
/// what its resolver returns and resolves again for every redirect, so the check holds for
/// the address actually connected to, IP literals included.
#[derive(Debug, Default)]
struct GuardedResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        for a in all.iter().filter(|a| !forbidden_addr(a.ip())) {
            kept.push(*a);
        }
        if kept.is_empty() {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the host resolves only to link-local or metadata addresses, which this server never fetches from",
            )));
        }
        Ok(kept)
    }
}

/// The agent settings every client shares: statuses are answers, not errors; connect and
/// idle-read timeouts; bty's User-Agent; at most `redirects` redirects; `global` bounds the
/// whole exchange when given.
fn agent_config(redirects: u32, global: Option<Duration>) -> ureq::config::Config {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(crate::user_agent())
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_global(global)
        .max_redirects(redirects)
        // Credentials follow a redirect only to the same host over https (a registry's blob
        // redirect to a CDN must not carry the registry token).
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
        .build()
}

impl HttpClient {
    /// The client for fetches a server makes on an operator's behalf: at most 5 redirects,
    /// http(s) only, never to a link-local or metadata address (checked on every connection,
    /// redirects included), and with `global` as a limit on the whole exchange when given.
    pub fn guarded(global: Option<Duration>) -> HttpClient {
        let agent = ureq::Agent::with_parts(
            agent_config(5, global),
            ureq::unversioned::transport::DefaultConnector::default(),
            GuardedResolver::default(),
        );
        HttpClient {
            agent,
            backoff: Duration::from_millis(500),
        }
    }

    pub fn new(backoff: Duration) -> HttpClient {
        let agent: ureq::Agent = agent_config(10, None).into();
        HttpClient { agent, backoff }
    }

    /// GET `url` with extra headers; errors for transport failures only (any status returns).
    pub fn get(&self, url: &str, headers: &[(String, String)]) -> Result<Response, SourceError> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.call().map_err(|e| map_err(url, e))
    }

    /// GET a small document (a catalog, a manifest, a token), capped at `limit` bytes.
    pub fn get_small(
        &self,
        url: &str,
        headers: &[(String, String)],
        limit: u64,
    ) -> Result<(ureq::http::response::Parts, Vec<u8>), SourceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.get(url, headers).and_then(|resp| {
                let (parts, body) = resp.into_parts();
                let data = read_up_to(body, url, limit.saturating_add(1))?;
                if data.len() as u64 > limit {
                    return Err(SourceError::Protocol {
                        url: url.to_string(),
                        detail: format!(
                            "the response exceeds {limit} bytes; refusing to read more"
                        ),
                    });
                }
                Ok((parts, data))
            });
            match result {
                Err(e) if transient(&e) && attempt < 3 => {
                    std::thread::sleep(self.backoff * attempt)
                }
                Ok((parts, _))
                    if matches!(parts.status.as_u16(), 429 | 502 | 503 | 504) && attempt < 3 =>
                {
                    std::thread::sleep(self.backoff * attempt)
                }
                other => return other,
            }
        }
    }

    /// POST a form and read a small answer (an OAuth2 token), capped at `limit` bytes.
    pub fn post_form_small(
        &self,
        url: &str,
        form: &[(&str, &str)],
        limit: u64,
    ) -> Result<(ureq::http::response::Parts, Vec<u8>), SourceError> {
        let resp = self
            .agent
            .post(url)
            .send_form(form.iter().copied())
            .map_err(|e| map_err(url, e))?;
        let (parts, body) = resp.into_parts();
        Ok((parts, read_up_to(body, url, limit)?))
    }

    /// POST a JSON document (one attempt); the status and up to `limit` bytes of the answer.
    /// Errors are transport failures only.
    pub fn post_json(
        &self,
        url: &str,
        json: &str,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), SourceError> {
        let resp = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(json.as_bytes())
            .map_err(|e| map_err(url, e))?;
        let status = resp.status().as_u16();
        Ok((status, read_up_to(resp.into_body(), url, limit)?))
    }

    fn sleep_for(&self, attempt: u32) {
        let factor = 1u32 << attempt.min(5).saturating_sub(1);
        std::thread::sleep(self.backoff * factor);
    }
}

/// An image on a web server.
pub struct HttpSource {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    size: Option<u64>,
    ranges: bool,
    validator: Option<Validator>,
    cache: Mutex<(u64, Vec<u8>)>,
    /// The first MiB, fetched once for sniffing.
    head: Mutex<Option<std::sync::Arc<Vec<u8>>>>,
    requests: AtomicU64,
}

/// How much of the start is fetched for sniffing.
const HEAD_BYTES: u64 = 1 << 20;

impl HttpSource {
    /// Look at `url` (one small ranged GET) to learn its size, whether it serves ranges, and
    /// the validator that later requests must match.
    pub fn open(
        client: HttpClient,
        url: &str,
        headers: Vec<(String, String)>,
    ) -> Result<HttpSource, SourceError> {
        let mut probe_headers = headers.clone();
        probe_headers.push(("Range".into(), "bytes=0-0".into()));
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match client.get(url, &probe_headers) {
                Ok(r)
                    if matches!(r.status().as_u16(), 429 | 502 | 503 | 504)
                        && attempt < MAX_ATTEMPTS => {}
                Ok(r) => break r,
                Err(e) if transient(&e) && attempt < MAX_ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            client.sleep_for(attempt);
        };
        let status = resp.status().as_u16();
        let validator = header(&resp, "etag")
            .filter(|e| !e.starts_with("W/"))
            .map(Validator::ETag)
            .or_else(|| header(&resp, "last-modified").map(Validator::LastModified));
        let (size, ranges) = match status {
            206 => match content_range(&resp) {
                Some((0, total)) => (total, true),
                _ => {
                    return Err(SourceError::Protocol {
                        url: url.into(),
                        detail: "malformed Content-Range".into(),
                    });
                }
            },
            200 => (
                header(&resp, "content-length").and_then(|v| v.parse().ok()),
                false,
            ),
            // An empty object: a range request for byte 0 is unsatisfiable.
            416 => (Some(0), true),
            s => return Err(status_err(url, s)),
        };
        Ok(HttpSource {
            client,
            url: url.to_string(),
            headers,
            size,
            ranges,
            validator,
            cache: Mutex::new((0, Vec::new())),
            head: Mutex::new(None),
            requests: AtomicU64::new(1),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server serves byte ranges (needed for qcow2 and for resuming).
    pub fn supports_ranges(&self) -> bool {
        self.ranges
    }

    /// The validator (strong ETag, else Last-Modified) the first answer carried: what a cache
    /// records to recognise this version of the object later.
    pub fn validator(&self) -> Option<String> {
        self.validator
            .as_ref()
            .map(|v| v.header_value().to_string())
    }

    /// A sequential read from byte `start` up to `end` (exclusive; the object's end when
    /// `None`) that reconnects where it left off, as [`ImageSource::open_stream`] does.
    pub fn stream_range(&self, start: u64, end: Option<u64>) -> Box<dyn Read + Send> {
        Box::new(ResumingReader {
            source: self.shallow(),
            pos: start,
            end,
            body: None,
            failures: 0,
        })
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Check that a response belongs to the same object version as the first one.
    fn same_object(&self, resp: &Response) -> Result<(), SourceError> {
        let seen = match &self.validator {
            Some(Validator::ETag(_)) => header(resp, "etag").map(Validator::ETag),
            Some(Validator::LastModified(_)) => {
                header(resp, "last-modified").map(Validator::LastModified)
            }
            None => return Ok(()),
        };
        match (&self.validator, seen) {
            (Some(want), Some(got)) if *want != got => Err(SourceError::Changed {
                url: self.url.clone(),
                detail: format!("{} became {}", want.header_value(), got.header_value()),
            }),
            _ => Ok(()),
        }
    }

    /// GET from `start` (to `end` inclusive when given), checking that the answer is the range
    /// asked for, of the same object.
    fn request_from(&self, start: u64, end: Option<u64>) -> Result<Response, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut headers = self.headers.clone();
        if start > 0 || end.is_some() {
            let range = match end {
                Some(e) => format!("bytes={start}-{e}"),
                None => format!("bytes={start}-"),
            };
            headers.push(("Range".into(), range));
            if let Some(v) = &self.validator {
                headers.push(("If-Range".into(), v.header_value().to_string()));
            }
        }
        let resp = self.client.get(&self.url, &headers)?;
        let status = resp.status().as_u16();
        match status {
            200 if start == 0 && end.is_none() => {}
            200 => {
                // A full answer to a ranged request with If-Range: the object changed, or the
                // server ignores ranges.
                return Err(if self.ranges && self.validator.is_some() {
                    SourceError::Changed {
                        url: self.url.clone(),
                        detail: "the server no longer honours If-Range".into(),
                    }
                } else {
                    SourceError::CannotResume {
                        url: self.url.clone(),
                        at: start,
                        detail: "it does not serve byte ranges".into(),
                    }
                });
            }
            206 => match content_range(&resp) {
                Some((s, total)) if s == start => {
                    if let (Some(t), Some(size)) = (total, self.size)
                        && t != size
                    {
                        return Err(SourceError::Changed {
                            url: self.url.clone(),
                            detail: format!("its size went from {size} to {t} bytes"),
                        });
                    }
                }
                _ => {
                    return Err(SourceError::Protocol {
                        url: self.url.clone(),
                        detail: format!(
                            "asked for bytes from {start}, got {:?}",
                            header(&resp, "content-range")
                        ),
                    });
                }
            },
            s => return Err(status_err(&self.url, s)),
        }
        self.same_object(&resp)?;
        Ok(resp)
    }

    fn fetch_range(&self, buf: &mut [u8], offset: u64) -> Result<usize, SourceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .request_from(offset, Some(offset + buf.len() as u64 - 1))
                .and_then(|resp| {
                    let mut reader = resp.into_body().into_reader();
                    bty_image::decode::read_full(&mut reader, buf).map_err(|e| SourceError::Io {
                        what: format!("reading {}", self.url),
                        source: e,
                    })
                });
            match result {
                Ok(n) => return Ok(n),
                Err(e) if transient(&e) && attempt < MAX_ATTEMPTS => {
                    tracing::warn!("{e}; retrying");
                    self.client.sleep_for(attempt);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl ReadAt for HttpSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let size = self.size.unwrap_or(u64::MAX);
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(size - offset) as usize;
        if want as u64 >= READ_AHEAD {
            return self
                .fetch_range(&mut buf[..want], offset)
                .map_err(SourceError::into_io);
        }
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("cache poisoned"))?;
        let (start, data) = &mut *cache;
        let hit = offset >= *start && offset + want as u64 <= *start + data.len() as u64;
        if !hit {
            let len = READ_AHEAD.min(size - offset) as usize;
            data.resize(len, 0);
            let n = self
                .fetch_range(data, offset)
                .map_err(SourceError::into_io)?;
            data.truncate(n);
            *start = offset;
            if n < want {
                buf[..n].copy_from_slice(&data[..n]);
                return Ok(n);
            }
        }
        let s = (offset - *start) as usize;
        buf[..want].copy_from_slice(&data[s..s + want]);
        Ok(want)
    }
}

impl ImageSource for HttpSource {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn size(&self) -> Option<u64> {
        self.size
    }

    fn open_stream(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(ResumingReader {
            source: self.shallow(),
            pos: 0,
            end: None,
            body: None,
            failures: 0,
        }))
    }

    /// Sniffing reads the first MiB once, by range, instead of opening a stream per layer.
    fn open_head(&self) -> io::Result<Box<dyn Read + Send>> {
        let (Some(size), true) = (self.size, self.ranges) else {
            return self.open_stream();
        };
        let mut head = self
            .head
            .lock()
            .map_err(|_| io::Error::other("head cache poisoned"))?;
        if head.is_none() {
            let mut buf = vec![0u8; size.min(HEAD_BYTES) as usize];
            let n = self
                .fetch_range(&mut buf, 0)
                .map_err(SourceError::into_io)?;
            buf.truncate(n);
            *head = Some(std::sync::Arc::new(buf));
        }
        let data = head.clone().unwrap_or_default();
        let complete = data.len() as u64 >= size;
        Ok(bty_image::source::head_reader(data, complete))
    }

    fn random_access(&self) -> Option<&dyn ReadAt> {
        (self.ranges && self.size.is_some()).then_some(self as &dyn ReadAt)
    }

    fn cheap_random_access(&self) -> bool {
        false
    }
}

impl HttpSource {
    /// A copy sharing the client and the object identity, for an independent stream.
    fn shallow(&self) -> HttpSource {
        HttpSource {
            client: self.client.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            size: self.size,
            ranges: self.ranges,
            validator: self.validator.clone(),
            cache: Mutex::new((0, Vec::new())),
            head: Mutex::new(None),
            requests: AtomicU64::new(0),
        }
    }
}

/// A sequential read of the whole object that reconnects where it left off.
struct ResumingReader {
    source: HttpSource,
    pos: u64,
    /// Where to stop (exclusive), when not at the object's end.
    end: Option<u64>,
    body: Option<ureq::BodyReader<'static>>,
    failures: u32,
}

impl ResumingReader {
    fn fail_or_retry(&mut self, e: SourceError) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if !transient(&e) {
            return Err(e.into_io());
        }
        if self.failures >= MAX_ATTEMPTS {
            return Err(SourceError::GaveUp {
                url: self.source.url.clone(),
                at: self.pos,
                attempts: self.failures,
                last: e.to_string(),
            }
            .into_io());
        }
        if self.pos > 0 && !self.source.ranges {
            return Err(SourceError::CannotResume {
                url: self.source.url.clone(),
                at: self.pos,
                detail: "it does not serve byte ranges".into(),
            }
            .into_io());
        }
        tracing::warn!(
            "{e}; resuming at byte {} (attempt {})",
            self.pos,
            self.failures + 1
        );
        self.source.client.sleep_for(self.failures);
        Ok(())
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let stop = match (self.end, self.source.size) {
                (Some(e), Some(s)) => Some(e.min(s)),
                (e, s) => e.or(s),
            };
            if stop.is_some_and(|s| self.pos >= s) {
                return Ok(0);
            }
            let buf = match stop {
                Some(s) => {
                    let room = (s - self.pos).min(buf.len() as u64) as usize;
                    &mut buf[..room]
                }
                None => buf,
            };
            if self.body.is_none() {
                let last = self.end.map(|e| e.saturating_sub(1));
                match self.source.request_from(self.pos, last) {
                    Ok(resp) => self.body = Some(resp.into_body().into_reader()),
                    Err(e) => {
                        self.fail_or_retry(e)?;
                        continue;
                    }
                }
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) => {
                    if stop.is_none_or(|s| self.pos >= s) {
                        return Ok(0);
                    }
                    let e = SourceError::Io {
                        what: format!("reading {}", self.source.url),
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("body ended at byte {}", self.pos),
                        ),
                    };
                    self.fail_or_retry(e)?;
                }
                Ok(n) => {
                    self.pos += n as u64;
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) => {
                    let e = SourceError::Io {
                        what: format!("reading {}", self.source.url),
                        source: e,
                    };
                    self.fail_or_retry(e)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found_in_urls() {
        assert_eq!(host_of("https://user@Example.com:8443/a?b"), "Example.com");
        assert_eq!(host_of("http://10.0.0.1/x"), "10.0.0.1");
        assert_eq!(host_of("http://host"), "host");
    }

    #[test]
    fn forbidden_addresses() {
        for a in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(forbidden_addr(a.parse().unwrap()), "{a}");
        }
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.1.1",
            "::1",
            "fd00::1",
            "8.8.8.8",
        ] {
            assert!(!forbidden_addr(a.parse().unwrap()), "{a}");
        }
    }
}
