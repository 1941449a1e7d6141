//! The Redis tier of the catalog cache, shared by every replica, and the pub/sub channel
//! that carries invalidations between them. Keys: `<redis.key_prefix>cache:v1:<name>` for an
//! entry, `…cache:v1:epoch:<name>` for its invalidation epoch; channel
//! `<redis.key_prefix>cache:v1:invalidate`.
//!
//! A dead Redis costs nothing per request: every call runs under `redis.timeout_ms`, and
//! after a failure Redis is skipped for `redis.backoff_ms` (as the rate limiter does), so
//! reads go straight to the database until it answers again.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};
use tokio::sync::watch;
use uuid::Uuid;

use super::{CatalogCache, Change, Entry};
use crate::conditional::Representation;
use crate::config::RedisConfig;
use crate::redis_link::{RedisLink, Unavailable};

/// Stores KEYS[1] = ARGV[2] for ARGV[3] ms unless KEYS[2] (the key's invalidation epoch)
/// moved from ARGV[1] ('' = absent) since the reader looked: a row read before a write
/// committed is never stored after that write's invalidation.
const PUT_LUA: &str = r"
local e = redis.call('GET', KEYS[2]) or ''
if e == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(PUT_LUA));

/// What Redis said about a key.
pub enum Lookup {
    Hit(Entry),
    /// Absent; `epoch` is the key's invalidation epoch now ('' if none), for the store.
    Miss {
        epoch: String,
    },
    /// Redis is down or in its cool-down: use the database.
    Unavailable,
}

pub struct Shared {
    client: redis::Client,
    link: RedisLink,
    prefix: String,
    channel: String,
    ttl_ms: u64,
}

impl Shared {
    /// A lazily connecting client for `redis.url`, `None` when it is empty.
    pub fn connect(cfg: &RedisConfig, ttl_secs: u64) -> anyhow::Result<Option<Self>> {
        let Some((client, link)) = RedisLink::connect(cfg, 1, "the cache")? else {
            return Ok(None);
        };
        let prefix = format!("{}cache:v1:", cfg.key_prefix);
        Ok(Some(Self {
            client,
            link,
            channel: format!("{prefix}invalidate"),
            prefix,
            ttl_ms: ttl_secs.saturating_mul(1000),
        }))
    }

