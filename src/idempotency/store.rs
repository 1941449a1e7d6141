//! The SQL of `idempotency_keys` (migration 0010): portable over SQLite and PostgreSQL,
//! one statement per step, races settled by the primary key and by the lease token.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::StoredResponse;
use crate::db::{self, Db};
use crate::error::Result;

/// A key's row as [`super::Idempotency::begin`] needs it.
pub(super) struct KeyRow {
    pub fingerprint: String,
    pub lease_token: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Present once the request completed.
    pub response: Option<StoredResponse>,
}

/// Claims a new key for a running request; `false` when the key already has a row.
pub(super) async fn insert(
    db: &Db,
    scope: &str,
    key: &str,
    fingerprint: &str,
    token: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, lease_token, locked_until, created_at) \
         VALUES ($1, $2, $3, 'in_progress', $4, $5, $6) ON CONFLICT (scope, idem_key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(token.to_string())
    .bind(db::ts(until))
    .bind(db::ts(now))
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn find(db: &Db, scope: &str, key: &str) -> Result<Option<KeyRow>> {
    let row = sqlx::query(
        "SELECT fingerprint, state, lease_token, locked_until, status, headers, body, created_at \
         FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let state: String = r.try_get("state")?;
    let response = if state == "complete" {
        let headers: Option<String> = r.try_get("headers")?;
        let headers = serde_json::from_str(headers.as_deref().unwrap_or("[]"))
            .map_err(|e| sqlx::Error::Decode(format!("idempotency_keys.headers: {e}").into()))?;
        let status: Option<i64> = r.try_get("status")?;
        Some(StoredResponse {
            status: u16::try_from(status.unwrap_or(500)).unwrap_or(500),
            headers,
            body: r.try_get::<Option<String>, _>("body")?.unwrap_or_default(),
        })
    } else {
        None
    };
    let locked_until: Option<String> = r.try_get("locked_until")?;
    Ok(Some(KeyRow {
        fingerprint: r.try_get("fingerprint")?,
        lease_token: r.try_get("lease_token")?,
        locked_until: locked_until.as_deref().map(db::parse_ts).transpose()?,
        created_at: db::parse_ts(&r.try_get::<String, _>("created_at")?)?,
        response,
    }))
}

/// Takes over a running request's expired lease from `old` (guarded by it, so of two
/// replicas taking over at once, one wins).
pub(super) async fn take_over(
    db: &Db,
    scope: &str,
    key: &str,
    old: Option<&str>,
    token: Uuid,
    until: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET lease_token = $1, locked_until = $2 \
         WHERE scope = $3 AND idem_key = $4 AND state = 'in_progress' AND lease_token = $5",
    )
    .bind(token.to_string())
    .bind(db::ts(until))
    .bind(scope)
    .bind(key)
    .bind(old.unwrap_or_default())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the answer, if `token` still holds the lease.
pub(super) async fn complete(db: &Db, scope: &str, key: &str, token: Uuid, response: &StoredResponse) -> Result<()> {
    let headers = serde_json::to_string(&response.headers).map_err(anyhow::Error::from)?;
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'complete', status = $1, headers = $2, body = $3, \
         lease_token = NULL, locked_until = NULL \
         WHERE scope = $4 AND idem_key = $5 AND state = 'in_progress' AND lease_token = $6",
    )
    .bind(i64::from(response.status))
    .bind(headers)
    .bind(response.body.as_str())
    .bind(scope)
    .bind(key)
    .bind(token.to_string())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes the running request's row, if `token` still holds the lease.
pub(super) async fn release(db: &Db, scope: &str, key: &str, token: Uuid) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND state = 'in_progress' AND lease_token = $3",
    )
    .bind(scope)
    .bind(key)
    .bind(token.to_string())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes one expired key (if it is still the row created at `created_at`).
pub(super) async fn delete_created(db: &Db, scope: &str, key: &str, created_at: DateTime<Utc>) -> Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at = $3")
        .bind(scope)
        .bind(key)
        .bind(db::ts(created_at))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Deletes every key created before `cutoff`; returns how many.
pub(super) async fn delete_before(db: &Db, cutoff: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(db::ts(cutoff))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
