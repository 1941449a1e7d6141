//! Typed configuration: built-in defaults, then `orderly.toml`, then `ORDERLY_*` environment
//! variables. Invalid configuration stops start-up with a message naming the key.
//!
//! Environment names map onto keys by their first word: `ORDERLY_DATABASE_URL` is
//! `database.url`, `ORDERLY_HTTP_ADDR` is `http.addr`, `ORDERLY_DATA_DIR` is `data_dir`
//! (see [`env`]); other `ORDERLY_*` variables are ignored with a warning. Every key is
//! listed in `docs/OPERATIONS.md`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod cache;
mod cidr;
mod env;
mod events;
mod graphql;
mod grpc;
mod http;
mod jobs;
mod limits;
mod sections;
mod storage;
pub use self::cache::{CacheConfig, CatalogConfig};
pub use self::cidr::{Cidr, canonical};
pub use self::events::{EventsConfig, NatsConfig, RealtimeConfig, WebhooksConfig};
pub use self::graphql::GraphqlConfig;
pub use self::grpc::GrpcConfig;
use self::http::string_or_list;
pub use self::http::{HttpConfig, Middleware};
pub use self::jobs::{ImportsConfig, JobsConfig};
pub use self::limits::{RateLimitConfig, RedisConfig};
pub use self::sections::{
    AdminConfig, AuthConfig, CheckoutConfig, DashboardConfig, DatabaseConfig, FlagsConfig, IdempotencyConfig,
    LogConfig, PaymentsConfig,
};
pub use self::storage::{SNIFFABLE_IMAGE_TYPES, StorageConfig};

