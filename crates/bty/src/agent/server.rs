//! Talking to bty-web: the agent's reports and the plan, with retries while the network comes
//! up. Every body is a `bty-proto` type. Servers differ in what they take, and the agent learns
//! each difference once per run:
//! - the end of a flash goes to `/status` (upstream 0.61+ and ours); a server without that
//!   route (upstream 0.47, older bty-web) gets `/done` or `/failed`. A 404 also means "unknown
//!   machine" on every server; that one carries `no machine record` in its body;
//! - `failed` and `progress` are missing on upstream servers (404): noted once, never fatal;
//! - fields a server refuses with 422 (`arch` in the inventory on upstream, the download side
//!   of progress on older bty-web) are dropped after the first refusal.
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bty_proto::plan::Plan;
use bty_proto::{FlashFailed, FlashProgress, InventoryPost, PxeStatus};
use bty_source::{HttpClient, SourceError};

/// What the agent knows of the server's `/status` route.
const STATUS_UNTRIED: u8 = 0;
const STATUS_PRESENT: u8 = 1;
const STATUS_MISSING: u8 = 2;

/// The text both upstream and bty-web put in a 404 for a MAC they do not know.
const UNKNOWN_MACHINE: &str = "no machine record";

pub struct Server {
    pub base: String,
    pub mac: String,
    client: HttpClient,
    /// How long to keep trying while the server cannot be reached.
    pub wait: Duration,
    /// Routes the server answered 404 to (each is noted once).
    missing: Mutex<HashSet<String>>,
    status_route: AtomicU8,
    /// The server refused the inventory's `arch` / progress's download side once.
    no_arch: AtomicBool,
    lean_progress: AtomicBool,
}

/// `bty-server` → `http://bty-server`; trailing slashes dropped.
pub fn normalise_server(s: &str) -> String {
    let s = s.trim().trim_end_matches('/');
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

#[derive(Debug)]
pub enum CallError {
    /// The server could not be reached before the deadline.
    Unreachable(String),
    /// It answered with this status and text.
    Status(u16, String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "cannot reach the server: {e}"),
            CallError::Status(s, t) => write!(f, "the server answered {s}: {t}"),
        }
    }
}

fn transient(e: &SourceError) -> bool {
    matches!(
        e,
        SourceError::ConnectionFailed { .. }
            | SourceError::Timeout { .. }
            | SourceError::HostNotFound { .. }
            | SourceError::Io { .. }
            | SourceError::Protocol { .. }
    )
}

impl Server {
    pub fn new(base: &str, mac: &str, wait: Duration) -> Server {
        Server {
            base: normalise_server(base),
            mac: mac.to_string(),
            client: HttpClient::new(Duration::from_millis(250)),
            wait,
            missing: Mutex::default(),
            status_route: AtomicU8::new(STATUS_UNTRIED),
            no_arch: AtomicBool::new(false),
            lean_progress: AtomicBool::new(false),
        }
    }

    fn url(&self, what: &str) -> String {
        format!("{}/pxe/{}{what}", self.base, self.mac)
    }

