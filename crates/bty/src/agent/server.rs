//! Talking to bty-web: the agent's reports and the plan, with retries while the network comes
//! up. Routes an older server lacks (`failed`, `progress` on upstream 0.47) answer 404; that is
//! logged once and the agent carries on.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bty_proto::plan::Plan;
use bty_source::{HttpClient, SourceError};

pub struct Server {
    pub base: String,
    pub mac: String,
    client: HttpClient,
    /// How long to keep trying while the server cannot be reached.
    pub wait: Duration,
    /// Routes the server answered 404 to (each is noted once).
    missing: Mutex<HashSet<String>>,
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

    pub fn post_inventory(&self, json: &str) -> Result<(), CallError> {
        self.post("/inventory", json)
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

    pub fn post_done(&self) -> Result<(), CallError> {
        self.post("/done", "{}")
    }

    /// A report the server may not know (404 on older servers): logged, never fatal.
    fn optional(&self, what: &str, json: &str) {
        let url = self.url(what);
        match self.client.post_json(&url, json, 4096) {
            Ok((404, _)) => {
                if self
                    .missing
                    .lock()
                    .is_ok_and(|mut m| m.insert(what.to_string()))
                {
                    eprintln!(
                        "bty agent: the server has no {what} route (an older bty-web); not reporting it"
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

    pub fn post_failed(&self, stage: &str, reason: &str) {
        let body = serde_json::json!({"stage": stage, "reason": reason}).to_string();
        self.optional("/failed", &body);
    }

    pub fn post_progress(&self, json: &str) {
        self.optional("/progress", json);
    }
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
