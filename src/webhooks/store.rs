//! All webhook SQL: endpoints, deliveries and their attempt log (migration 0013).
//! Authorization and validation happened in the service (`webhooks.rs`) before any of this.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, Endpoint};
use crate::db::{self, Arg, Db, SqlBuilder};
use crate::error::{Error, Result};
use crate::pagination::{Cursor, Page, PageRequest};

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at, \
     last_status_code, last_error, created_at, updated_at, delivered_at";

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    row.try_get::<Option<String>, _>(col)?.as_deref().map(db::parse_ts).transpose()
}

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint, sqlx::Error> {
    let types: String = row.try_get("event_types")?;
    Ok(Endpoint {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: serde_json::from_str(&types).map_err(|e| sqlx::Error::Decode(e.into()))?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        updated_at: db::parse_ts(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        endpoint_id: db::parse_id(&row.try_get::<String, _>("endpoint_id")?)?,
        event_id: db::parse_id(&row.try_get::<String, _>("event_id")?)?,
        event_type: row.try_get("event_type")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("bad delivery status {status:?}").into()))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: opt_ts(row, "next_attempt_at")?,
        last_status_code: row.try_get::<Option<i64>, _>("last_status_code")?.and_then(|c| u16::try_from(c).ok()),
        last_error: row.try_get("last_error")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        updated_at: db::parse_ts(&row.try_get::<String, _>("updated_at")?)?,
        delivered_at: opt_ts(row, "delivered_at")?,
    })
}

/// A new endpoint; `event_types` as stored (JSON array).
pub async fn insert_endpoint(
    db: &Db,
    url: &str,
    description: &str,
    event_types: &[String],
    secret: &str,
) -> Result<Endpoint> {
    let id = db::new_id();
    let now = db::now();
    let types = serde_json::to_string(event_types).map_err(anyhow::Error::from)?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, description, event_types, enabled, secret, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
    )
    .bind(id.to_string())
    .bind(url)
    .bind(description)
    .bind(types)
    .bind(secret)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    get_endpoint(db, id).await
}

/// The endpoint `id`, without its secret. Errors: 404 `NotFound("webhook endpoint")`.
pub async fn get_endpoint(db: &Db, id: Uuid) -> Result<Endpoint> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))?;
    Ok(endpoint_from_row(&row)?)
}

/// Endpoints newest first.
pub async fn list_endpoints(db: &Db, page: &PageRequest) -> Result<Page<Endpoint>> {
    let rows = crate::pagination::fetch_newest_first(db, ENDPOINT_COLUMNS, "webhook_endpoints", page).await?;
    let items = rows.iter().map(endpoint_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |e| Cursor::text(db::ts(e.created_at), e.id.to_string())))
}

/// Every enabled endpoint, for fanning an event out.
pub async fn enabled_endpoints(db: &Db) -> Result<Vec<Endpoint>, sqlx::Error> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE enabled = 1");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(db.pool()).await?;
    rows.iter().map(endpoint_from_row).collect()
}

/// Writes an endpoint's new state. Errors: 404 when it is gone.
pub async fn update_endpoint(db: &Db, e: &Endpoint) -> Result<Endpoint> {
    let types = serde_json::to_string(&e.event_types).map_err(anyhow::Error::from)?;
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, enabled = $4, updated_at = $5 \
         WHERE id = $6",
    )
    .bind(e.url.as_str())
    .bind(e.description.as_str())
    .bind(types)
    .bind(i64::from(e.enabled))
    .bind(db::now())
    .bind(e.id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("webhook endpoint"));
    }
    get_endpoint(db, e.id).await
}

/// Replaces the endpoint's secret. Errors: 404 when it is gone.
pub async fn set_secret(db: &Db, id: Uuid, secret: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("UPDATE webhook_endpoints SET secret = $1, updated_at = $2 WHERE id = $3")
        .bind(secret)
        .bind(db::now())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if done.rows_affected() == 0 { Err(Error::NotFound("webhook endpoint")) } else { Ok(()) }
}

/// Deletes an endpoint with its deliveries and their log. Errors: 404 when there is none.
pub async fn delete_endpoint(db: &Db, id: Uuid) -> Result<()> {
    let mut tx = db.begin_write().await?;
    // Children first: the foreign keys cascade on both backends, this is belt and braces
    // for a SQLite connection opened without `foreign_keys`.
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
    let done =
        sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
    tx.commit().await?;
    if done.rows_affected() == 0 { Err(Error::NotFound("webhook endpoint")) } else { Ok(()) }
}

/// One pending delivery per endpoint for the event; an existing (endpoint, event) pair is
/// left alone, so a redelivered event creates nothing new.
pub async fn insert_deliveries(
    db: &Db,
    endpoints: &[Uuid],
    event_id: Uuid,
    event_type: &str,
    payload: &str,
) -> Result<(), sqlx::Error> {
    let now = db::now();
    let mut tx = db.begin_write().await?;
    for endpoint in endpoints {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, status, attempts, \
             next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6) \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        )
        .bind(db::new_id().to_string())
        .bind(endpoint.to_string())
        .bind(event_id.to_string())
        .bind(event_type)
        .bind(payload)
        .bind(now.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The delivery `id`. Errors: 404 `NotFound("webhook delivery")`.
pub async fn get_delivery(db: &Db, id: Uuid) -> Result<Delivery> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("webhook delivery"))?;
    Ok(delivery_from_row(&row)?)
}

/// Deliveries newest first, narrowed by endpoint and status.
pub async fn list_deliveries(db: &Db, filter: &DeliveryFilter, page: &PageRequest) -> Result<Page<Delivery>> {
    let mut b = SqlBuilder::new(&format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE 1 = 1"));
    if let Some(endpoint) = filter.endpoint_id {
        let p = b.arg(Arg::Text(endpoint.to_string()));
        b.push(&format!(" AND endpoint_id = {p}"));
    }
    if let Some(status) = filter.status {
        let p = b.arg(Arg::Text(status.as_str().to_owned()));
        b.push(&format!(" AND status = {p}"));
    }
    crate::pagination::push_newest_first(&mut b, page)?;
    let rows = b.build().fetch_all(db.pool()).await?;
    let items = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |d| Cursor::text(db::ts(d.created_at), d.id.to_string())))
}

/// The attempts of a delivery, oldest first.
pub async fn attempts(db: &Db, delivery: Uuid) -> Result<Vec<Attempt>> {
    let rows = sqlx::query(
        "SELECT attempt, status_code, error, duration_ms, attempted_at FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery.to_string())
    .fetch_all(db.pool())
    .await?;
    let attempt = |row: &AnyRow| -> Result<Attempt, sqlx::Error> {
        Ok(Attempt {
            attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(u32::MAX),
            status_code: row.try_get::<Option<i64>, _>("status_code")?.and_then(|c| u16::try_from(c).ok()),
            error: row.try_get("error")?,
            duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
            attempted_at: db::parse_ts(&row.try_get::<String, _>("attempted_at")?)?,
        })
    };
    Ok(rows.iter().map(attempt).collect::<Result<Vec<_>, _>>()?)
}

/// Puts a `dead` or `failed` delivery back to `pending`, due now, with a fresh attempt
/// budget. Returns false when it is in another state.
pub async fn replay(db: &Db, id: Uuid) -> Result<bool> {
    let now = db::now();
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1, \
         lease_owner = NULL, lease_until = NULL WHERE id = $2 AND status IN ('dead', 'failed')",
    )
    .bind(now.as_str())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}
