//! The catalog read cache (cache-aside): product by id, the category list and product list
//! pages, kept as the [`Representation`] (JSON bytes and ETag) the transports send, so a hit
//! costs no database round trip and no serialization, only two `Bytes` clones.
//!
//! Tiers: in process (moka), and with `redis.url` set, Redis shared by every replica
//! ([`shared`]) behind a short-lived in-process tier. Services call
//! [`CatalogCache::get_or_load`] after their admission and authorization checks, and the
//! `*_changed` hooks after every commit that changes what a read returns (product and
//! category writes, stock adjustments, and the orders' reservations, releases and
//! shipments). Other replicas hear of a change through Redis pub/sub.
//!
//! Correctness under races: a reader that loaded a row before a writer committed must not
//! keep it after the writer's invalidation. Every entry remembers the invalidation epoch
//! at which its load started; an invalidation bumps the epoch and leaves a tombstone (the
//! epoch) per key for `cache.ttl_secs`, and an entry older than its key's tombstone is a
//! miss. List pages carry a generation in their key that every change bumps. In Redis the
//! same is done with a per-key epoch checked by a script before a write. `cache.ttl_secs`
//! bounds anything missed (a write while Redis was down).
//!
//! Stampedes: concurrent misses of one key run one loader (moka `try_get_with`); the others
//! wait for its result.

pub mod shared;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use moka::notification::RemovalCause;
use tokio::sync::watch;
use uuid::Uuid;

use self::shared::{Lookup, Shared};
use crate::conditional::Representation;
use crate::config::Config;
use crate::error::{Error, Result};

/// What is cached. Products are kept once for every caller ([`Entry::restricted`] tells
/// the service who may see them); list pages per view (`staff`) and query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Product(Uuid),
    Categories,
    ProductList { generation: u64, staff: bool, query: Box<str> },
}

impl Key {
    /// The `cache` metric label.
    fn label(&self) -> &'static str {
        match self {
            Key::Product(_) => "product",
            Key::Categories => "categories",
            Key::ProductList { .. } => "product_list",
        }
    }

    /// The key's name in Redis (after the prefix); list pages stay in process (their
    /// generation is per replica, bumped by pub/sub).
    fn shared_name(&self) -> Option<String> {
        match self {
            Key::Product(id) => Some(format!("product:{id}")),
            Key::Categories => Some("categories".into()),
            Key::ProductList { .. } => None,
        }
    }
}

/// A cached read: the representation, and whether only staff may see it (an archived
/// product). The service applies the rule; the cache only keeps the flag.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rep: Representation,
    pub restricted: bool,
}

#[derive(Clone)]
struct Stored {
    entry: Entry,
    /// The invalidation epoch when its load started.
    epoch: u64,
}

/// Counters for tests and `/readyz`: hits per tier and loader runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub local_hits: u64,
    pub shared_hits: u64,
    /// Loads from the database.
    pub loads: u64,
}

/// The catalog read cache; cheap to clone.
#[derive(Clone)]
pub struct CatalogCache(Arc<Inner>);

struct Inner {
    enabled: bool,
    local: Cache<Key, Stored>,
    /// Key → the epoch of its last invalidation, kept as long as an entry can live.
    tombstones: Cache<Key, u64>,
    epoch: AtomicU64,
    generation: AtomicU64,
    shared: Option<Shared>,
    local_hits: AtomicU64,
    shared_hits: AtomicU64,
    loads: AtomicU64,
}

/// Invalidations, as replicas tell each other about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Products(Vec<Uuid>),
    Categories,
}

