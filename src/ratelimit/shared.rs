//! Limits shared by every replica through Redis: GCRA in a Lua script (atomic, on Redis's
//! clock so replicas never disagree), lockout counters and waits with a TTL. Every call runs under
//! `redis.timeout_ms`; after a failure Redis is skipped for `redis.backoff_ms`, so an
//! outage costs at most one timeout per backoff period, never a hang.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use super::{Decision, Policy, ceil_secs};
use crate::config::RedisConfig;
use crate::redis_link::{RedisLink, Unavailable};

/// GCRA (the ITU-T I.371 virtual-scheduling algorithm, as in redis-cell). The key holds
/// the theoretical arrival time (TAT) in µs. KEYS[1] = bucket; ARGV[1] = emission interval
/// T (µs); ARGV[2] = limit n (burst). Returns {allowed 0|1, remaining, µs until more quota}.
const GCRA_LUA: &str = r"
local t = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local debt = tat + t - now
local capacity = t * n
if debt > capacity then
  return {0, 0, debt - capacity}
end
redis.call('SET', KEYS[1], string.format('%d', tat + t), 'PX', string.format('%d', math.ceil(debt / 1000)))
local remaining = math.floor((capacity - debt) / t)
return {1, remaining, debt - (capacity - (remaining + 1) * t)}
";

/// Counts one failed login. KEYS[1..n]: fixed-window counters (a window starts at a key's
/// first failure); KEYS[n+1], KEYS[n+2] if present: a pair's count (alive `window` after its
/// last failure) and its wait. ARGV: window (ms), n, pair threshold, pair base wait (ms).
/// From the threshold on, the wait is base × 2^(count − threshold), at most the window.
const FAIL_LUA: &str = r"
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], window) end
end
if #KEYS >= n + 2 then
  local c = redis.call('INCR', KEYS[n + 1])
  redis.call('PEXPIRE', KEYS[n + 1], window)
  local t = tonumber(ARGV[3])
  if c >= t then
    local wait = math.min(tonumber(ARGV[4]) * 2 ^ math.min(c - t, 31), window)
    redis.call('SET', KEYS[n + 2], '1', 'PX', string.format('%d', math.max(wait, 1)))
  end
end
return 1
";

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA_LUA));
static FAIL: LazyLock<Script> = LazyLock::new(|| Script::new(FAIL_LUA));

/// One failed login to count: fixed-window counters (account, address) and a pair's
/// count and wait keys, all with the `redis.key_prefix`.
pub struct Failure {
    pub fixed: Vec<String>,
    pub pair: Option<(String, String)>,
    /// The fixed counters' window, the pair count's lifetime and its longest wait.
    pub window: Duration,
    pub pair_threshold: u32,
    /// The pair's first wait; it doubles with each further failure.
    pub pair_base: Duration,
}

/// `s` with Redis glob characters escaped, for a MATCH pattern.
fn glob_escape(s: &str) -> String {
    s.chars().fold(String::with_capacity(s.len()), |mut out, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// Redis did not answer in time (or is in backoff); the caller applies the failure policy.
#[derive(Debug, Clone, Copy)]
pub struct Unreachable;

pub struct Redis {
    link: RedisLink,
    prefix: String,
}

impl Redis {
    /// A lazily connecting client for `redis.url`, `None` when it is empty. Start-up never
    /// waits for Redis: an unreachable Redis is handled like an outage.
    pub fn connect(cfg: &RedisConfig) -> anyhow::Result<Option<Self>> {
        let Some((_, link)) = RedisLink::connect(cfg, 2, "rate limits")? else {
            return Ok(None);
        };
        Ok(Some(Self { link, prefix: cfg.key_prefix.clone() }))
    }

    /// `redis.key_prefix` + `rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Runs one Redis call through the link (timeout, cool-down); logs the first failure of
    /// an outage.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, Unreachable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.link.call(f).await.map_err(|e| {
            if let Unavailable::Failed { error, first: true } = e {
                tracing::warn!(
                    error,
                    backoff_ms = self.link.backoff().as_millis() as u64,
                    "Redis unavailable; applying the failure policy"
                );
            }
            Unreachable
        })
    }

    /// One round trip, for `/readyz`; ignores the cool-down (it is how recovery shows).
    pub async fn ping(&self) -> Result<(), String> {
        self.link.ping().await
    }

    /// Takes one request from the shared bucket `key` under `policy`.
    pub async fn gcra(&self, key: String, policy: Policy) -> Result<Decision, Unreachable> {
        let interval_us = u64::try_from(policy.interval().as_micros()).unwrap_or(u64::MAX).max(1);
        let (allowed, remaining, wait_us): (i64, i64, i64) = self
            .call(|mut c| async move { GCRA.key(key).arg(interval_us).arg(policy.limit).invoke_async(&mut c).await })
            .await?;
        Ok(Decision {
            policy,
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset_secs: ceil_secs(Duration::from_micros(u64::try_from(wait_us.max(0)).unwrap_or(0))),
        })
    }

    /// The failure count and remaining window (ms) of each key; `(0, 0)` for absent keys.
    pub async fn counts(&self, keys: Vec<String>) -> Result<Vec<(u32, u64)>, Unreachable> {
        let replies: Vec<(Option<u32>, i64)> = self
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
                }
                let flat: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                flat.chunks(2)
                    .map(|pair| match pair {
                        [count, ttl] => {
                            Ok((redis::from_redis_value(count.clone())?, redis::from_redis_value(ttl.clone())?))
                        }
                        _ => Ok((None, 0)),
                    })
                    .collect::<RedisResult<Vec<_>>>()
            })
            .await?;
        Ok(replies.into_iter().map(|(n, ttl)| (n.unwrap_or(0), u64::try_from(ttl).unwrap_or(0))).collect())
    }

    /// Counts one failed login (see [`Failure`]), atomically.
    pub async fn count_failure(&self, failure: Failure) -> Result<(), Unreachable> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (window_ms, base_ms) = (ms(failure.window), ms(failure.pair_base));
        self.call(|mut c| async move {
            let mut inv = FAIL.prepare_invoke();
            for k in &failure.fixed {
                inv.key(k);
            }
            if let Some((count, wait)) = &failure.pair {
                inv.key(count).key(wait);
            }
            inv.arg(window_ms)
                .arg(failure.fixed.len())
                .arg(failure.pair_threshold)
                .arg(base_ms)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Deletes `keys` (none: nothing to do).
    pub async fn delete(&self, keys: Vec<String>) -> Result<(), Unreachable> {
        if keys.is_empty() {
            return Ok(());
        }
        self.call(|mut c| async move { redis::cmd("DEL").arg(keys).query_async::<i64>(&mut c).await }).await.map(|_| ())
    }

    /// Deletes `key` and every key starting with `prefix` (SCAN, then DEL: for the rare
    /// staff unlock, never on a request's hot path).
    pub async fn delete_account(&self, key: String, prefix: String) -> Result<(), Unreachable> {
        let pattern = format!("{}*", glob_escape(&prefix));
        let mut found = vec![key];
        let mut cursor: u64 = 0;
        loop {
            let pattern = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .call(|mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            found.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.delete(found).await
    }
}
