//! API keys for machine clients: created by an admin, shown once, stored as a SHA-256 hash,
//! scoped, revocable, rotatable with an overlap window, and their last use recorded.
//!
//! A key reads `ok_<prefix>_<secret>`: `prefix` is 16 hex digits (64 random bits, public,
//! the lookup handle), `secret` is 64 hex digits (256 random bits). Only `prefix` and the
//! SHA-256 of the whole key are stored: a fast hash is right for high-entropy secrets (no
//! dictionary to guess from), so checking a key costs one indexed lookup and one hash.
//!
//! These are the store's operations and take no caller; transports call the
//! [`Accounts`](super::accounts::Accounts) service (`create_api_key`, `rotate_api_key`, …),
//! which needs an admin session.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Role;
use super::scopes::{Scope, Scopes};
use super::tokens::hash_token;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::pagination::{Cursor, Page, PageRequest};

/// Every key starts with this, so leaked keys are easy to spot (and to scan for).
pub const KEY_PREFIX: &str = "ok_";

/// A key as the API shows it: never the secret, never its hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// The public part of the key (`ok_<prefix>_…`), to tell keys apart.
    pub prefix: String,
    /// The user the key acts as; it has that user's current role, narrowed to `scopes`.
    pub owner_id: Uuid,
    pub scopes: Vec<Scope>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// Set when rotated: the key works until then.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key that replaced this one by rotation.
    pub replaced_by: Option<Uuid>,
    /// Not revoked and not past `expires_at`.
    pub active: bool,
}

/// A new key with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// `ok_<prefix>_<secret>`. Send it as `X-Api-Key` or `Authorization: Bearer`. Store it
    /// now: it cannot be shown again.
    pub key: String,
    pub api_key: ApiKey,
}

/// What a valid key stands for.
#[derive(Debug, Clone, Copy)]
pub struct KeyIdentity {
    pub key_id: Uuid,
    pub owner_id: Uuid,
    pub role: Role,
    pub scopes: Scopes,
}

const COLUMNS: &str = "id, prefix, name, owner_id, scopes, created_by, created_at, expires_at, revoked_at, \
     last_used_at, replaced_by";

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    row.try_get::<Option<String>, _>(col)?.as_deref().map(db::parse_ts).transpose()
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    let expires_at = opt_ts(row, "expires_at")?;
    let revoked_at = opt_ts(row, "revoked_at")?;
    Ok(ApiKey {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        owner_id: db::parse_id(&row.try_get::<String, _>("owner_id")?)?,
        scopes: Scopes::from_db(&row.try_get::<String, _>("scopes")?).to_vec(),
        created_by: db::parse_id(&row.try_get::<String, _>("created_by")?)?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        active: revoked_at.is_none() && expires_at.is_none_or(|e| e > Utc::now()),
        expires_at,
        revoked_at,
        last_used_at: opt_ts(row, "last_used_at")?,
        replaced_by: row.try_get::<Option<String>, _>("replaced_by")?.as_deref().map(db::parse_id).transpose()?,
    })
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(buf))
}

/// A fresh `(prefix, key)`.
fn new_key() -> Result<(String, String)> {
    let prefix = random_hex(8)?;
    let key = format!("{KEY_PREFIX}{prefix}_{}", random_hex(32)?);
    Ok((prefix, key))
}

/// The prefix of a well-formed key, `None` for anything else.
fn parse_prefix(key: &str) -> Option<&str> {
    let (prefix, secret) = key.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(prefix, 16) && hex(secret, 64)).then_some(prefix)
}

/// Compares without an early exit, so the time taken says nothing about where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn insert(exec: &mut db::Tx, name: &str, owner: Uuid, scopes: Scopes, actor: Uuid) -> Result<(Uuid, String)> {
    let (prefix, key) = new_key()?;
    let id = db::new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, prefix, key_hash, name, owner_id, scopes, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(prefix)
    .bind(hash_token(&key))
    .bind(name)
    .bind(owner.to_string())
    .bind(scopes.to_db())
    .bind(actor.to_string())
    .bind(db::now())
    .execute(&mut **exec)
    .await?;
    Ok((id, key))
}

/// Creates a key for `owner` (who must exist: 422 on `owner_id` otherwise).
pub async fn create(db: &Db, name: &str, owner: Uuid, scopes: Scopes, actor: Uuid) -> Result<CreatedApiKey> {
    match super::users::get(db, owner).await {
        Err(Error::NotFound(_)) => {
            return Err(Error::Validation(vec![crate::error::FieldError::new("owner_id", "no such user")]));
        }
        other => other?,
    };
    let mut tx = db.begin_write().await?;
    let (id, key) = insert(&mut tx, name, owner, scopes, actor).await?;
    tx.commit().await?;
    Ok(CreatedApiKey { key, api_key: get(db, id).await? })
}

/// The key `id` (never its secret). Errors: 404 `NotFound("api key")`.
pub async fn get(db: &Db, id: Uuid) -> Result<ApiKey> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("api key"))?;
    Ok(key_from_row(&row)?)
}