impl CatalogCache {
    /// The cache `config.cache` describes; with `redis.url`, Redis as the shared tier
    /// (connected lazily: start-up never waits for Redis). Fails only on a malformed URL.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let c = &config.cache;
        let shared = if c.enabled { Shared::connect(&config.redis, c.ttl_secs)? } else { None };
        let local_ttl = if shared.is_some() { c.local_ttl_secs.min(c.ttl_secs) } else { c.ttl_secs };
        let local = Cache::builder()
            .max_capacity(c.max_entries)
            .time_to_live(Duration::from_secs(local_ttl))
            .eviction_listener(|key: Arc<Key>, _, cause| {
                if cause.was_evicted() {
                    crate::metrics::cache_eviction(key.label(), cause_label(cause));
                }
            })
            .build();
        let tombstones = Cache::builder()
            .max_capacity(c.max_entries.saturating_mul(4))
            .time_to_live(Duration::from_secs(c.ttl_secs))
            .build();
        Ok(Self(Arc::new(Inner {
            enabled: c.enabled,
            local,
            tombstones,
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            shared,
            local_hits: AtomicU64::new(0),
            shared_hits: AtomicU64::new(0),
            loads: AtomicU64::new(0),
        })))
    }

    /// The key of a product list page for this view (`staff`) and `query` (the filter as
    /// text), in the current generation.
    pub fn list_key(&self, staff: bool, query: String) -> Key {
        Key::ProductList { generation: self.0.generation.load(Ordering::Acquire), staff, query: query.into() }
    }

    /// The entry for `key`: from process memory, else Redis, else `load` (the database),
    /// which is then stored. One `load` runs per key at a time; concurrent callers wait for
    /// it. Errors are `load`'s and are not cached (a 404 is looked up again next time).
    pub async fn get_or_load<F, Fut>(&self, key: Key, load: F) -> Result<Entry>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Entry>>,
    {
        let inner = &*self.0;
        if !inner.enabled {
            return load().await;
        }
        let label = key.label();
        if let Some(s) = inner.local.get(&key).await {
            if self.is_fresh(&key, &s).await {
                inner.local_hits.fetch_add(1, Ordering::Relaxed);
                crate::metrics::cache_hit(label, "local");
                return Ok(s.entry);
            }
            inner.local.invalidate(&key).await;
        }
        let loading = async {
            crate::metrics::cache_miss(label, "local");
            let epoch = inner.epoch.load(Ordering::Acquire);
            let entry = self.load_through(&key, load).await?;
            Ok::<_, Error>(Stored { entry, epoch })
        };
        match inner.local.try_get_with_by_ref(&key, loading).await {
            Ok(s) => {
                if !self.is_fresh(&key, &s).await {
                    // Loaded before an invalidation that landed meanwhile: serve it to
                    // this (concurrent) reader, but keep it for nobody else.
                    inner.local.invalidate(&key).await;
                }
                Ok(s.entry)
            }
            Err(e) => Err(unshare(e)),
        }
    }

    /// Whether `s` was loaded after the last invalidation of `key`.
    async fn is_fresh(&self, key: &Key, s: &Stored) -> bool {
        if s.epoch >= self.0.epoch.load(Ordering::Acquire) {
            return true;
        }
        self.0.tombstones.get(key).await.is_none_or(|dead| s.epoch >= dead)
    }

    async fn load_through<F, Fut>(&self, key: &Key, load: F) -> Result<Entry>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Entry>>,
    {
        let label = key.label();
        let name = key.shared_name();
        if let (Some(shared), Some(name)) = (&self.0.shared, name) {
            match shared.get(&name).await {
                Lookup::Hit(entry) => {
                    self.0.shared_hits.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::cache_hit(label, "redis");
                    return Ok(entry);
                }
                Lookup::Miss { epoch } => {
                    crate::metrics::cache_miss(label, "redis");
                    let entry = self.load_counted(load).await?;
                    shared.put_unless_changed(&name, epoch, &entry).await;
                    return Ok(entry);
                }
                Lookup::Unavailable => {}
            }
        }
        self.load_counted(load).await
    }

    async fn load_counted<F, Fut>(&self, load: F) -> Result<Entry>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Entry>>,
    {
        self.0.loads.fetch_add(1, Ordering::Relaxed);
        load().await
    }

    /// Hook: products `ids` changed (fields, status, or stock). Call after the commit.
    pub async fn products_changed(&self, ids: &[Uuid]) {
        self.changed(Change::Products(ids.to_vec())).await;
    }

    /// Hook: the category tree changed. Call after the commit.
    pub async fn categories_changed(&self) {
        self.changed(Change::Categories).await;
    }

    async fn changed(&self, change: Change) {
        if !self.0.enabled {
            return;
        }
        self.forget(&change).await;
        if let Some(shared) = &self.0.shared {
            shared.invalidate(&change).await;
        }
    }

    /// Drops this process's entries for `change` (what a pub/sub message does too).
    pub async fn forget(&self, change: &Change) {
        let inner = &*self.0;
        let epoch = inner.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        inner.generation.fetch_add(1, Ordering::AcqRel);
        let keys: Vec<Key> = match change {
            Change::Products(ids) => ids.iter().map(|id| Key::Product(*id)).collect(),
            Change::Categories => vec![Key::Categories],
        };
        for k in keys {
            inner.tombstones.insert(k.clone(), epoch).await;
            inner.local.invalidate(&k).await;
        }
    }

    /// Drops every entry of this process (after missing pub/sub messages).
    pub fn forget_all(&self) {
        let inner = &*self.0;
        inner.epoch.fetch_add(1, Ordering::AcqRel);
        inner.generation.fetch_add(1, Ordering::AcqRel);
        inner.local.invalidate_all();
    }

    /// Hits and loads so far.
    pub fn stats(&self) -> CacheStats {
        let i = &*self.0;
        CacheStats {
            local_hits: i.local_hits.load(Ordering::Relaxed),
            shared_hits: i.shared_hits.load(Ordering::Relaxed),
            loads: i.loads.load(Ordering::Relaxed),
        }
    }

    /// For `/readyz`: `"ok"` (in process, or Redis answering), `"degraded"` (Redis down:
    /// reads go to the database), `"off"`. Never a reason to turn unready.
    pub async fn state(&self) -> &'static str {
        match (&self.0.shared, self.0.enabled) {
            (_, false) => "off",
            (None, true) => "ok",
            (Some(s), true) => {
                if s.ping().await {
                    "ok"
                } else {
                    "degraded"
                }
            }
        }
    }

    /// Listens for other replicas' invalidations until `stop` turns true; reconnects by
    /// itself (and then drops every local entry: messages may have been missed). Returns
    /// at once without Redis.
    pub async fn run_subscriber(self, stop: watch::Receiver<bool>) {
        if let Some(shared) = self.0.shared.as_ref() {
            shared.subscribe(&self, stop).await;
        }
    }
}

fn cause_label(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Expired => "expired",
        RemovalCause::Size => "size",
        RemovalCause::Explicit => "explicit",
        RemovalCause::Replaced => "replaced",
    }
}

/// The loader's error for every caller that waited on it (moka shares one `Arc`): the
/// same client error, or an opaque server error carrying the cause for the log.
fn unshare(e: Arc<Error>) -> Error {
    Arc::try_unwrap(e).unwrap_or_else(|shared| match &*shared {
        Error::Validation(fields) => Error::Validation(fields.clone()),
        Error::BadRequest(m) => Error::BadRequest(m.clone()),
        Error::Forbidden(m) => Error::Forbidden(m),
        Error::NotFound(what) => Error::NotFound(what),
        Error::Conflict { code, detail } => Error::Conflict { code, detail: detail.clone() },
        Error::InsufficientScope(s) => Error::InsufficientScope(s),
        Error::Unavailable(why) => Error::Unavailable(why),
        // Still a database error, so the route layer's breaker sees the outage.
        e if e.is_database_unreachable() => Error::Database(sqlx::Error::PoolTimedOut),
        other => Error::Internal(anyhow::anyhow!("cache loader failed: {other:?}")),
    })
}

#[cfg(test)]
mod tests;
