//! Brute-force login protection (OWASP Authentication Cheat Sheet, "Account lockout";
//! NIST SP 800-63B §5.2.2; OWASP ASVS v4 §2.2.1) that slows an attacker without letting
//! one address lock other people out. Failed logins are counted three ways; the account is
//! the submitted email, hashed, whether or not it exists, so a refusal reveals nothing about
//! accounts:
//!
//! - **per account and address pair** (`login-account-address`): after
//!   `lockout_pair_failures` failures of one email from one address, that pair waits
//!   `lockout_pair_delay_secs` before its next attempt, and each further failure doubles
//!   the wait, up to `lockout_window_secs`. The count is forgotten `lockout_window_secs`
//!   after the pair's last failure, or at its next successful login. Other addresses, and
//!   other accounts from this address, are not affected.
//! - **per address** (`login-ip`): `lockout_ip_failures` failures from one address within
//!   `lockout_window_secs` (counted from its first failure) lock logins from it until the
//!   window ends. Attempts refused by a pair's wait are not failures, so hammering one
//!   account adds only a handful here: it takes guesses spread over many accounts
//!   (password spraying) to reach it.
//! - **per account** (`login-account`): `lockout_account_failures` failures of one email
//!   within the window, from any addresses, lock it until the window ends, even for the
//!   right password: the guard against distributed guessing. Its threshold sits far above
//!   what one address can reach through its pair's waits, so one address cannot lock an
//!   account for others.
//!
//! A successful login clears the account's count and the pair's (not the address's, which
//! one valid account could otherwise keep resetting). Staff clear an account's counts and
//! waits with [`unlock`]. Counters live in Redis when configured (all replicas see them),
//! else in this process.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::shared::{Failure, Redis};
use crate::config::RateLimitConfig;
use crate::error::{Error, Result};

/// The policy names a refusal reports (`violated-policies`, metrics).
pub const PAIR_POLICY: &str = "login-account-address";
pub const ACCOUNT_POLICY: &str = "login-account";
pub const IP_POLICY: &str = "login-ip";

/// In-process counters: key → (count, until).
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

    /// Counts one failure on `key`; the window starts at its first failure.
    fn fail(&self, key: &str, window: Duration, now: Instant) {
        if let Ok(mut map) = self.0.lock() {
            let e = map.entry(key.to_owned()).or_insert((0, now + window));
            if e.1 <= now {
                *e = (0, now + window);
            }
            e.0 += 1;
        }
    }

    /// Counts one failure of a pair: its count lives `window` after its last failure; from
    /// `threshold` on, the pair's wait is set.
    fn fail_pair(&self, keys: &PairKeys, delays: &Delays, now: Instant) {
        if let Ok(mut map) = self.0.lock() {
            let e = map.entry(keys.count.clone()).or_insert((0, now));
            if e.1 <= now {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = now + delays.window;
            if let Some(wait) = delays.wait_after(e.0) {
                map.insert(keys.wait.clone(), (1, now + wait));
            }
        }
    }

    fn clear(&self, keys: &[&str]) {
        if let Ok(mut map) = self.0.lock() {
            for k in keys {
                map.remove(*k);
            }
        }
    }

    fn clear_prefix(&self, prefix: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|k, _| !k.starts_with(prefix));
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

/// A pair's progressive waits: none below `threshold` failures, then `base`, doubling with
/// each further failure, never longer than `window`.
pub struct Delays {
    pub threshold: u32,
    pub base: Duration,
    pub window: Duration,
}

impl Delays {
    /// The wait after the pair's `failures`-th failure, if any.
    pub fn wait_after(&self, failures: u32) -> Option<Duration> {
        let steps = failures.checked_sub(self.threshold)?;
        let factor = 1u32.checked_shl(steps.min(31)).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.window))
    }
}

/// The keys (in Redis, after the prefix) of one pair: its failure count and its wait.
pub struct PairKeys {
    pub count: String,
    pub wait: String,
}

/// A fixed-window counter and its threshold.
struct Counter {
    key: String,
    policy: &'static str,
    threshold: u32,
}

/// The account part of every key: the normalised email, hashed (an email address is
/// personal data and has no business in Redis key names).
fn account_key(email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    hex::encode(&digest[..16])
}

/// Every pair key of an account starts with this.
fn pair_prefix(account: &str) -> String {
    format!("lock:pair:{account}:")
}

fn pair_keys(account: &str, ip: IpAddr) -> PairKeys {
    let count = format!("{}{ip}", pair_prefix(account));
    PairKeys { wait: format!("{count}:wait"), count }
}

fn counters(cfg: &RateLimitConfig, ip: IpAddr, account: &str) -> Vec<Counter> {
    let mut out = Vec::with_capacity(2);
    if cfg.lockout_account_failures > 0 {
        out.push(Counter {
            key: format!("lock:acct:{account}"),
            policy: ACCOUNT_POLICY,
            threshold: cfg.lockout_account_failures,
        });
    }
    if cfg.lockout_ip_failures > 0 {
        out.push(Counter { key: format!("lock:ip:{ip}"), policy: IP_POLICY, threshold: cfg.lockout_ip_failures });
    }
    out
}

fn unavailable<E>(_: E) -> Error {
    Error::Unavailable("login is unavailable for a moment; try again shortly")
}