/// Every key, newest first, `limit` per page.
pub async fn list(db: &Db, page: &PageRequest) -> Result<Page<ApiKey>> {
    let rows = crate::pagination::fetch_newest_first(db, COLUMNS, "api_keys", page).await?;
    let keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(keys, |k| Cursor::text(db::ts(k.created_at), k.id.to_string())))
}

/// Revokes a key at once. Idempotent; 404 for an unknown id.
pub async fn revoke(db: &Db, id: Uuid) -> Result<()> {
    get(db, id).await?;
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(db::now())
        .bind(id.to_string())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Replaces an active key with a new one (same name, owner and scopes). The old key keeps
/// working for `overlap` (at most until an expiry it already had), so clients can switch
/// without downtime. 409 `api-key-inactive` if the key is revoked, expired or already
/// rotated: rotation is a chain, never a tree.
pub async fn rotate(db: &Db, id: Uuid, overlap: StdDuration, actor: Uuid) -> Result<CreatedApiKey> {
    let old = get(db, id).await?;
    if !old.active || old.replaced_by.is_some() {
        return Err(Error::conflict("api-key-inactive", "only an active key that was not rotated yet can be rotated"));
    }
    let now = Utc::now();
    let overlap_end = now + Duration::from_std(overlap).map_err(|e| anyhow::anyhow!("overlap: {e}"))?;
    let expires = old.expires_at.map_or(overlap_end, |e| e.min(overlap_end));
    let scopes: Scopes = old.scopes.iter().copied().collect();
    let mut tx = db.begin_write().await?;
    let (new_id, key) = insert(&mut tx, &old.name, old.owner_id, scopes, actor).await?;
    // Conditional, so two concurrent rotations cannot both succeed.
    let n = sqlx::query(
        "UPDATE api_keys SET expires_at = $1, replaced_by = $2 WHERE id = $3 AND replaced_by IS NULL AND revoked_at IS NULL",
    )
    .bind(db::ts(expires))
    .bind(new_id.to_string())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(Error::conflict("api-key-inactive", "the key was rotated or revoked meanwhile"));
    }
    tx.commit().await?;
    Ok(CreatedApiKey { key, api_key: get(db, new_id).await? })
}

/// Checks a presented key. `None` for anything that is not a live key: malformed, unknown,
/// wrong secret, revoked, expired, or owned by a deactivated user (all look the same to the
/// caller).
pub async fn authenticate(db: &Db, key: &str) -> Result<Option<KeyIdentity>> {
    let Some(prefix) = parse_prefix(key) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT k.id, k.key_hash, k.scopes, k.expires_at, k.revoked_at, u.id AS owner_id, u.role, \
         u.deactivated_at FROM api_keys k JOIN users u ON u.id = k.owner_id WHERE k.prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("key_hash")?;
    if !constant_time_eq(stored.as_bytes(), hash_token(key).as_bytes()) {
        return Ok(None);
    }
    let live = row.try_get::<Option<String>, _>("revoked_at")?.is_none()
        && row.try_get::<Option<String>, _>("deactivated_at")?.is_none()
        && opt_ts(&row, "expires_at")?.is_none_or(|e| e > Utc::now());
    if !live {
        return Ok(None);
    }
    let role: String = row.try_get("role")?;
    Ok(Some(KeyIdentity {
        key_id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        owner_id: db::parse_id(&row.try_get::<String, _>("owner_id")?)?,
        role: role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        scopes: Scopes::from_db(&row.try_get::<String, _>("scopes")?),
    }))
}

/// Records `last_used_at` without a write per request: at most one write per key per
/// [`UsageTracker::INTERVAL`] from this process, off the request path.
#[derive(Default)]
pub struct UsageTracker {
    written: Mutex<HashMap<Uuid, Instant>>,
}

impl UsageTracker {
    pub const INTERVAL: StdDuration = StdDuration::from_secs(60);

    /// Notes a use of `key_id`; writes it (in the background) if the last write from this
    /// process is older than `INTERVAL`. A failed write is logged and forgotten.
    pub fn touch(&self, db: &Db, key_id: Uuid) {
        let now = Instant::now();
        {
            let Ok(mut written) = self.written.lock() else { return };
            if written.get(&key_id).is_some_and(|t| now.duration_since(*t) < Self::INTERVAL) {
                return;
            }
            if written.len() >= 10_000 {
                written.retain(|_, t| now.duration_since(*t) < Self::INTERVAL);
            }
            written.insert(key_id, now);
        }
        let db = db.clone();
        tokio::spawn(async move {
            let r = sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(db::now())
                .bind(key_id.to_string())
                .execute(db.pool())
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, api_key.id = %key_id, "recording API key use failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_256_random_bits() {
        let (prefix, key) = new_key().unwrap();
        assert_eq!(key.len(), 3 + 16 + 1 + 64);
        assert_eq!(parse_prefix(&key), Some(prefix.as_str()));
        let (_, other) = new_key().unwrap();
        assert_ne!(key, other);
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for bad in
            ["", "ok_", "ok_abc_def", "xx_0123456789abcdef_00", &format!("ok_0123456789abcdeg_{}", "0".repeat(64))]
        {
            assert_eq!(parse_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn comparison_needs_equal_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
