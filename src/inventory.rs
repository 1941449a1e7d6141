//! Inventory per product: `on_hand` and `reserved`, with `available = on_hand - reserved`
//! never negative. Every change is one conditional relative UPDATE (never read-modify-write),
//! and CHECK constraints back the same invariant in the schema.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, Db, Tx};
use crate::error::{Error, Result};
use crate::events::{self, Event, StockAdjusted, StockLow};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Inventory {
    pub product_id: Uuid,
    pub sku: String,
    pub on_hand: i64,
    /// Held by unpaid and unshipped orders.
    pub reserved: i64,
    /// on_hand − reserved: what can still be sold.
    pub available: i64,
    /// At or below this `available`, an `inventory.low` event is recorded.
    pub low_stock_threshold: i64,
}

/// Stock of one product.
pub async fn get(db: &Db, product_id: Uuid) -> Result<Inventory> {
    let row = sqlx::query(
        "SELECT i.product_id, p.sku, i.on_hand, i.reserved, i.low_stock_threshold \
         FROM inventory i JOIN products p ON p.id = i.product_id WHERE i.product_id = $1",
    )
    .bind(product_id.to_string())
    .fetch_optional(db.pool())
    .await?
    .ok_or(Error::NotFound("product"))?;
    let on_hand: i64 = row.try_get("on_hand")?;
    let reserved: i64 = row.try_get("reserved")?;
    Ok(Inventory {
        product_id,
        sku: row.try_get("sku")?,
        on_hand,
        reserved,
        available: on_hand - reserved,
        low_stock_threshold: row.try_get("low_stock_threshold")?,
    })
}

/// Adds `delta` (negative to remove) to `on_hand`. 409 `insufficient-stock` if that would
/// leave less on hand than is reserved.
pub async fn adjust(db: &Db, product_id: Uuid, delta: i64, reason: &str) -> Result<Inventory> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE inventory SET on_hand = on_hand + $1, updated_at = $2 \
         WHERE product_id = $3 AND on_hand + $1 >= reserved",
    )
    .bind(delta)
    .bind(db::now())
    .bind(product_id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        drop(tx);
        let inv = get(db, product_id).await?;
        return Err(Error::InsufficientStock { sku: inv.sku, requested: -delta, available: inv.available });
    }
    let adjusted = StockAdjusted { product_id, delta, reason: reason.to_owned() };
    events::record(&mut tx, Event::StockAdjusted(adjusted)).await?;
    record_if_low(&mut tx, &[product_id]).await?;
    tx.commit().await?;
    get(db, product_id).await
}

/// One product's share of an order.
#[derive(Debug, Clone)]
pub struct StockLine {
    pub product_id: Uuid,
    pub sku: String,
    pub quantity: i64,
}

/// Reserves every line, or none: the first line without enough available stock aborts with
/// 409 `insufficient-stock` (the caller drops the transaction). Two buyers of the last unit
/// cannot both pass the `on_hand - reserved >= qty` condition: the row lock makes the second
/// re-check after the first commits.
pub async fn reserve(tx: &mut Tx, lines: &[StockLine]) -> Result<()> {
    let now = db::now();
    for l in lines {
        let n = sqlx::query(
            "UPDATE inventory SET reserved = reserved + $1, updated_at = $2 \
             WHERE product_id = $3 AND on_hand - reserved >= $1",
        )
        .bind(l.quantity)
        .bind(&now)
        .bind(l.product_id.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            let available: Option<i64> =
                sqlx::query_scalar("SELECT on_hand - reserved FROM inventory WHERE product_id = $1")
                    .bind(l.product_id.to_string())
                    .fetch_optional(&mut **tx)
                    .await?;
            return Err(Error::InsufficientStock {
                sku: l.sku.clone(),
                requested: l.quantity,
                available: available.unwrap_or(0),
            });
        }
    }
    Ok(())
}

/// Gives reserved units back (order cancelled, failed, expired or refunded before shipping).
pub async fn release(tx: &mut Tx, lines: &[StockLine]) -> Result<()> {
    settle(
        tx,
        lines,
        "UPDATE inventory SET reserved = reserved - $1, updated_at = $2 WHERE product_id = $3 AND reserved >= $1",
    )
    .await
}

/// The goods leave the warehouse: reserved units stop being on hand.
pub async fn ship(tx: &mut Tx, lines: &[StockLine]) -> Result<()> {
    settle(
        tx,
        lines,
        "UPDATE inventory SET on_hand = on_hand - $1, reserved = reserved - $1, updated_at = $2 \
         WHERE product_id = $3 AND reserved >= $1",
    )
    .await
}

/// Runs `sql` (binding quantity `$1`, now `$2`, product `$3`) for each line's reservation.
/// A line whose reservation is already gone is left alone and logged: the CHECKs would
/// refuse a negative count, and the order's own transition decides what is settled.
async fn settle(tx: &mut Tx, lines: &[StockLine], sql: &'static str) -> Result<()> {
    let now = db::now();
    for l in lines {
        let n = sqlx::query(sql)
            .bind(l.quantity)
            .bind(&now)
            .bind(l.product_id.to_string())
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if n == 0 {
            tracing::error!(product.id = %l.product_id, quantity = l.quantity, "reservation missing while settling stock");
        }
    }
    Ok(())
}

/// Records `inventory.low` for each product at or under its threshold.
pub async fn record_if_low(tx: &mut Tx, products: &[Uuid]) -> Result<()> {
    for p in products {
        let low: Option<i64> = sqlx::query_scalar(
            "SELECT on_hand - reserved FROM inventory WHERE product_id = $1 \
             AND on_hand - reserved <= low_stock_threshold",
        )
        .bind(p.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(available) = low {
            events::record(tx, Event::StockLow(StockLow { product_id: *p, available })).await?;
        }
    }
    Ok(())
}