    /// Runs one call through the link (timeout, cool-down); a failure is counted, and logged
    /// once per outage.
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match self.link.call(f).await {
            Ok(v) => Some(v),
            Err(Unavailable::CoolingDown) => None,
            Err(Unavailable::Failed { error, first }) => {
                crate::metrics::cache_redis_error(op);
                if first {
                    tracing::warn!(
                        error,
                        op,
                        backoff_ms = self.link.backoff().as_millis() as u64,
                        "cache: Redis unavailable; reading from the database"
                    );
                }
                None
            }
        }
    }

    fn entry_key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn epoch_key(&self, name: &str) -> String {
        format!("{}epoch:{name}", self.prefix)
    }

    /// The entry `name`, or its epoch for a later [`put_unless_changed`](Self::put_unless_changed).
    pub async fn get(&self, name: &str) -> Lookup {
        let keys = [self.entry_key(name), self.epoch_key(name)];
        let reply: Option<(Option<Vec<u8>>, Option<String>)> =
            self.call("get", |mut c| async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }).await;
        match reply {
            None => Lookup::Unavailable,
            Some((Some(raw), _)) => match decode(raw) {
                Some(entry) => Lookup::Hit(entry),
                None => Lookup::Miss { epoch: String::new() },
            },
            Some((None, epoch)) => Lookup::Miss { epoch: epoch.unwrap_or_default() },
        }
    }

    /// Stores `entry` as `name` unless it was invalidated since `epoch` was read.
    pub async fn put_unless_changed(&self, name: &str, epoch: String, entry: &Entry) {
        let (k, e) = (self.entry_key(name), self.epoch_key(name));
        let value = encode(entry);
        let ttl = self.ttl_ms;
        self.call("put", |mut c| async move {
            PUT.key(k).key(e).arg(epoch).arg(value).arg(ttl).invoke_async::<i64>(&mut c).await
        })
        .await;
    }

    /// Deletes the entries of `change`, moves their epochs, and tells every replica.
    pub async fn invalidate(&self, change: &Change) {
        let (names, message): (Vec<String>, String) = match change {
            Change::Products(ids) => (
                ids.iter().map(|id| format!("product:{id}")).collect(),
                ids.iter().fold(String::from("p"), |mut m, id| {
                    m.push(' ');
                    m.push_str(&id.to_string());
                    m
                }),
            ),
            Change::Categories => (vec!["categories".into()], "c".into()),
        };
        let mut pipe = redis::pipe();
        for n in &names {
            let epoch = self.epoch_key(n);
            // The epoch outlives any entry stored under the old one.
            pipe.cmd("INCR").arg(&epoch).ignore();
            pipe.cmd("PEXPIRE").arg(&epoch).arg(self.ttl_ms.saturating_mul(2)).ignore();
            pipe.cmd("DEL").arg(self.entry_key(n)).ignore();
        }
        pipe.cmd("PUBLISH").arg(&self.channel).arg(message).ignore();
        self.call("invalidate", |mut c| async move { pipe.query_async::<()>(&mut c).await }).await;
    }

    /// One PING, ignoring the cool-down (it is how recovery shows in `/readyz`).
    pub async fn ping(&self) -> bool {
        self.link.ping().await.is_ok()
    }

    /// Applies other replicas' invalidations to `cache` until `stop`; reconnects after
    /// `redis.backoff_ms` whenever the subscription drops.
    pub async fn subscribe(&self, cache: &CatalogCache, mut stop: watch::Receiver<bool>) {
        let cache = Arc::new(cache.clone());
        loop {
            match tokio::time::timeout(self.link.timeout().max(Duration::from_secs(1)), self.client.get_async_pubsub())
                .await
            {
                Ok(Ok(mut pubsub)) => {
                    if pubsub.subscribe(&self.channel).await.is_ok() {
                        // Whatever was published while unsubscribed is lost: start afresh.
                        cache.forget_all();
                        let mut messages = pubsub.on_message();
                        loop {
                            tokio::select! {
                                m = messages.next() => match m {
                                    Some(m) => {
                                        if let Some(change) = parse_message(m.get_payload_bytes()) {
                                            cache.forget(&change).await;
                                        }
                                    }
                                    None => break,
                                },
                                _ = stop.changed() => return,
                            }
                        }
                        tracing::warn!("cache: invalidation subscription lost; reconnecting");
                    }
                }
                Ok(Err(_)) | Err(_) => crate::metrics::cache_redis_error("subscribe"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.link.backoff().max(Duration::from_millis(100))) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// `p <uuid> <uuid>…` or `c`.
fn parse_message(payload: &[u8]) -> Option<Change> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut words = text.split(' ');
    match words.next()? {
        "c" => Some(Change::Categories),
        "p" => Some(Change::Products(words.filter_map(|w| Uuid::parse_str(w).ok()).collect())),
        _ => None,
    }
}

/// `<0|1 restricted><etag>\n<body>`.
fn encode(entry: &Entry) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + entry.rep.etag.len() + entry.rep.body.len());
    v.push(if entry.restricted { b'1' } else { b'0' });
    v.extend_from_slice(&entry.rep.etag);
    v.push(b'\n');
    v.extend_from_slice(&entry.rep.body);
    v
}

fn decode(raw: Vec<u8>) -> Option<Entry> {
    let raw = Bytes::from(raw);
    let restricted = match raw.first()? {
        b'0' => false,
        b'1' => true,
        _ => return None,
    };
    let nl = raw.iter().position(|b| *b == b'\n')?;
    Some(Entry { rep: Representation { etag: raw.slice(1..nl), body: raw.slice(nl + 1..) }, restricted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_messages_round_trip() {
        let e = Entry { rep: Representation::new(Bytes::from_static(b"{\"a\":\"\\n\"}")), restricted: true };
        let back = decode(encode(&e)).expect("decodes");
        assert_eq!((back.rep, back.restricted), (e.rep, true));
        let id = Uuid::now_v7();
        assert_eq!(parse_message(format!("p {id}").as_bytes()), Some(Change::Products(vec![id])));
        assert_eq!(parse_message(b"c"), Some(Change::Categories));
        assert_eq!(parse_message(b"x"), None);
    }
}
