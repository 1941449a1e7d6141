//! The `cache` section (catalog read cache, src/cache.rs) and the `catalog` section
//! (conditional-request rules of catalog writes). See docs/OPERATIONS.md, "Catalog cache".

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The catalog read cache: product by id, the category list and product list pages, kept
/// as their serialized JSON and ETag. In-process (moka); with `redis.url` set, Redis is the
/// shared tier and the in-process tier in front of it lives `local_ttl_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Off: every read goes to the database.
    pub enabled: bool,
    /// How long an entry lives at most, in seconds: the backstop for an invalidation that
    /// was lost (a Redis outage while writing).
    pub ttl_secs: u64,
    /// With Redis: how long the in-process copy in front of it lives, in seconds (other
    /// replicas' writes reach it through pub/sub; this bounds a missed message).
    pub local_ttl_secs: u64,
    /// Most entries kept in process (least recently used go first).
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: true, ttl_secs: 60, local_ttl_secs: 5, max_entries: 10_000 }
    }
}

impl CacheConfig {
    /// Fails naming the key: TTLs and the size must be positive.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (key, v) in
            [("ttl_secs", self.ttl_secs), ("local_ttl_secs", self.local_ttl_secs), ("max_entries", self.max_entries)]
        {
            if v == 0 {
                return Err(ConfigError(format!("`cache.{key}` must be positive")));
            }
        }
        Ok(())
    }
}

/// Rules of catalog writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Product updates must carry `If-Match` (428 without it, RFC 6585 §3), so no client
    /// can overwrite a change it has not seen.
    pub require_if_match: bool,
}
