//! Low-stock alerts: the `stock-alerts` durable consumer keeps one alert per product from
//! `inventory.low` events (docs/EVENTS.md), and staff list and acknowledge them.
//!
//! An alert opens at the first `inventory.low` of a product; later ones update its
//! `available`; one that happened after the alert was acknowledged opens it again. The
//! upsert only applies an event newer than the alert's `last_event_id` (UUID v7 ids sort by
//! time), so a redelivered or late event changes nothing: one alert per product, whatever
//! the delivery.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::{self, Arg, Db, SqlBuilder};
use crate::error::{Error, Result};
use crate::events::bus::Envelope;
use crate::events::consumers::{HandleFuture, Handler, HandlerError};
use crate::pagination::{Cursor, Page, PageParams, PageRequest};
use crate::ratelimit::Class;

/// An open (or acknowledged) low-stock alert of one product.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StockAlert {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    /// Available units (on hand − reserved) when the latest `inventory.low` happened.
    pub available: i64,
    /// Available units now.
    pub available_now: i64,
    /// The product's low-stock threshold (units): alerts open at or under it.
    pub low_stock_threshold: i64,
    /// When the stock went low (the first `inventory.low` since the alert opened).
    pub raised_at: DateTime<Utc>,
    /// The latest `inventory.low` event applied.
    pub last_event_id: Uuid,
    /// When staff acknowledged it; `null` while open.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<Uuid>,
}

/// The alerts service and the `stock-alerts` consumer. Cheap to clone.
#[derive(Clone)]
pub struct StockAlerts {
    db: Db,
}

/// The consumer's durable name.
pub const CONSUMER: &str = "stock-alerts";

const SELECT: &str = "SELECT a.product_id, p.sku, p.name, a.available, i.on_hand - i.reserved AS available_now, \
     i.low_stock_threshold, a.raised_at, a.last_event_id, a.acknowledged_at, a.acknowledged_by \
     FROM stock_alerts a JOIN products p ON p.id = a.product_id JOIN inventory i ON i.product_id = a.product_id";

impl StockAlerts {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Open alerts, newest first. Staff (an API key needs `catalog:read`).
    ///
    /// Errors: 401/403; 422 `Validation` on `limit` or `cursor`.
    pub async fn list_open(&self, principal: &Principal, q: &PageParams) -> Result<Page<StockAlert>> {
        principal.admit(Class::Api).await?;
        principal.require_staff(Scope::CatalogRead)?;
        let page = PageRequest::parse(q.limit, q.cursor.as_deref(), "-raised_at").map_err(Error::Validation)?;
        let mut b = SqlBuilder::new(SELECT);
        b.push(" WHERE a.acknowledged_at IS NULL");
        if let Some(c) = &page.cursor {
            let k = b.arg(Arg::Text(c.key_text()?.to_owned()));
            let id = b.arg(Arg::Text(c.id.clone()));
            b.push(&format!(" AND (a.raised_at < {k} OR (a.raised_at = {k} AND a.product_id < {id}))"));
        }
        let lim = b.arg(Arg::Int(page.fetch_limit()));
        b.push(&format!(" ORDER BY a.raised_at DESC, a.product_id DESC LIMIT {lim}"));
        let rows = b.build().fetch_all(self.db.pool()).await?;
        let items = rows.iter().map(from_row).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |a| Cursor::text(db::ts(a.raised_at), a.product_id.to_string())))
    }

    /// Acknowledges the product's alert (it leaves the open list until stock goes low
    /// again). Idempotent: an acknowledged alert is returned as it is. Staff (an API key
    /// needs `catalog:write`).
    ///
    /// Errors: 401/403; 404 `NotFound("stock alert")` when the product has none.
    pub async fn acknowledge(&self, principal: &Principal, product_id: Uuid) -> Result<StockAlert> {
        principal.admit(Class::Api).await?;
        let actor = principal.require_staff(Scope::CatalogWrite)?;
        let permit = self.db.write_permit().await?;
        sqlx::query(
            "UPDATE stock_alerts SET acknowledged_at = $1, acknowledged_by = $2 \
             WHERE product_id = $3 AND acknowledged_at IS NULL",
        )
        .bind(db::now())
        .bind(actor.id.to_string())
        .bind(product_id.to_string())
        .execute(self.db.pool())
        .await?;
        drop(permit);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE a.product_id = $1")))
            .bind(product_id.to_string())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(Error::NotFound("stock alert"))?;
        Ok(from_row(&row)?)
    }

    /// Applies one `inventory.low` event (see the module docs).
    async fn raise(&self, event: &Envelope) -> std::result::Result<(), HandlerError> {
        let available = event
            .data
            .get("available")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| HandlerError::Permanent("inventory.low without an integer `available`".into()))?;
        // Reopen only for a stock drop that happened after the acknowledgement.
        let _permit = self.db.write_permit().await?;
        const REOPEN: &str =
            "stock_alerts.acknowledged_at IS NOT NULL AND stock_alerts.acknowledged_at < excluded.raised_at";
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO stock_alerts (product_id, available, raised_at, last_event_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, \
               last_event_id = excluded.last_event_id, \
               raised_at = CASE WHEN {REOPEN} THEN excluded.raised_at ELSE stock_alerts.raised_at END, \
               acknowledged_by = CASE WHEN {REOPEN} THEN NULL ELSE stock_alerts.acknowledged_by END, \
               acknowledged_at = CASE WHEN {REOPEN} THEN NULL ELSE stock_alerts.acknowledged_at END \
             WHERE stock_alerts.last_event_id < excluded.last_event_id"
        )))
        .bind(event.aggregate_id.to_string())
        .bind(available)
        .bind(&event.occurred_at)
        .bind(event.id.to_string())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

impl Handler for StockAlerts {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "inventory.low"
    }

    fn handle<'a>(&'a self, event: &'a Envelope) -> HandleFuture<'a> {
        Box::pin(self.raise(event))
    }
}

fn from_row(r: &sqlx::any::AnyRow) -> std::result::Result<StockAlert, sqlx::Error> {
    let by: Option<String> = r.try_get("acknowledged_by")?;
    Ok(StockAlert {
        product_id: db::parse_id(&r.try_get::<String, _>("product_id")?)?,
        sku: r.try_get("sku")?,
        name: r.try_get("name")?,
        available: r.try_get("available")?,
        available_now: r.try_get("available_now")?,
        low_stock_threshold: r.try_get("low_stock_threshold")?,
        raised_at: db::parse_ts(&r.try_get::<String, _>("raised_at")?)?,
        last_event_id: db::parse_id(&r.try_get::<String, _>("last_event_id")?)?,
        acknowledged_at: r.try_get::<Option<String>, _>("acknowledged_at")?.map(|t| db::parse_ts(&t)).transpose()?,
        acknowledged_by: by.map(|s| db::parse_id(&s)).transpose()?,
    })
}
