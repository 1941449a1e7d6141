//! Rate limits and login brute-force protection.
//!
//! A request takes one unit from a GCRA bucket (the Generic Cell Rate Algorithm: `limit`
//! requests per `window`, all of it usable as a burst, refilled continuously) keyed by
//! [`Class`] and caller [`Identity`]: the API key, else the user, else the client IP (see
//! [`client_ip`]). The class belongs to the **service operation**, not to a URL: each
//! service operation first calls `Principal::admit` with its class (`login` for logging in,
//! registering, refreshing and resetting a password; `checkout` for placing and paying an
//! order; `api` for everything else), so REST, GraphQL and gRPC are limited alike. A request
//! refused before reaching an operation (bad credentials, a malformed body) is charged to
//! `api` by its transport. Buckets live in this process (`governor`), or in Redis when `redis.url`
//! is set, so that all replicas enforce one budget.
//!
//! Responses of limited routes carry `RateLimit-Policy` and `RateLimit` as defined by
//! draft-ietf-httpapi-ratelimit-headers-10 (structured fields, e.g.
//! `RateLimit-Policy: "api";q=1200;w=60` and `RateLimit: "api";r=1199;t=1`); refusals are
//! 429 problem+json `rate-limited` with `Retry-After`.
//!
//! Redis failure policy (each call bounded by `redis.timeout_ms`): the `api` and `checkout`
//! classes fail open to this process's own buckets; the `login` class fails closed (503
//! `unavailable`), since an attacker who can break Redis must not get unlimited guesses.

pub mod client_ip;
mod local;
pub mod lockout;
mod shared;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use self::local::LocalLimits;
use self::lockout::LocalCounts;
pub use self::shared::Redis;
use crate::config::{Cidr, Config};
use crate::error::{Error, Result};

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Which budget an operation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Every request of every transport (the transport takes it before the operation runs).
    Api,
    /// Operations that check a secret: log in, register, refresh a session, reset a password.
    Login,
    /// Operations that reserve stock or charge a card: place an order, pay an order.
    Checkout,
}

impl Class {
    /// The policy name in headers, problems and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Class::Api => "api",
            Class::Login => "login",
            Class::Checkout => "checkout",
        }
    }
}

/// Whose budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    ApiKey(Uuid),
    User(Uuid),
    Ip(IpAddr),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::ApiKey(id) => write!(f, "key:{id}"),
            Identity::User(id) => write!(f, "user:{id}"),
            Identity::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

/// `limit` requests per `window` for one class.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub class: Class,
    pub limit: u32,
    pub window: Duration,
}

impl Policy {
    /// GCRA's emission interval: one unit of quota comes back every `window / limit`.
    pub fn interval(&self) -> Duration {
        self.window / self.limit.max(1)
    }
}

/// The outcome of taking one request from a bucket.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub policy: Policy,
    pub allowed: bool,
    /// Requests left right now.
    pub remaining: u32,
    /// Seconds until more quota is available (for a refusal: until the next request may pass).
    pub reset_secs: u64,
}

impl Decision {
    /// Sets `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10 §3, §4).
    /// Written into a stack buffer with `itoa` (no `fmt` machinery, no `String`): this runs on
    /// every limited response.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let name = self.policy.class.name();
        let mut buf = Field::new();
        if let Some(v) = buf
            .quoted(name)
            .param(";q=", u64::from(self.policy.limit))
            .param(";w=", self.policy.window.as_secs())
            .value()
        {
            headers.insert(RATELIMIT_POLICY, v);
        }
        let mut buf = Field::new();
        if let Some(v) = buf.quoted(name).param(";r=", u64::from(self.remaining)).param(";t=", self.reset_secs).value()
        {
            headers.insert(RATELIMIT, v);
        }
    }
}

/// A structured-field header value built on the stack: `"name";a=1;b=2`.
struct Field {
    buf: [u8; 96],
    len: usize,
    overflow: bool,
}

impl Field {
    fn new() -> Self {
        Self { buf: [0; 96], len: 0, overflow: false }
    }

    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
        self
    }

    fn quoted(&mut self, name: &str) -> &mut Self {
        self.push(b"\"").push(name.as_bytes()).push(b"\"")
    }

    fn param(&mut self, key: &str, n: u64) -> &mut Self {
        self.push(key.as_bytes()).push(itoa::Buffer::new().format(n).as_bytes())
    }

    /// The value; `None` if it did not fit (names are short, so it always fits).
    fn value(&self) -> Option<HeaderValue> {
        if self.overflow { None } else { HeaderValue::from_bytes(&self.buf[..self.len]).ok() }
    }
}

/// Whole seconds, rounded up: a client told "0" would retry too early.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

struct Inner {
    config: crate::config::RateLimitConfig,
    trusted: Vec<Cidr>,
    api: Policy,
    login: Policy,
    checkout: Policy,
    local: LocalLimits,
    redis: Option<Redis>,
    lockouts: LocalCounts,
}

/// The limits of one process; cheap to clone.
#[derive(Clone)]
pub struct Limits(Arc<Inner>);

