//! What unauthenticated PXE clients can make bty-web store, bounded: new machines per source
//! address per minute (a rate, not a count, so a NAT'd lab behind one address still works),
//! inventory posts per MAC (upstream's agent posts twice per boot; a few more are allowed), and
//! how often a refusal is written to the audit log (a flood of refusals costs no rows).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max` events per key in each `window`.
pub struct RateWindow<K> {
    window: Duration,
    max: u32,
    map: Mutex<HashMap<K, (u32, Instant)>>,
}

/// Keys kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

impl<K: Hash + Eq + Clone> RateWindow<K> {
    pub fn new(window: Duration, max: u32) -> RateWindow<K> {
        RateWindow {
            window,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Count one for `k`; false when `k` is over its limit (nothing is counted then).
    pub fn allow(&self, k: &K) -> bool {
        let Ok(mut map) = self.map.lock() else {
            return false;
        };
        if map.len() > SWEEP_AT {
            let w = self.window;
            map.retain(|_, (_, t)| t.elapsed() < w);
        }
        let e = map.entry(k.clone()).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        if e.0 >= self.max {
            return false;
        }
        e.0 += 1;
        true
    }
}

/// Inventory posts allowed per MAC in [`INVENTORY_WINDOW`].
pub const INVENTORY_PER_WINDOW: u32 = 6;
pub const INVENTORY_WINDOW: Duration = Duration::from_secs(600);

pub struct PxeLimits {
    pub discover: RateWindow<IpAddr>,
    pub inventory: RateWindow<String>,
    /// When a discovery refusal was last written to the audit log.
    refusal_noted: Mutex<Option<Instant>>,
    /// Machines unknown clients created, as last counted and since added to; counted again
    /// after [`RECOUNT`] (an operator's claim or delete shows within that). Counting on every
    /// first contact would cost a scan per new machine.
    discovered: Mutex<Option<(u64, Instant)>>,
}

/// How long a count of discovered machines is trusted.
pub const RECOUNT: Duration = Duration::from_secs(1);

impl PxeLimits {
    pub fn new(discover_per_minute: u32) -> PxeLimits {
        PxeLimits {
            discover: RateWindow::new(Duration::from_secs(60), discover_per_minute),
            inventory: RateWindow::new(INVENTORY_WINDOW, INVENTORY_PER_WINDOW),
            refusal_noted: Mutex::new(None),
            discovered: Mutex::new(None),
        }
    }

    /// Admit one more discovered machine if fewer than `cap` exist; `count` gives the stored
    /// number when the cached one is stale.
    pub fn admit_discovered<E>(
        &self,
        cap: u64,
        count: impl FnOnce() -> Result<u64, E>,
    ) -> Result<bool, E> {
        let Ok(mut d) = self.discovered.lock() else {
            return Ok(false);
        };
        let n = match *d {
            Some((n, at)) if at.elapsed() < RECOUNT => n,
            _ => {
                let n = count()?;
                *d = Some((n, Instant::now()));
                n
            }
        };
        if n >= cap {
            return Ok(false);
        }
        if let Some((n, _)) = d.as_mut() {
            *n += 1;
        }
        Ok(true)
    }

    /// Whether a refusal should be written now (at most one a minute).
    pub fn note_refusal(&self) -> bool {
        let Ok(mut last) = self.refusal_noted.lock() else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_key() {
        let w: RateWindow<u8> = RateWindow::new(Duration::from_secs(60), 2);
        assert!(w.allow(&1) && w.allow(&1));
        assert!(!w.allow(&1));
        assert!(w.allow(&2), "another key has its own count");
        let l = PxeLimits::new(5);
        let mut counted = 0;
        let mut admit = |cap| {
            l.admit_discovered(cap, || {
                counted += 1;
                Ok::<u64, ()>(1)
            })
            .unwrap()
        };
        assert!(admit(3) && admit(3), "1 stored, 2 and 3 admitted");
        assert!(
            !admit(3),
            "the cap counts what was admitted since the count"
        );
        assert_eq!(counted, 1, "counted once within a second");
        assert!(l.note_refusal());
        assert!(!l.note_refusal(), "one refusal row a minute");
    }
}
