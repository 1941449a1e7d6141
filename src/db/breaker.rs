//! Failing fast while the database cannot be reached.
//!
//! Without it, every request during an outage waits the pool's whole `acquire_timeout_ms`
//! (5 s by default) before its 503. With it: the first request that finds the database
//! unreachable opens the breaker; for [`OPEN_FOR`] every request is refused at once (503
//! with `Retry-After`); then one request is let through as a probe (the others are still
//! refused while it runs); its success closes the breaker, its failure opens it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the breaker stays open after a failure before a probe may go through.
pub const OPEN_FOR: Duration = Duration::from_secs(1);

/// Shared by every clone of a `Db`. `0`: closed; otherwise the unix time in ms until which
/// requests are refused.
#[derive(Clone, Default)]
pub struct Breaker {
    refuse_until_ms: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    /// Whether a request may use the database now. While open: no. Once the open period is
    /// over, exactly one caller gets `true` (the probe) and the period is extended by
    /// `probe_for` (the time a probe may take), so the others keep being refused.
    pub fn admit(&self, probe_for: Duration) -> bool {
        self.admit_at(now_ms(), probe_for)
    }

    fn admit_at(&self, now: u64, probe_for: Duration) -> bool {
        let until = self.refuse_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now < until {
            return false;
        }
        let probe_until = now.saturating_add(ms(probe_for));
        self.refuse_until_ms.compare_exchange(until, probe_until, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The database could not be reached: refuse for [`OPEN_FOR`].
    pub fn record_unreachable(&self) {
        self.record_unreachable_at(now_ms());
    }

    fn record_unreachable_at(&self, now: u64) {
        self.refuse_until_ms.store(now.saturating_add(ms(OPEN_FOR)), Ordering::Release);
    }

    /// The database answered: close the breaker.
    pub fn record_reachable(&self) {
        if self.refuse_until_ms.load(Ordering::Acquire) != 0 {
            self.refuse_until_ms.store(0, Ordering::Release);
        }
    }

    /// Whether requests are being refused.
    pub fn is_open(&self) -> bool {
        self.refuse_until_ms.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_refuses_at_once_then_lets_one_probe_through() {
        let b = Breaker::default();
        let probe = Duration::from_secs(5);
        assert!(b.admit_at(1_000, probe), "closed: everyone passes");
        b.record_unreachable_at(1_000);
        assert!(!b.admit_at(1_500, probe), "open: refused at once");
        assert!(b.admit_at(2_000, probe), "after OPEN_FOR: one probe");
        assert!(!b.admit_at(2_001, probe), "the others wait while the probe runs");
        b.record_unreachable_at(2_100);
        assert!(!b.admit_at(2_500, probe), "a failed probe opens it again");
        assert!(b.admit_at(3_100, probe));
        b.record_reachable();
        assert!(b.admit_at(3_101, probe) && b.admit_at(3_102, probe), "a good answer closes it");
        assert!(!b.is_open());
    }
}