/// A value that must never be printed: `Debug` and `Serialize` show `"[redacted]"`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() { s.serialize_str("") } else { s.serialize_str("[redacted]") }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON lines otherwise.
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `production` refuses to start with a generated or short JWT secret.
    pub mode: Mode,
    /// Holds the SQLite file and local files.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub checkout: CheckoutConfig,
    pub payments: PaymentsConfig,
    pub dashboard: DashboardConfig,
    pub log: LogConfig,
    pub flags: FlagsConfig,
    pub idempotency: IdempotencyConfig,
    pub admin: AdminConfig,
    pub ratelimit: RateLimitConfig,
    pub redis: RedisConfig,
    pub cache: CacheConfig,
    pub catalog: CatalogConfig,
    pub grpc: GrpcConfig,
    pub events: EventsConfig,
    pub nats: NatsConfig,
    pub realtime: RealtimeConfig,
    pub webhooks: WebhooksConfig,
    pub storage: StorageConfig,
    pub graphql: GraphqlConfig,
    pub jobs: JobsConfig,
    pub imports: ImportsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Development,
            data_dir: PathBuf::from("./data"),
            http: HttpConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
                max_body_bytes: 1024 * 1024,
                request_timeout_ms: 30_000,
                shutdown_grace_ms: 10_000,
                header_read_timeout_ms: 10_000,
                max_header_bytes: 64 * 1024,
                cors_allowed_origins: Vec::new(),
                cors_allow_credentials: false,
                hsts_max_age_secs: 0,
                compression_min_bytes: 1024,
                middleware: Middleware::Full,
            },
            database: DatabaseConfig {
                url: Secret::default(),
                max_connections: 16,
                min_connections: 1,
                acquire_timeout_ms: 5_000,
                sqlite_heap_limit_mib: 16,
            },
            auth: AuthConfig {
                jwt_secret: Secret::default(),
                issuer: "orderly".into(),
                audience: "orderly-api".into(),
                access_token_ttl_secs: 15 * 60,
                refresh_token_ttl_secs: 30 * 24 * 3600,
            },
            checkout: CheckoutConfig {
                reservation_ttl_secs: 15 * 60,
                expiry_interval_ms: 10_000,
                recovery_interval_ms: 5_000,
            },
            payments: PaymentsConfig::default(),
            dashboard: DashboardConfig { deadline_ms: 2_000 },
            log: LogConfig { format: LogFormat::Auto, filter: "info".into() },
            flags: FlagsConfig { refresh_interval_ms: 5_000 },
            idempotency: IdempotencyConfig { retention_secs: 24 * 3600 },
            admin: AdminConfig::default(),
            ratelimit: RateLimitConfig::default(),
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            catalog: CatalogConfig::default(),
            grpc: GrpcConfig::default(),
            events: EventsConfig::default(),
            nats: NatsConfig::default(),
            realtime: RealtimeConfig::default(),
            webhooks: WebhooksConfig::default(),
            storage: StorageConfig::default(),
            graphql: GraphqlConfig::default(),
            jobs: JobsConfig::default(),
            imports: ImportsConfig::default(),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then `file` (if it exists; `orderly.toml` when `None`), then the
    /// process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_reporting(file).map(|(config, _)| config)
    }

    /// [`load`](Self::load), and the warnings to log once logging is set up: `ORDERLY_*`
    /// variables that are not settings (ignored), and settings this build accepts but does
    /// not use yet. An invalid `RUST_LOG` is an error, as an invalid `log.filter` is.
    pub fn load_reporting(file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let path = file.unwrap_or(Path::new("orderly.toml"));
        if file.is_some() && !path.exists() {
            return Err(ConfigError(format!("config file {} does not exist", path.display())));
        }
        let config = Self::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::file(path)).merge(env::provider()),
        )?;
        if let Ok(rust_log) = std::env::var("RUST_LOG")
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(&rust_log)
        {
            return Err(ConfigError(format!("`RUST_LOG` is not a valid log filter: {e}")));
        }
        let warnings: Vec<String> = env::unknown_warning(std::env::vars().map(|(k, _)| k)).into_iter().collect();
        Ok((config, warnings))
    }

    /// Defaults overlaid with the given `(key, value)` pairs (dotted keys); values are parsed
    /// as environment variables are (`"100"` is a number). For tests and embedding.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        for (k, v) in pairs {
            let value: figment::value::Value = v.parse().unwrap_or_else(|_| v.clone().into());
            fig = fig.merge(Serialized::default(k, value));
        }
        Self::from_figment(fig)
    }

    fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let cfg: Config = fig.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError(msgs.join("; "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("`{key}` {why}")));
        let url = self.database.url.expose();
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return bad("database.url", "must start with postgres://, postgresql:// or sqlite:");
        }
        self.jobs.check().map_err(ConfigError)?;
        if !(1..=10_000).contains(&self.imports.batch_rows) {
            return bad("imports.batch_rows", "must be between 1 and 10000");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        if self.database.min_connections > self.database.max_connections {
            return bad("database.min_connections", "must not exceed database.max_connections");
        }
        if self.http.cors_allow_credentials && self.http.cors_allowed_origins.iter().any(|o| o == "*") {
            return bad(
                "http.cors_allowed_origins",
                "must list origins, not \"*\", when http.cors_allow_credentials is true",
            );
        }
        if self.mode == Mode::Production && self.http.middleware == Middleware::Off {
            return bad("http.middleware", "must be full in production mode");
        }
        if self.http.header_read_timeout_ms == 0 {
            return bad("http.header_read_timeout_ms", "must be positive");
        }
        if self.http.max_header_bytes < 8192 {
            return bad("http.max_header_bytes", "must be at least 8192");
        }
        if self.http.max_body_bytes < 1024 {
            return bad("http.max_body_bytes", "must be at least 1024");
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return bad("auth.access_token_ttl_secs", "and auth.refresh_token_ttl_secs must be positive");
        }
        let secret = self.auth.jwt_secret.expose();
        if !secret.is_empty() && secret.len() < 32 {
            return bad("auth.jwt_secret", "must be at least 32 bytes");
        }
        if self.mode == Mode::Production && secret.is_empty() {
            return bad("auth.jwt_secret", "must be set in production mode (at least 32 bytes)");
        }
        if self.checkout.reservation_ttl_secs == 0 {
            return bad("checkout.reservation_ttl_secs", "must be positive");
        }
        if self.idempotency.retention_secs == 0 {
            return bad("idempotency.retention_secs", "must be positive");
        }
        self.storage.validate()?;
        if self.payments.timeout_ms == 0 {
            return bad("payments.timeout_ms", "must be positive");
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(ConfigError(format!("`log.filter` is not a valid log filter: {e}")));
        }
        let p = &self.payments;
        if !(p.breaker_failure_ratio > 0.0 && p.breaker_failure_ratio <= 1.0) {
            return bad("payments.breaker_failure_ratio", "must be above 0 and at most 1");
        }
        for (key, value) in [
            ("payments.breaker_min_calls", u64::from(p.breaker_min_calls)),
            ("payments.breaker_window_ms", p.breaker_window_ms),
            ("payments.breaker_open_ms", p.breaker_open_ms),
            ("payments.breaker_half_open_probes", u64::from(p.breaker_half_open_probes)),
            ("payments.max_concurrent_calls", u64::from(p.max_concurrent_calls)),
        ] {
            if value == 0 {
                return bad(key, "must be positive");
            }
        }
        if p.backoff_base_ms > p.backoff_max_ms {
            return bad("payments.backoff_base_ms", "must not exceed payments.backoff_max_ms");
        }
        if !(self.payments.url.is_empty() || self.payments.url.starts_with("http://")) {
            return bad("payments.url", "must be empty (sandbox) or an http:// URL (https:// is not built in)");
        }
        self.ratelimit.check()?;
        self.redis.check()?;
        self.cache.check()?;
        self.graphql.check()?;
        Ok(())
    }

    /// The database URL to connect to, defaulting to the SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        let url = self.database.url.expose();
        if url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("orderly.db").display())
        } else {
            url.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn a_short_jwt_secret_is_rejected_naming_the_key() {
        let err = Config::from_pairs([("auth.jwt_secret", "short".to_string())]).unwrap_err();
        assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
    }

    #[test]
    fn production_without_a_secret_is_rejected() {
        let err = Config::from_pairs([("mode", "production".to_string())]).unwrap_err();
        assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
    }

    #[test]
    fn production_refuses_to_run_without_the_middleware_stack() {
        let err = Config::from_pairs([
            ("mode", "production".to_string()),
            ("auth.jwt_secret", "x".repeat(40)),
            ("http.middleware", "off".to_string()),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("http.middleware"), "{err}");
    }

    #[test]
    fn an_invalid_log_filter_is_refused_naming_the_key() {
        let err = Config::from_pairs([("log.filter", "orderly=loud".to_string())]).unwrap_err();
        assert!(err.to_string().contains("log.filter"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = Config::from_pairs([("database.max_connections", "many".to_string())]).unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
    }

    #[test]
    fn cors_lists_come_from_comma_separated_env_and_never_wildcard_with_credentials() {
        let cfg =
            Config::from_pairs([("http.cors_allowed_origins", "https://a.example, https://b.example".to_string())])
                .unwrap();
        assert_eq!(cfg.http.cors_allowed_origins, vec!["https://a.example", "https://b.example"]);
        let err = Config::from_pairs([
            ("http.cors_allowed_origins", "*".to_string()),
            ("http.cors_allow_credentials", "true".to_string()),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("http.cors_allowed_origins"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let cfg = Config::from_pairs([("auth.jwt_secret", "x".repeat(40))]).unwrap();
        let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        assert!(!shown.contains(&"x".repeat(40)));
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn environment_names_map_to_sections() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERLY_HTTP_ADDR", "127.0.0.1:9999");
            jail.set_env("ORDERLY_DATABASE_MAX_CONNECTIONS", "3");
            jail.set_env("ORDERLY_DATA_DIR", "/tmp/x");
            jail.set_env("ORDERLY_TEST_DATABASE_URL", "postgres://ignored");
            jail.set_env("ORDERLY_ADMIN_ADDR", "127.0.0.1:9999");
            jail.set_env("ORDERLY_ADMIN_PASSWORD", "not configuration");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.http.addr.port(), 9999);
            assert_eq!(cfg.admin.addr.port(), 9999);
            assert_eq!(cfg.database.max_connections, 3);
            assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
            assert!(cfg.database.url.is_empty());
            Ok(())
        });
    }
}
