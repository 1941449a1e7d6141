//! The smaller sections of the configuration: database, auth, checkout, payments, admin,
//! dashboard, flags, idempotency, log. Their keys and defaults are listed in docs/OPERATIONS.md.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{LogFormat, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` for PostgreSQL; empty for the SQLite file `<data_dir>/orderly.db`;
    /// `sqlite://…` for another SQLite file.
    pub url: Secret,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    /// SQLite only: the soft limit on SQLite's heap in MiB, all connections together
    /// (`PRAGMA soft_heap_limit`, <https://sqlite.org/pragma.html#pragma_soft_heap_limit>).
    /// Past it SQLite recycles cached pages instead of growing its caches; 0: no limit.
    pub sqlite_heap_limit_mib: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 key, at least 32 bytes. Empty in development: one is generated and kept in
    /// `<data_dir>/jwt-secret`.
    pub jwt_secret: Secret,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutConfig {
    /// How long an unpaid order holds its stock.
    pub reservation_ttl_secs: u64,
    /// How often expired reservations are released.
    pub expiry_interval_ms: u64,
    /// How often interrupted sagas are looked for and resumed.
    pub recovery_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// How long one gateway call may take; a saga stuck in `charging` twice this long is
    /// taken over by the recovery worker.
    pub timeout_ms: u64,
    /// Base URL of an HTTP payment gateway (`http://host:port[/prefix]`, protocol in
    /// `src/payments/http.rs`); empty: the built-in sandbox.
    pub url: String,
    /// Extra attempts after a retryable failure (connect error, timeout, 5xx, 429) of a call
    /// the provider's idempotency key makes safe (charge, partial refund) or a read (lookup).
    pub retries: u32,
    /// First backoff between attempts; doubles each retry, with full jitter, up to
    /// `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// The breaker opens when at least this share of the calls in its window failed
    /// (0 < ratio ≤ 1)…
    pub breaker_failure_ratio: f64,
    /// …and its window holds at least this many calls.
    pub breaker_min_calls: u32,
    /// The breaker's sliding window: the calls of the last this many ms.
    pub breaker_window_ms: u64,
    /// How long an open breaker refuses calls before letting probes through (half-open).
    pub breaker_open_ms: u64,
    /// Calls let through while half-open: this many successes close the breaker, one
    /// failure reopens it.
    pub breaker_half_open_probes: u32,
    /// Calls in flight at once (a bulkhead); one more fails fast with 503.
    pub max_concurrent_calls: u32,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            url: String::new(),
            retries: 2,
            backoff_base_ms: 100,
            backoff_max_ms: 2_000,
            breaker_failure_ratio: 0.5,
            breaker_min_calls: 10,
            breaker_window_ms: 30_000,
            breaker_open_ms: 30_000,
            breaker_half_open_probes: 3,
            max_concurrent_calls: 64,
        }
    }
}

impl PaymentsConfig {
    /// The longest one gateway call may take, in ms: `timeout_ms` for the in-process
    /// sandbox; with `url` set, every attempt timing out plus the longest backoff before each
    /// retry (`min(base × 2ⁿ, max)`, which jitter may double). Sagas hold their lease for
    /// twice this (`orders::state::saga_lease`).
    pub fn call_budget_ms(&self) -> u64 {
        if self.url.is_empty() {
            return self.timeout_ms;
        }
        let mut total = self.timeout_ms;
        let mut delay = self.backoff_base_ms;
        for _ in 0..self.retries {
            let wait = delay.min(self.backoff_max_ms).saturating_mul(2);
            total = total.saturating_add(wait).saturating_add(self.timeout_ms);
            delay = delay.saturating_mul(2);
        }
        total
    }
}

/// The admin listener: `/metrics` and `/debug/pprof/profile`, kept off the public port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bind address; port 0 picks a free port (reported by `Application::admin_addr`).
    pub addr: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { addr: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Overall deadline; sources not done by then are reported in `missing`.
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagsConfig {
    /// How often each process reloads feature flags changed by another replica.
    pub refresh_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` syntax; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// How long a stored `Idempotency-Key` answer is replayed (Stripe keeps keys 24 h); older
    /// keys are pruned and may be reused for a new request.
    pub retention_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::PaymentsConfig;

    #[test]
    fn the_call_budget_covers_every_attempt_and_the_longest_backoffs() {
        let sandbox = PaymentsConfig { timeout_ms: 1_000, ..PaymentsConfig::default() };
        assert_eq!(sandbox.call_budget_ms(), 1_000, "the sandbox is not retried");
        let http = PaymentsConfig {
            timeout_ms: 1_000,
            url: "http://127.0.0.1:9".into(),
            retries: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 300,
            ..PaymentsConfig::default()
        };
        // 4 attempts + 2 × (100 + 200 + 300) of backoff.
        assert_eq!(http.call_budget_ms(), 4_000 + 1_200);
    }
}
