//! Brute-force login protection (OWASP Authentication Cheat Sheet, "Account lockout";
//! NIST SP 800-63B §5.2.2). Failed logins are counted per account (the submitted email,
//! hashed, whether or not it exists, so a lock reveals nothing about accounts) and per
//! client IP, in a fixed window that starts at the first failure. Once a count reaches its
//! threshold, every attempt for that account or from that IP is refused with 429 until the
//! window ends, even with the right password. A successful login clears the account count
//! (not the IP count, which one valid account could otherwise keep resetting).
//!
//! Counters live in Redis when configured (all replicas see them), else in this process.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::shared::Redis;
use crate::config::RateLimitConfig;
use crate::error::{Error, Result};

/// One counter: the key (in Redis, after the prefix) and its threshold.
struct Counter {
    key: String,
    policy: &'static str,
    threshold: u32,
}

#[derive(Default)]
pub struct LocalCounts(Mutex<HashMap<String, (u32, Instant)>>);

impl LocalCounts {
    fn get(&self, key: &str, now: Instant) -> (u32, Duration) {
        let Ok(map) = self.0.lock() else {
            return (0, Duration::ZERO);
        };
        match map.get(key) {
            Some((n, until)) if *until > now => (*n, *until - now),
            _ => (0, Duration::ZERO),
        }
    }

    fn fail(&self, key: &str, window: Duration, now: Instant) {
        if let Ok(mut map) = self.0.lock() {
            let e = map.entry(key.to_owned()).or_insert((0, now + window));
            if e.1 <= now {
                *e = (0, now + window);
            }
            e.0 += 1;
        }
    }

    fn clear(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }

    /// Drops counters whose window is over.
    pub fn purge(&self) {
        let now = Instant::now();
        if let Ok(mut map) = self.0.lock() {
            map.retain(|_, (_, until)| *until > now);
        }
    }
}

fn counters(cfg: &RateLimitConfig, ip: IpAddr, email: &str) -> Vec<Counter> {
    let mut out = Vec::with_capacity(2);
    if cfg.lockout_account_failures > 0 {
        // Hashed: an email address is personal data and has no business in Redis key names.
        let account = hash_token(&email.trim().to_lowercase());
        out.push(Counter {
            key: format!("lock:acct:{}", &account[..32]),
            policy: "login-account",
            threshold: cfg.lockout_account_failures,
        });
    }
    if cfg.lockout_ip_failures > 0 {
        out.push(Counter { key: format!("lock:ip:{ip}"), policy: "login-ip", threshold: cfg.lockout_ip_failures });
    }
    out
}

/// Runs the login `attempt` for `email` from `ip` unless locked out (429 `rate-limited`,
/// policy `login-account` or `login-ip`, with `Retry-After`); counts it if it fails with
/// `invalid-credentials`. With Redis configured but unreachable, the answer is 503
/// `unavailable`: login fails closed.
pub async fn guard<T>(
    cfg: &RateLimitConfig,
    redis: Option<&Redis>,
    local: &LocalCounts,
    ip: IpAddr,
    email: &str,
    attempt: impl Future<Output = Result<T>>,
) -> Result<T> {
    let counters = counters(cfg, ip, email);
    if counters.is_empty() {
        return attempt.await;
    }
    let unavailable = |_| Error::Unavailable("login is unavailable for a moment; try again shortly");
    let now = Instant::now();
    let state: Vec<(u32, Duration)> = match redis {
        Some(r) => r
            .counts(counters.iter().map(|c| r.key(&c.key)).collect())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|(n, ttl_ms)| (n, Duration::from_millis(ttl_ms)))
            .collect(),
        None => counters.iter().map(|c| local.get(&c.key, now)).collect(),
    };
    for (c, (count, left)) in counters.iter().zip(&state) {
        if *count >= c.threshold {
            return Err(Error::RateLimited { policy: c.policy, retry_after_secs: super::ceil_secs(*left) });
        }
    }
    let result = attempt.await;
    let window = Duration::from_secs(cfg.lockout_window_secs);
    let account = counters.iter().find(|c| c.policy == "login-account");
    match (&result, redis) {
        (Err(Error::InvalidCredentials), Some(r)) => {
            let keys = counters.iter().map(|c| r.key(&c.key)).collect();
            r.count_failure(keys, window).await.map_err(unavailable)?;
        }
        (Err(Error::InvalidCredentials), None) => counters.iter().for_each(|c| local.fail(&c.key, window, now)),
        (Ok(_), Some(r)) => {
            if let Some(a) = account {
                // Best effort: a stale count only expires later.
                let _ = r.delete(r.key(&a.key)).await;
            }
        }
        (Ok(_), None) => account.iter().for_each(|a| local.clear(&a.key)),
        _ => {}
    }
    result
}

/// Hex SHA-256, so lockout keys never hold an email address in clear.
fn hash_token(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
