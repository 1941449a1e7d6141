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
