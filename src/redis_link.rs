//! One connection to the Redis at `redis.url`, shared in shape by the rate limits
//! (src/ratelimit/shared.rs) and the catalog cache (src/cache/shared.rs): it connects lazily
//! (start-up never waits for Redis), reconnects by itself, bounds every call by
//! `redis.timeout_ms`, and after a failure skips Redis for `redis.backoff_ms`, so an outage
//! costs at most one timeout per cool-down and never a hang. Each user decides what a
//! failure means (a failure policy, a database read) and logs it in its own words.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisConfig;

/// Why a call did not answer.
#[derive(Debug)]
pub enum Unavailable {
    /// Redis is in its cool-down after an earlier failure: it was not asked.
    CoolingDown,
    /// The call failed or timed out (`error`) and started a cool-down; `first` is true when
    /// Redis was healthy until now (log once per outage on that).
    Failed { error: String, first: bool },
}

pub struct RedisLink {
    conn: ConnectionManager,
    timeout: Duration,
    backoff: Duration,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked (0: ask).
    down_until_ms: AtomicU64,
}

impl RedisLink {
    /// A client for `cfg.url` and a link over it with up to `retries` reconnects per call;
    /// `None` when the URL is empty. Errors never quote the URL: it may hold a password.
    pub fn connect(cfg: &RedisConfig, retries: usize, what: &str) -> anyhow::Result<Option<(redis::Client, Self)>> {
        if cfg.url.is_empty() {
            return Ok(None);
        }
        let client = redis::Client::open(cfg.url.expose())
            .map_err(|_| anyhow::anyhow!("`redis.url` is not a valid Redis URL"))?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(retries)
            .set_max_delay(Duration::from_millis(cfg.backoff_ms.max(1)));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .with_context(|| format!("setting up the Redis connection for {what}"))?;
        let link = Self {
            conn,
            timeout,
            backoff: Duration::from_millis(cfg.backoff_ms),
            started: Instant::now(),
            down_until_ms: AtomicU64::new(0),
        };
        Ok(Some((client, link)))
    }

    /// `redis.timeout_ms`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `redis.backoff_ms`: the cool-down after a failure.
    pub fn backoff(&self) -> Duration {
        self.backoff
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one call under the timeout, unless in the cool-down; a failure starts one.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(Unavailable::CoolingDown);
        }
        let error = match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        let until = self.now_ms().saturating_add(u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX));
        let first = self.down_until_ms.swap(until, Ordering::Relaxed) <= self.now_ms();
        Err(Unavailable::Failed { error, first })
    }

    /// One `PING` round trip, for `/readyz`; ignores the cool-down (it is how recovery shows).
    pub async fn ping(&self) -> Result<(), String> {
        let mut c = self.conn.clone();
        match tokio::time::timeout(self.timeout, redis::cmd("PING").query_async::<String>(&mut c)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}
