//! Inventory per product: `on_hand` and `reserved`, with `available = on_hand - reserved`
//! never negative and `on_hand` never above [`MAX_STOCK`]. Every change is one conditional
//! relative UPDATE (never read-modify-write), and CHECK constraints back the lower bounds in
//! the schema.
//!
//! No stock arithmetic can overflow, on either backend (on SQLite an `i64` overflow silently
//! becomes a REAL; on PostgreSQL it is an error): `on_hand ≤ MAX_STOCK = 10^12`, a delta is
//! at most 10^9 in size ([`StockDelta`]), and the conditions are written so that the only
//! sums the database evaluates are of such bounded values.

pub mod count;
mod units;

pub use units::{InitialStock, MAX_DELTA, MAX_STOCK, StockDelta, stock_delta_schema};

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::{self, Arg, Db, SqlBuilder, Tx};
use crate::error::{Error, FieldError, Result};
use crate::events::{self, Event, StockAdjusted, StockLow};
use crate::ratelimit::Class;

/// One product's stock, in units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Inventory {
    pub product_id: Uuid,
    pub sku: String,
    /// In the warehouse, `0..=MAX_STOCK` (10^12).
    pub on_hand: i64,
    /// Held by unpaid and unshipped orders; never more than `on_hand`.
    pub reserved: i64,
    /// on_hand − reserved: what can still be sold.
    pub available: i64,
    /// At or below this `available`, an `inventory.low` event is recorded.
    pub low_stock_threshold: i64,
}

/// Stock of one product. Needs staff with `catalog:read`; 404 if there is no such product.
pub async fn get(db: &Db, principal: &Principal, product_id: Uuid) -> Result<Inventory> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogRead)?;
    load(&mut *db.acquire().await?, product_id).await
}

/// One product's stock, read on `conn` (inside a transaction: as that transaction sees it).
pub(crate) async fn load(conn: &mut AnyConnection, product_id: Uuid) -> Result<Inventory> {
    let row = sqlx::query(
        "SELECT i.product_id, p.sku, i.on_hand, i.reserved, i.low_stock_threshold \
         FROM inventory i JOIN products p ON p.id = i.product_id WHERE i.product_id = $1",
    )
    .bind(product_id.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound("product"))?;
    let on_hand: i64 = row.try_get("on_hand")?;
    let reserved: i64 = row.try_get("reserved")?;
    Ok(Inventory {
        product_id,
        sku: row.try_get("sku")?,
        on_hand,
        reserved,
        // reserved ∈ [0, on_hand] (schema CHECKs): cannot overflow.
        available: on_hand - reserved,
        low_stock_threshold: row.try_get("low_stock_threshold")?,
    })
}

/// The state a conditional stock adjustment expects (from the product's ETag): the
/// product's `version` and `available`, compared in the same UPDATE that changes the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockGuard {
    pub product_version: i64,
    pub available: i64,
}

/// Adds `delta` units (negative to remove) to `on_hand` and records `inventory.adjusted`
/// (and `inventory.low` if it drops to the threshold); with `guard`, only if the product
/// is still as the caller saw it. No authorization: the service operation
/// (`catalog::stock::adjust`) decides who may, and invalidates the read cache.
///
/// Errors, each changing nothing: 404 if there is no such product; 412 if `guard` no
/// longer holds; 409 `insufficient-stock` if less would be on hand than is reserved; 409
/// `stock-limit` if more than [`MAX_STOCK`] would be on hand (a conflict with the current
/// stock, not a bad input: the same delta is fine for a product with less on hand).
pub async fn apply_adjustment(
    db: &Db,
    product_id: Uuid,
    delta: StockDelta,
    reason: String,
    guard: Option<StockGuard>,
) -> Result<Inventory> {
    let mut tx = db.begin_write().await?;
    adjust_in(&mut tx, product_id, delta, reason, guard).await?;
    tx.commit().await?;
    load(&mut *db.acquire().await?, product_id).await
}

