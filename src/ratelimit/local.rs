//! In-process limits: one `governor` keyed GCRA limiter per route class. Used when no Redis
//! is configured, and as the fallback while Redis is unreachable (fail open to per-replica
//! limits rather than to none).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{Class, Decision, Identity, Policy, ceil_secs};

type Keyed = RateLimiter<Identity, DefaultKeyedStateStore<Identity>, DefaultClock, StateInformationMiddleware>;

pub struct LocalLimits {
    api: Keyed,
    login: Keyed,
    checkout: Keyed,
}

fn limiter(policy: &Policy) -> Keyed {
    // GCRA with emission interval T = window / limit and a burst of `limit`: a full bucket
    // holds `limit` requests and refills one every T, i.e. `limit` per window at most.
    let limit = NonZeroU32::new(policy.limit).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(policy.interval().max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(limit))
        .allow_burst(limit);
    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
}

impl LocalLimits {
    pub fn new(api: &Policy, login: &Policy, checkout: &Policy) -> Self {
        Self { api: limiter(api), login: limiter(login), checkout: limiter(checkout) }
    }

    fn of(&self, class: Class) -> &Keyed {
        match class {
            Class::Api => &self.api,
            Class::Login => &self.login,
            Class::Checkout => &self.checkout,
        }
    }

    /// Takes one request from `identity`'s bucket under `policy`.
    pub fn check(&self, policy: Policy, identity: &Identity) -> Decision {
        let limiter = self.of(policy.class);
        match limiter.check_key(identity) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // governor does not expose the bucket's exact level; one interval is an upper
                // bound on the time until another unit of quota comes back.
                Decision { policy, allowed: true, remaining, reset_secs: ceil_secs(policy.interval()) }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                Decision { policy, allowed: false, remaining: 0, reset_secs: ceil_secs(wait) }
            }
        }
    }

    /// Forgets buckets that are full again (they behave exactly like absent ones), so memory
    /// follows the number of recently active callers. Call periodically.
    pub fn retain_recent(&self) {
        for l in [&self.api, &self.login, &self.checkout] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