/// Runs the login `attempt` for `email` from `ip` unless refused (429 `rate-limited`, policy
/// `login-account-address`, `login-account` or `login-ip`, with `Retry-After`); counts it if
/// it fails with `invalid-credentials`. With Redis configured but unreachable, the answer is
/// 503 `unavailable`: login fails closed.
pub async fn guard<T>(
    cfg: &RateLimitConfig,
    redis: Option<&Redis>,
    local: &LocalCounts,
    ip: IpAddr,
    email: &str,
    attempt: impl Future<Output = Result<T>>,
) -> Result<T> {
    let account = account_key(email);
    let counters = counters(cfg, ip, &account);
    let pair = (cfg.lockout_pair_failures > 0).then(|| pair_keys(&account, ip));
    if counters.is_empty() && pair.is_none() {
        return attempt.await;
    }
    // What to look at first: the pair's wait (a count of 1 while it lasts), then the counters.
    let mut checks: Vec<(&str, &'static str, u32)> = Vec::with_capacity(3);
    if let Some(p) = &pair {
        checks.push((&p.wait, PAIR_POLICY, 1));
    }
    checks.extend(counters.iter().map(|c| (c.key.as_str(), c.policy, c.threshold)));
    let now = Instant::now();
    let state: Vec<(u32, Duration)> = match redis {
        Some(r) => r
            .counts(checks.iter().map(|(k, _, _)| r.key(k)).collect())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|(n, ttl_ms)| (n, Duration::from_millis(ttl_ms)))
            .collect(),
        None => checks.iter().map(|(k, _, _)| local.get(k, now)).collect(),
    };
    for ((_, policy, threshold), (count, left)) in checks.iter().zip(&state) {
        if *count >= *threshold {
            return Err(Error::RateLimited { policy, retry_after_secs: super::ceil_secs(*left).max(1) });
        }
    }
    let result = attempt.await;
    let delays = Delays {
        threshold: cfg.lockout_pair_failures,
        base: Duration::from_secs(cfg.lockout_pair_delay_secs),
        window: Duration::from_secs(cfg.lockout_window_secs),
    };
    let account_counter = counters.iter().find(|c| c.policy == ACCOUNT_POLICY);
    match (&result, redis) {
        (Err(Error::InvalidCredentials), Some(r)) => {
            let failure = Failure {
                fixed: counters.iter().map(|c| r.key(&c.key)).collect(),
                pair: pair.as_ref().map(|p| (r.key(&p.count), r.key(&p.wait))),
                window: delays.window,
                pair_threshold: delays.threshold,
                pair_base: delays.base,
            };
            r.count_failure(failure).await.map_err(unavailable)?;
        }
        (Err(Error::InvalidCredentials), None) => {
            counters.iter().for_each(|c| local.fail(&c.key, delays.window, now));
            if let Some(p) = &pair {
                local.fail_pair(p, &delays, now);
            }
        }
        (Ok(_), Some(r)) => {
            let keys: Vec<String> = account_counter
                .map(|a| a.key.as_str())
                .into_iter()
                .chain(pair.iter().flat_map(|p| [p.count.as_str(), p.wait.as_str()]))
                .map(|k| r.key(k))
                .collect();
            // Best effort: a stale count only expires later.
            let _ = r.delete(keys).await;
        }
        (Ok(_), None) => {
            let keys: Vec<&str> = account_counter
                .map(|a| a.key.as_str())
                .into_iter()
                .chain(pair.iter().flat_map(|p| [p.count.as_str(), p.wait.as_str()]))
                .collect();
            local.clear(&keys);
        }
        _ => {}
    }
    result
}

/// Clears `email`'s lockout: its account count and every pair's count and wait (not the
/// addresses' counts, which belong to the addresses). 503 `unavailable` while a configured
/// Redis is unreachable.
pub async fn unlock(redis: Option<&Redis>, local: &LocalCounts, email: &str) -> Result<()> {
    let account = account_key(email);
    let account_key = format!("lock:acct:{account}");
    let pairs = pair_prefix(&account);
    match redis {
        Some(r) => r.delete_account(r.key(&account_key), r.key(&pairs)).await.map_err(unavailable),
        None => {
            local.clear(&[&account_key]);
            local.clear_prefix(&pairs);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_waits_from_its_threshold_on_doubling_up_to_the_window() {
        let d = Delays { threshold: 3, base: Duration::from_secs(2), window: Duration::from_secs(60) };
        let waits: Vec<Option<u64>> = (1..=9).map(|n| d.wait_after(n).map(|w| w.as_secs())).collect();
        assert_eq!(waits, [None, None, Some(2), Some(4), Some(8), Some(16), Some(32), Some(60), Some(60)]);
        assert_eq!(d.wait_after(u32::MAX), Some(Duration::from_secs(60)), "no overflow");
    }

    #[test]
    fn pair_keys_share_the_account_prefix_and_hold_no_email() {
        let a = account_key(" Ann@Example.com");
        assert_eq!(a, account_key("ann@example.com"));
        let keys = pair_keys(&a, IpAddr::from([198, 51, 100, 7]));
        assert!(keys.count.starts_with(&pair_prefix(&a)) && keys.wait.starts_with(&pair_prefix(&a)));
        assert!(!keys.count.contains("ann"));
    }

    #[test]
    fn in_process_pairs_wait_and_unlocking_clears_them() {
        let local = LocalCounts::default();
        let d = Delays { threshold: 2, base: Duration::from_secs(5), window: Duration::from_secs(60) };
        let a = account_key("ann@example.com");
        let keys = pair_keys(&a, IpAddr::from([198, 51, 100, 7]));
        let now = Instant::now();
        local.fail_pair(&keys, &d, now);
        assert_eq!(local.get(&keys.wait, now).0, 0);
        local.fail_pair(&keys, &d, now);
        assert_eq!(local.get(&keys.wait, now), (1, Duration::from_secs(5)));
        local.clear_prefix(&pair_prefix(&a));
        assert_eq!(local.get(&keys.count, now).0, 0);
        assert_eq!(local.get(&keys.wait, now).0, 0);
    }
}