/// The adjustment of [`apply_adjustment`] inside the caller's transaction: the conditional
/// UPDATE, `inventory.adjusted` and `inventory.low`. Used by it and by the batch operations
/// (`crate::batch`). Same errors, read in `tx`; after an error the caller rolls back (to a
/// savepoint) as nothing was written.
pub(crate) async fn adjust_in(
    tx: &mut Tx,
    product_id: Uuid,
    delta: StockDelta,
    reason: String,
    guard: Option<StockGuard>,
) -> Result<()> {
    let d = delta.units();
    let (version, available) = guard.map_or((-1, 0), |g| (g.product_version, g.available));
    // No arithmetic on unbounded values: `-d` and `MAX_STOCK - d` are computed here from a
    // bounded delta, `on_hand - reserved` lies in [0, on_hand], and the SET's sum is only
    // evaluated for a row whose on_hand ≤ MAX_STOCK - d, so it is at most MAX_STOCK.
    let n = sqlx::query(
        "UPDATE inventory SET on_hand = on_hand + $1, updated_at = $2 \
         WHERE product_id = $3 AND on_hand - reserved >= $4 AND on_hand <= $5 \
         AND ($6 < 0 OR (on_hand - reserved = $7 AND (SELECT version FROM products WHERE id = $3) = $6))",
    )
    .bind(d)
    .bind(db::now())
    .bind(product_id.to_string())
    .bind(-d)
    .bind(MAX_STOCK - d)
    .bind(version)
    .bind(available)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        let inv = load(tx, product_id).await?;
        if let Some(g) = guard {
            let now: Option<i64> = sqlx::query_scalar("SELECT version FROM products WHERE id = $1")
                .bind(product_id.to_string())
                .fetch_optional(&mut **tx)
                .await?;
            if now != Some(g.product_version) || inv.available != g.available {
                return Err(Error::PreconditionFailed);
            }
        }
        if inv.on_hand.checked_add(d).is_none_or(|after| after > MAX_STOCK) {
            return Err(Error::conflict(
                "stock-limit",
                format!("{} would have more than {MAX_STOCK} units on hand", inv.sku),
            ));
        }
        return Err(Error::InsufficientStock { sku: inv.sku, requested: -d, available: inv.available });
    }
    let adjusted = StockAdjusted { product_id, delta: d, reason };
    events::record(tx, Event::StockAdjusted(adjusted)).await?;
    record_if_low(tx, &[product_id]).await?;
    Ok(())
}