    /// Repeat `call` while the server is unreachable or answers 5xx, until `wait` has passed.
    fn retrying<T>(
        &self,
        what: &str,
        mut call: impl FnMut() -> Result<(u16, Vec<u8>), SourceError>,
        ok: impl Fn(u16, Vec<u8>) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            let last = match call() {
                Ok((status, body)) if status < 500 => return ok(status, body),
                Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
                Err(e) if transient(&e) => e.to_string(),
                Err(e) => return Err(CallError::Unreachable(e.to_string())),
            };
            if start.elapsed() >= self.wait {
                return Err(CallError::Unreachable(last));
            }
            eprintln!(
                "bty agent: {what}: {last}; retrying in {:.1} s",
                delay.as_secs_f64()
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    fn post(&self, what: &str, json: &str) -> Result<(), CallError> {
        let url = self.url(what);
        self.retrying(
            what,
            || self.client.post_json(&url, json, 64 << 10),
            |status, body| match status {
                200..=299 => Ok(()),
                s => Err(CallError::Status(
                    s,
                    String::from_utf8_lossy(&body).into_owned(),
                )),
            },
        )
    }

    /// The inventory; without `arch` from the first 422 on (upstream refuses unknown keys).
    pub fn post_inventory(&self, inv: &InventoryPost) -> Result<(), CallError> {
        let lean = InventoryPost {
            arch: None,
            ..inv.clone()
        };
        if inv.arch.is_some() && !self.no_arch.load(Ordering::Relaxed) {
            match self.post("/inventory", &to_json(inv)) {
                Err(CallError::Status(422, body)) => {
                    tracing::info!("inventory with arch refused: {body}");
                    eprintln!(
                        "bty agent: the server does not take the machine's arch; sending the inventory without it"
                    );
                    self.no_arch.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.post("/inventory", &to_json(&lean))
    }

    pub fn get_plan(&self) -> Result<Plan, CallError> {
        let url = self.url("/plan");
        self.retrying(
            "plan",
            || {
                self.client
                    .get_small(&url, &[], 1 << 20)
                    .map(|(parts, body)| (parts.status.as_u16(), body))
            },
            |status, body| match status {
                200 => serde_json::from_slice::<Plan>(&body).map_err(|e| {
                    CallError::Status(200, format!("a plan this agent does not understand: {e}"))
                }),
                s => Err(CallError::Status(
                    s,
                    String::from_utf8_lossy(&body).into_owned(),
                )),
            },
        )
    }

    /// The flash ended well: `/status` where the server has it, `/done` where not.
    pub fn report_done(&self) -> Result<(), CallError> {
        match self.post_status(&PxeStatus::done())? {
            true => Ok(()),
            false => self.post("/done", "{}"),
        }
    }

    /// The flash failed while `stage`: `/status` (the stage folded into the reason, cut at 500
    /// characters) where the server has it, our `/failed` where not. Never fatal.
    pub fn report_failed(&self, stage: &str, reason: &str) {
        match self.post_status(&PxeStatus::failed(stage, reason)) {
            Ok(true) => {}
            Ok(false) => {
                let body = FlashFailed {
                    stage: Some(stage.to_string()),
                    reason: Some(reason.to_string()),
                };
                self.optional("/failed", &to_json(&body));
            }
            Err(e) => eprintln!("bty agent: reporting the failure failed: {e}"),
        }
    }

    /// Post to `/status` unless the server is known to lack it. `Ok(false)`: it lacks it (told
    /// apart from an unknown machine by the body), so the caller uses the older route.
    fn post_status(&self, st: &PxeStatus) -> Result<bool, CallError> {
        if self.status_route.load(Ordering::Relaxed) == STATUS_MISSING {
            return Ok(false);
        }
        match self.post("/status", &to_json(st)) {
            Ok(()) => {
                self.status_route.store(STATUS_PRESENT, Ordering::Relaxed);
                Ok(true)
            }
            Err(CallError::Status(404, body))
                if !body.contains(UNKNOWN_MACHINE)
                    && self.status_route.load(Ordering::Relaxed) == STATUS_UNTRIED =>
            {
                eprintln!(
                    "bty agent: the server has no status route (an older server); using done/failed"
                );
                self.status_route.store(STATUS_MISSING, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A report the server may not know (404 on older servers): logged, never fatal.
    fn optional(&self, what: &str, json: &str) {
        let answer = self.client.post_json(&self.url(what), json, 4096);
        self.settle(what, answer);
    }

    /// Log what an optional report's answer says; a missing route is noted once.
    fn settle(&self, what: &str, answer: Result<(u16, Vec<u8>), SourceError>) {
        match answer {
            Ok((404, _)) => {
                if self
                    .missing
                    .lock()
                    .is_ok_and(|mut m| m.insert(what.to_string()))
                {
                    eprintln!(
                        "bty agent: the server has no {what} route (an older server); not reporting it"
                    );
                }
            }
            Ok((s, body)) if s >= 400 && s != 429 => {
                tracing::info!("{what}: {s} {}", String::from_utf8_lossy(&body));
            }
            Ok(_) => {}
            Err(e) => tracing::info!("{what}: {e}"),
        }
    }

    /// Progress; without the download side from the first 422 on (older bty-web refused
    /// unknown progress fields).
    pub fn post_progress(&self, p: &FlashProgress) {
        if !self.lean_progress.load(Ordering::Relaxed) {
            let answer = self
                .client
                .post_json(&self.url("/progress"), &to_json(p), 4096);
            if !matches!(answer, Ok((422, _))) {
                return self.settle("/progress", answer);
            }
            tracing::info!("progress with the download side refused; dropping it");
            self.lean_progress.store(true, Ordering::Relaxed);
        }
        self.optional("/progress", &to_json(&p.without_download_side()));
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Plain structs of strings and numbers: serialising cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(normalise_server("bty-server"), "http://bty-server");
        assert_eq!(normalise_server(" https://lab:8443/ "), "https://lab:8443");
    }
}
