//! The application's shared state: configuration, the state database, keys, the image cache,
//! live progress and subscribers, counters — what every handler gets as `State<AppState>`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bty_proto::{FlashProgress, Machine};
use tokio::sync::broadcast;

use crate::auth::Keys;
use crate::config::Config;
use crate::db::Db;
use crate::guard::LoginLimiter;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub pxe_contacts: AtomicU64,
    pub flashes_done: AtomicU64,
    pub flashes_failed: AtomicU64,
    /// Live UI fragments rendered (all streams).
    pub live_renders: AtomicU64,
    /// route → status → answers.
    pub requests: RwLock<HashMap<String, HashMap<u16, AtomicU64>>>,
}

/// Progress reports older than this no longer count as a flash in progress.
pub const PROGRESS_STALE: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub db: Db,
    pub keys: Arc<Keys>,
    pub limiter: Arc<LoginLimiter>,
    /// The last progress report per machine (kept in memory only).
    pub progress: Arc<Mutex<HashMap<String, (FlashProgress, Instant)>>>,
    pub metrics: Arc<Metrics>,
    /// Machine changes for live subscribers, as JSON.
    pub bus: broadcast::Sender<String>,
    /// Where the built-in TFTP server listens, when it runs.
    pub tftp_addr: Option<std::net::SocketAddr>,
    /// Open HTTP connections (timeouts, the cap).
    pub conns: Arc<crate::serve::Conns>,
    /// Rate limits on unauthenticated PXE clients.
    pub pxe_limits: Arc<crate::pxe::limits::PxeLimits>,
    /// The image cache.
    pub cache: Arc<crate::cache::Cache>,
}

impl AppState {
    pub fn new(cfg: Config, db: Db, keys: Keys) -> AppState {
        let limits = cfg.limits;
        AppState {
            conns: Arc::new(crate::serve::Conns::new(limits)),
            pxe_limits: Arc::new(crate::pxe::limits::PxeLimits::new(
                limits.discover_per_minute,
            )),
            cache: Arc::new(crate::cache::Cache::new(cfg.cache.clone(), db.clone())),
            cfg: Arc::new(cfg),
            db,
            keys: Arc::new(keys),
            limiter: Arc::new(LoginLimiter::new()),
            progress: Arc::default(),
            metrics: Arc::default(),
            bus: broadcast::channel(256).0,
            tftp_addr: None,
        }
    }

    /// Cookies get `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.cfg
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// Add the in-memory progress to a machine.
    pub fn with_progress(&self, m: &mut Machine) {
        if let Ok(map) = self.progress.lock()
            && let Some((p, at)) = map.get(&m.mac)
            && at.elapsed() < PROGRESS_STALE
        {
            m.flash_progress = Some(p.clone());
        }
    }

    pub fn clear_progress(&self, mac: &str) {
        if let Ok(mut map) = self.progress.lock() {
            map.remove(mac);
        }
    }

    /// Flashes with a recent progress report.
    pub fn flashes_in_progress(&self) -> usize {
        self.progress
            .lock()
            .map(|m| {
                m.values()
                    .filter(|(_, at)| at.elapsed() < PROGRESS_STALE)
                    .count()
            })
            .unwrap_or(0)
    }

    /// Tell live subscribers that `mac` changed. Never waits: the machine is read and sent on
    /// a task of its own, and only when someone listens.
    pub async fn changed(&self, mac: &str, discovered: bool) {
        if self.bus.receiver_count() == 0 {
            return;
        }
        let s = self.clone();
        let mac = mac.to_string();
        tokio::spawn(async move {
            let key = mac.clone();
            let m = s.db.read(move |c| crate::db::machines::get(c, &key)).await;
            let msg = match m {
                Ok(Some(mut m)) => {
                    s.with_progress(&mut m);
                    serde_json::json!({"mac": mac, "discovered": discovered, "machine": m})
                }
                Ok(None) => serde_json::json!({"mac": mac, "deleted": true}),
                Err(_) => return,
            };
            let _ = s.bus.send(msg.to_string());
        });
    }
}