/// Writes the inventory row of a product created in `tx`.
pub(crate) async fn insert(tx: &mut Tx, product_id: Uuid, on_hand: InitialStock, now: &str) -> Result<()> {
    sqlx::query("INSERT INTO inventory (product_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, $3)")
        .bind(product_id.to_string())
        .bind(on_hand.units())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One product's share of an order.
#[derive(Debug, Clone)]
pub struct StockLine {
    pub product_id: Uuid,
    pub sku: String,
    pub quantity: i64,
}

/// Reserves every line, or none, in one set-based statement (see [`reserve_noting_low`]).
pub async fn reserve(conn: &mut AnyConnection, lines: &[StockLine]) -> Result<()> {
    reserve_noting_low(conn, lines).await.map(|_| ())
}

/// Reserves every line, or none, in one set-based statement, and returns the products it
/// left at or under their low-stock threshold (for `inventory.low`, by product id). If any
/// line lacks available stock, 409 `insufficient-stock` names the first such line in the order given (the caller
/// drops the transaction, rolling back the lines that were covered); a quantity below 1 is a
/// 422 on `quantity` (callers validate quantities first; this is the last line of defence).
/// `lines` has one entry per product. Two buyers of the last unit cannot both pass the
/// `on_hand - reserved >= qty` condition: the row lock makes the second re-check after the
/// first commits. (PostgreSQL's checkout places orders in one statement instead, see
/// `orders/store/place/pg.rs`.)
///
/// `reserved` cannot overflow: the SET is evaluated only for a row that passed the WHERE, so
/// the new `reserved + qty` is at most `on_hand` (≤ `MAX_STOCK` for every row this module
/// writes), and `on_hand - reserved` is in `[0, on_hand]` by the schema's CHECKs.
pub async fn reserve_noting_low(conn: &mut AnyConnection, lines: &[StockLine]) -> Result<Vec<StockLow>> {
    if lines.iter().any(|l| l.quantity < 1) {
        return Err(Error::Validation(vec![FieldError::new("quantity", "must be at least 1")]));
    }
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new("UPDATE inventory SET reserved = reserved + w.q, updated_at = ");
    let now = b.arg(Arg::Text(db::now()));
    b.push(&now).push(" FROM (");
    for (i, l) in lines.iter().enumerate() {
        let p = b.arg(Arg::Text(l.product_id.to_string()));
        let q = b.arg(Arg::Int(l.quantity));
        b.push(if i == 0 { "SELECT " } else { " UNION ALL SELECT " });
        b.push(&format!("{p} AS p, {q} AS q"));
    }
    b.push(
        ") AS w WHERE inventory.product_id = w.p AND inventory.on_hand - inventory.reserved >= w.q \
         RETURNING inventory.product_id, inventory.on_hand - inventory.reserved AS available, \
         inventory.low_stock_threshold",
    );
    let rows = b.build().fetch_all(&mut *conn).await?;
    if rows.len() == lines.len() {
        let mut low = Vec::new();
        for r in &rows {
            let available: i64 = r.try_get("available")?;
            if available <= r.try_get::<i64, _>("low_stock_threshold")? {
                low.push(StockLow { product_id: db::parse_id(&r.try_get::<String, _>("product_id")?)?, available });
            }
        }
        low.sort_by_key(|l| l.product_id);
        return Ok(low);
    }
    let mut b =
        SqlBuilder::new("SELECT product_id, on_hand - reserved AS available FROM inventory WHERE product_id IN (");
    for (i, l) in lines.iter().enumerate() {
        let p = b.arg(Arg::Text(l.product_id.to_string()));
        b.push(if i == 0 { "" } else { ", " }).push(&p);
    }
    b.push(")");
    // Read after the partial update: a covered line shows what is left after it.
    let rows = b.build().fetch_all(&mut *conn).await?;
    let mut available = Vec::with_capacity(rows.len());
    for r in &rows {
        available.push((db::parse_id(&r.try_get::<String, _>("product_id")?)?, r.try_get::<i64, _>("available")?));
    }
    let short = lines.iter().find_map(|l| {
        let have = available.iter().find(|(p, _)| *p == l.product_id).map_or(0, |(_, a)| *a);
        (have < l.quantity).then(|| Error::InsufficientStock {
            sku: l.sku.clone(),
            requested: l.quantity,
            available: have,
        })
    });
    Err(short.unwrap_or_else(|| Error::Internal(anyhow::anyhow!("a reservation matched fewer rows than lines"))))
}

/// Gives reserved units back (order cancelled, failed, expired or refunded before shipping).
pub async fn release(tx: &mut Tx, lines: &[StockLine]) -> Result<()> {
    settle(
        tx,
        lines,
        "UPDATE inventory SET reserved = reserved - $1, updated_at = $2 \
         WHERE product_id = $3 AND $1 > 0 AND reserved >= $1",
    )
    .await
}

/// The goods leave the warehouse: reserved units stop being on hand.
pub async fn ship(tx: &mut Tx, lines: &[StockLine]) -> Result<()> {
    settle(
        tx,
        lines,
        "UPDATE inventory SET on_hand = on_hand - $1, reserved = reserved - $1, updated_at = $2 \
         WHERE product_id = $3 AND $1 > 0 AND reserved >= $1",
    )
    .await
}

/// Runs `sql` (binding quantity `$1`, now `$2`, product `$3`) for each line's reservation.
/// A line whose reservation is already gone (or a quantity below 1, which no order has) is
/// left alone and logged: the CHECKs would refuse a negative count, and the order's own
/// transition decides what is settled. Both statements only subtract a positive quantity
/// no larger than `reserved ≤ on_hand`, so nothing can overflow.
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

/// Records `inventory.low` for each product at or under its threshold (one query to find
/// them, then one insert per low product).
pub async fn record_if_low(conn: &mut AnyConnection, products: &[Uuid]) -> Result<()> {
    if products.is_empty() {
        return Ok(());
    }
    let mut b = SqlBuilder::new(
        "SELECT product_id, on_hand - reserved AS available FROM inventory \
         WHERE on_hand - reserved <= low_stock_threshold AND product_id IN (",
    );
    for (i, p) in products.iter().enumerate() {
        let a = b.arg(Arg::Text(p.to_string()));
        b.push(if i == 0 { "" } else { ", " }).push(&a);
    }
    b.push(") ORDER BY product_id");
    let rows = b.build().fetch_all(&mut *conn).await?;
    for r in &rows {
        let product_id = db::parse_id(&r.try_get::<String, _>("product_id")?)?;
        let available: i64 = r.try_get("available")?;
        events::record(conn, Event::StockLow(StockLow { product_id, available })).await?;
    }
    Ok(())
}
