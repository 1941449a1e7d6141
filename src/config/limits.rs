//! The `ratelimit` and `redis` sections: request limits, the login lockout, and the Redis
//! that shares them between replicas (see src/ratelimit.rs and docs/OPERATIONS.md).

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, string_or_list};

/// Request limits (GCRA: `*_limit` requests per `*_window_secs`, the whole limit usable as a
/// burst) per caller — API key, else user, else client IP — and the login lockout. Classes
/// belong to service operations: `login` = log in, register, refresh, reset a password;
/// `checkout` = place or pay an order; `api` = every other operation. See
/// docs/OPERATIONS.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Request limits on or off (the login lockout has its own thresholds; 0 turns one off).
    pub enabled: bool,
    /// Proxies (IPs or CIDRs, e.g. `10.0.0.0/8`) whose `X-Forwarded-For` is believed; the
    /// client is the right-most address not in this list. Empty: the socket peer.
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    pub api_limit: u32,
    pub api_window_secs: u64,
    pub login_limit: u32,
    pub login_window_secs: u64,
    pub checkout_limit: u32,
    pub checkout_window_secs: u64,
    /// Failed logins for one email from one client IP before that pair has to wait; 0: off.
    pub lockout_pair_failures: u32,
    /// The pair's first wait in seconds; it doubles with each further failure, up to
    /// `lockout_window_secs`.
    pub lockout_pair_delay_secs: u64,
    /// Failed logins for one email, from any addresses, within `lockout_window_secs` before
    /// it is locked (against distributed guessing; far above what one address can reach
    /// through its pair's waits); 0: off.
    pub lockout_account_failures: u32,
    /// Failed logins from one client IP within `lockout_window_secs` before it is locked; 0: off.
    pub lockout_ip_failures: u32,
    /// Counted from the first failure; the lock lifts when it ends. Also how long a pair's
    /// count lives after its last failure, and its longest wait.
    pub lockout_window_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            api_limit: 1200,
            api_window_secs: 60,
            login_limit: 20,
            login_window_secs: 60,
            checkout_limit: 20,
            checkout_window_secs: 60,
            lockout_pair_failures: 5,
            lockout_pair_delay_secs: 2,
            // NIST SP 800-63B §5.2.2 allows at most 100 consecutive failures per account.
            lockout_account_failures: 100,
            lockout_ip_failures: 100,
            lockout_window_secs: 900,
        }
    }
}

/// Redis, shared by every replica for rate limits and lockouts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`. Empty: limits are kept in each process.
    pub url: Secret,
    /// Prepended to every key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Every Redis call gives up after this long (then the failure policy applies).
    pub timeout_ms: u64,
    /// After a failed call, Redis is not tried again for this long.
    pub backoff_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: Secret::default(), key_prefix: "orderly:".into(), timeout_ms: 100, backoff_ms: 1_000 }
    }
}

impl RateLimitConfig {
    /// Fails naming the key: limits and windows must be positive, proxies must parse.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (key, limit, window) in [
            ("api", self.api_limit, self.api_window_secs),
            ("login", self.login_limit, self.login_window_secs),
            ("checkout", self.checkout_limit, self.checkout_window_secs),
        ] {
            if limit == 0 || window == 0 {
                return Err(ConfigError(format!(
                    "`ratelimit.{key}_limit` and `ratelimit.{key}_window_secs` must be positive"
                )));
            }
        }
        if self.lockout_window_secs == 0 {
            return Err(ConfigError("`ratelimit.lockout_window_secs` must be positive".into()));
        }
        if self.lockout_pair_failures > 0 && self.lockout_pair_delay_secs == 0 {
            return Err(ConfigError("`ratelimit.lockout_pair_delay_secs` must be positive".into()));
        }
        for p in &self.trusted_proxies {
            super::Cidr::parse(p).map_err(|e| ConfigError(format!("`ratelimit.trusted_proxies` entry {p:?}: {e}")))?;
        }
        Ok(())
    }
}

impl RedisConfig {
    /// Fails naming the key: only `redis://` and `unix://` URLs (no TLS client is built in).
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let url = self.url.expose();
        if !(url.is_empty() || url.starts_with("redis://") || url.starts_with("unix://")) {
            return Err(ConfigError(
                "`redis.url` must start with redis:// or unix:// (rediss:// is not built in)".into(),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError("`redis.timeout_ms` must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn bad_limits_and_proxies_are_rejected_naming_the_key() {
        for (key, value, named) in [
            ("ratelimit.login_limit", "0", "ratelimit.login_limit"),
            ("ratelimit.trusted_proxies", "10.0.0.0/8, nonsense", "ratelimit.trusted_proxies"),
            ("redis.url", "http://localhost", "redis.url"),
            ("ratelimit.lockout_pair_delay_secs", "0", "ratelimit.lockout_pair_delay_secs"),
        ] {
            let err = Config::from_pairs([(key, value.to_string())]).expect_err(key);
            assert!(err.to_string().contains(named), "{err}");
        }
        let cfg =
            Config::from_pairs([("ratelimit.trusted_proxies", "10.0.0.0/8, 127.0.0.1".to_string())]).expect("valid");
        assert_eq!(cfg.ratelimit.trusted_proxies, vec!["10.0.0.0/8", "127.0.0.1"]);
    }
}