impl Limits {
    /// Builds the limiters from `ratelimit.*` and `redis.*` (Redis connects lazily) and
    /// starts the task that forgets idle in-process buckets every minute.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let c = &config.ratelimit;
        let policy = |class, limit, window_secs| Policy { class, limit, window: Duration::from_secs(window_secs) };
        let api = policy(Class::Api, c.api_limit, c.api_window_secs);
        let login = policy(Class::Login, c.login_limit, c.login_window_secs);
        let checkout = policy(Class::Checkout, c.checkout_limit, c.checkout_window_secs);
        let trusted = c.trusted_proxies.iter().filter_map(|p| Cidr::parse(p).ok()).collect();
        let inner = Arc::new(Inner {
            config: c.clone(),
            trusted,
            api,
            login,
            checkout,
            local: LocalLimits::new(&api, &login, &checkout),
            redis: Redis::connect(&config.redis)?,
            lockouts: LocalCounts::default(),
        });
        tokio::spawn(retain_recent(Arc::downgrade(&inner)));
        Ok(Self(inner))
    }

    pub fn enabled(&self) -> bool {
        self.0.config.enabled
    }

    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.0.trusted
    }

    /// The shared Redis, when configured (for `/readyz`).
    pub fn redis(&self) -> Option<&Redis> {
        self.0.redis.as_ref()
    }

    /// Takes one request of `class` from `identity`'s bucket. Errors only with 503
    /// `unavailable` for the login class while Redis is unreachable.
    pub async fn check(&self, class: Class, identity: Identity) -> Result<Decision> {
        let policy = match class {
            Class::Api => self.0.api,
            Class::Login => self.0.login,
            Class::Checkout => self.0.checkout,
        };
        let Some(redis) = &self.0.redis else {
            return Ok(self.0.local.check(policy, &identity));
        };
        match redis.gcra(redis.key(&format!("rl:{}:{identity}", class.name())), policy).await {
            Ok(d) => Ok(d),
            Err(_) if class == Class::Login => {
                Err(Error::Unavailable("login is unavailable for a moment; try again shortly"))
            }
            Err(_) => Ok(self.0.local.check(policy, &identity)),
        }
    }

    /// Runs a login `attempt` under the brute-force lockout; see [`lockout::guard`].
    pub async fn guard_login<T>(&self, ip: IpAddr, email: &str, attempt: impl Future<Output = Result<T>>) -> Result<T> {
        let r = lockout::guard(&self.0.config, self.0.redis.as_ref(), &self.0.lockouts, ip, email, attempt).await;
        if let Err(Error::RateLimited { policy, .. }) = &r {
            crate::metrics::rate_limited(policy);
        }
        r
    }

    /// Clears the login lockout of the account `email` (see [`lockout::unlock`]): its
    /// count and every address's wait for it. 503 `unavailable` while Redis is unreachable.
    pub async fn unlock_login(&self, email: &str) -> Result<()> {
        lockout::unlock(self.0.redis.as_ref(), &self.0.lockouts, email).await
    }
}

/// A caller's admission to operations: the limits and whose bucket to draw from. A
/// transport attaches one to each request's principal; every service operation calls
/// [`Admission::admit`] with its class first. The last decision is kept for the transport's
/// response headers. Clones share that record.
#[derive(Clone)]
pub struct Admission {
    limits: Limits,
    identity: Identity,
    last: Arc<Mutex<Option<Decision>>>,
}

impl Admission {
    pub fn new(limits: Limits, identity: Identity) -> Self {
        Self { limits, identity, last: Arc::default() }
    }

    /// Takes one request of the operation's `class` from the caller's bucket. Over the limit:
    /// `RateLimited` (REST 429 with `Retry-After`), and the operation must do nothing else.
    /// Disabled limits admit everything.
    pub async fn admit(&self, class: Class) -> Result<()> {
        if !self.limits.enabled() {
            return Ok(());
        }
        let decision = self.limits.check(class, self.identity).await?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(decision);
        }
        if decision.allowed {
            Ok(())
        } else {
            crate::metrics::rate_limited(class.name());
            Err(Error::RateLimited { policy: class.name(), retry_after_secs: decision.reset_secs.max(1) })
        }
    }

    /// The decision of the last [`admit`](Self::admit), if any operation asked.
    pub fn last_decision(&self) -> Option<Decision> {
        self.last.lock().ok().and_then(|d| *d)
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Admission({})", self.identity)
    }
}

/// Every minute, until the limits are dropped: forget full buckets and ended lockouts.
async fn retain_recent(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.local.retain_recent();
        inner.lockouts.purge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_draft_syntax() {
        let policy = Policy { class: Class::Checkout, limit: 20, window: Duration::from_secs(60) };
        let mut h = HeaderMap::new();
        Decision { policy, allowed: true, remaining: 19, reset_secs: 3 }.apply(&mut h);
        assert_eq!(h[&RATELIMIT_POLICY], "\"checkout\";q=20;w=60");
        assert_eq!(h[&RATELIMIT], "\"checkout\";r=19;t=3");
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
    }

    #[test]
    fn in_process_buckets_allow_the_burst_then_refuse_with_a_wait() {
        let policy = Policy { class: Class::Api, limit: 3, window: Duration::from_secs(60) };
        let local = LocalLimits::new(&policy, &policy, &policy);
        let who = Identity::Ip(IpAddr::from([192, 0, 2, 1]));
        let remaining: Vec<u32> = (0..3).map(|_| local.check(policy, &who).remaining).collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = local.check(policy, &who);
        assert!(!refused.allowed);
        assert!((19..=20).contains(&refused.reset_secs), "{refused:?}");
        assert!(local.check(policy, &Identity::Ip(IpAddr::from([192, 0, 2, 2]))).allowed, "buckets are per identity");
    }
}
