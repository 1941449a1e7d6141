//! The `http` section: the public listener and its limits.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// Largest accepted request body, streamed or not.
    pub max_body_bytes: u64,
    /// A request that takes longer is answered 503.
    pub request_timeout_ms: u64,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace_ms: u64,
    /// A client must send its whole request head within this time (slowloris defence).
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line + headers) accepted.
    pub max_header_bytes: u64,
    /// Origins allowed by CORS, e.g. `["https://shop.example"]` (env: comma-separated).
    /// Empty: no CORS headers. `["*"]`: any origin, only without credentials.
    #[serde(deserialize_with = "string_or_list")]
    pub cors_allowed_origins: Vec<String>,
    /// Whether CORS allows credentials (cookies, Authorization) from the listed origins.
    pub cors_allow_credentials: bool,
    /// `Strict-Transport-Security: max-age=<this>` when positive; set it when served over
    /// HTTPS (behind a TLS-terminating proxy). 0 = no HSTS header.
    pub hsts_max_age_secs: u64,
    /// Responses smaller than this are not compressed.
    pub compression_min_bytes: u64,
    /// `full` (default). `off` serves the bare routes with no middleware at all — no rate
    /// limits, security headers, logs, metrics or limits — only to measure what the stack
    /// costs (bench/); refused in production mode.
    pub middleware: Middleware,
}

/// Whether the middleware stack wraps the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Middleware {
    Full,
    Off,
}

/// Accepts a list, or a comma-separated string as environment variables give it.
pub(crate) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Raw::Many(v) => v,
    })
}
