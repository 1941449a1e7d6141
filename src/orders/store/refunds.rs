//! The SQL of refunds: the claims on `orders.refund_claimed_minor` and
//! `order_lines.refunded_quantity`, and the `order_refunds` rows. Every claim is one
//! conditional UPDATE that can only succeed while Σ(claimed + settled refunds) + amount ≤
//! the order's total, so two racing refunds can never together exceed what was paid.
//!
//! Lock order (PostgreSQL): a refund row, then its order, then its lines; a claim starts at
//! the order. No two paths take the same rows in opposite orders.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::{self, Db, Tx};
use crate::error::{Error, Result};
use crate::orders::state::{OrderStatus, SagaState};

/// A refund row as stored.
#[derive(Debug, Clone)]
pub(in crate::orders) struct RefundRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount_minor: i64,
    /// `(line_no, quantity)` pairs; empty for a refund by amount.
    pub lines: Vec<(i64, i64)>,
    pub state: String,
    pub gateway_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, order_id, amount_minor, lines, state, gateway_refund_id, created_at, settled_at";

fn lines_json(lines: &[(i64, i64)]) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let v: Vec<serde_json::Value> =
        lines.iter().map(|(n, q)| serde_json::json!({ "line_no": n, "quantity": q })).collect();
    Some(serde_json::Value::Array(v).to_string())
}

fn parse_lines(text: Option<&str>) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let Some(text) = text else { return Ok(Vec::new()) };
    let v: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(v.iter().filter_map(|l| Some((l.get("line_no")?.as_i64()?, l.get("quantity")?.as_i64()?))).collect())
}

fn from_row(row: &AnyRow) -> Result<RefundRow, sqlx::Error> {
    let lines: Option<String> = row.try_get("lines")?;
    let settled: Option<String> = row.try_get("settled_at")?;
    Ok(RefundRow {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        order_id: db::parse_id(&row.try_get::<String, _>("order_id")?)?,
        amount_minor: row.try_get("amount_minor")?,
        lines: parse_lines(lines.as_deref())?,
        state: row.try_get("state")?,
        gateway_refund_id: row.try_get("gateway_refund_id")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        settled_at: settled.as_deref().map(db::parse_ts).transpose()?,
    })
}

/// Refund `id`. 404 if there is none.
pub(in crate::orders) async fn get(db: &Db, id: Uuid) -> Result<RefundRow> {
    let sql = format!("SELECT {COLUMNS} FROM order_refunds WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("refund"))?;
    Ok(from_row(&row)?)
}

/// A line as a refund by lines needs it: `(quantity, line_total_minor, product_id, sku)`.
pub(in crate::orders) async fn line(
    tx: &mut Tx,
    order: Uuid,
    line_no: i64,
) -> Result<Option<(i64, i64, Option<Uuid>, String)>> {
    let row = sqlx::query(
        "SELECT quantity, line_total_minor, product_id, sku FROM order_lines WHERE order_id = $1 AND line_no = $2",
    )
    .bind(order.to_string())
    .bind(line_no)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let product: Option<String> = r.try_get("product_id")?;
    Ok(Some((
        r.try_get("quantity")?,
        r.try_get("line_total_minor")?,
        product.as_deref().map(db::parse_id).transpose()?,
        r.try_get("sku")?,
    )))
}

/// What a won claim knows about its order.
pub(in crate::orders) struct ClaimedOrder {
    pub currency: String,
    pub payment_id: Option<String>,
}

/// Claims `amount` of order `order`'s payment for a partial refund: only if the order is
/// paid, shipped or delivered, no full refund is claimed, and Σ(claimed + settled) + amount
/// ≤ total. `None` if the claim lost (nothing written).
pub(in crate::orders) async fn claim_amount(tx: &mut Tx, order: Uuid, amount: i64) -> Result<Option<ClaimedOrder>> {
    let row = sqlx::query(
        "UPDATE orders SET refund_claimed_minor = refund_claimed_minor + $1, updated_at = $2 \
         WHERE id = $3 AND status IN ($4, $5, $6) AND saga_state <> $7 \
         AND refund_claimed_minor + $1 <= total_minor RETURNING currency, payment_id",
    )
    .bind(amount)
    .bind(db::now())
    .bind(order.to_string())
    .bind(OrderStatus::Paid.as_str())
    .bind(OrderStatus::Shipped.as_str())
    .bind(OrderStatus::Delivered.as_str())
    .bind(SagaState::Refunding.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok(ClaimedOrder { currency: r.try_get("currency")?, payment_id: r.try_get("payment_id")? })).transpose()
}

/// Which per-line counter of refunded units to advance: `Refunded` when a refund claims
/// units, `Released` when a settled refund of an unshipped order gives them back to stock.
#[derive(Debug, Clone, Copy)]
pub(in crate::orders) enum LineCounter {
    Refunded,
    Released,
}

/// Adds `quantity` units to a line's `counter`, while it stays within the line's quantity.
/// Returns whether it won (false: another refund took those units first, or they were
/// already released).
pub(in crate::orders) async fn advance_line(
    tx: &mut Tx,
    counter: LineCounter,
    order: Uuid,
    line_no: i64,
    quantity: i64,
) -> Result<bool> {
    let sql = match counter {
        LineCounter::Refunded => {
            "UPDATE order_lines SET refunded_quantity = refunded_quantity + $1 \
             WHERE order_id = $2 AND line_no = $3 AND refunded_quantity + $1 <= quantity"
        }
        LineCounter::Released => {
            "UPDATE order_lines SET released_quantity = released_quantity + $1 \
             WHERE order_id = $2 AND line_no = $3 AND released_quantity + $1 <= quantity"
        }
    };
    let n =
        sqlx::query(sql).bind(quantity).bind(order.to_string()).bind(line_no).execute(&mut **tx).await?.rows_affected();
    Ok(n == 1)
}

/// Records a claimed refund. `deadline`: its lease (a partial refund), or `None` for a full
/// refund's remainder (the order's saga lease covers it).
pub(in crate::orders) async fn insert(
    tx: &mut Tx,
    id: Uuid,
    order: Uuid,
    amount: i64,
    lines: &[(i64, i64)],
    deadline: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_refunds (id, order_id, amount_minor, lines, state, deadline, created_at) \
         VALUES ($1, $2, $3, $4, 'claimed', $5, $6)",
    )
    .bind(id.to_string())
    .bind(order.to_string())
    .bind(amount)
    .bind(lines_json(lines))
    .bind(deadline.map(db::ts))
    .bind(db::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends claimed refund `id` as `settled` (with the gateway's refund id) or `failed`; returns
/// the row as it was claimed, or `None` if it was not claimed any more (another process
/// ended it).
pub(in crate::orders) async fn finish(
    tx: &mut Tx,
    id: Uuid,
    settled: bool,
    gateway_refund_id: Option<&str>,
) -> Result<Option<RefundRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE order_refunds SET state = $1, gateway_refund_id = COALESCE($2, gateway_refund_id), \
         settled_at = $3, deadline = NULL WHERE id = $4 AND state = 'claimed' RETURNING {COLUMNS}"
    )))
    .bind(if settled { "settled" } else { "failed" })
    .bind(gateway_refund_id)
    .bind(settled.then(db::now))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// Adds a settled refund's amount to its order; returns the order's status, refunded total
/// and total.
pub(in crate::orders) async fn add_refunded(tx: &mut Tx, order: Uuid, amount: i64) -> Result<(OrderStatus, i64, i64)> {
    let r = sqlx::query(
        "UPDATE orders SET refunded_minor = refunded_minor + $1, updated_at = $2 WHERE id = $3 \
         RETURNING status, refunded_minor, total_minor",
    )
    .bind(amount)
    .bind(db::now())
    .bind(order.to_string())
    .fetch_one(&mut **tx)
    .await?;
    let status =
        OrderStatus::parse(&r.try_get::<String, _>("status")?).map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
    Ok((status, r.try_get("refunded_minor")?, r.try_get("total_minor")?))
}

/// Gives a failed refund's claim back: its amount and its lines' units.
pub(in crate::orders) async fn release_claim(tx: &mut Tx, refund: &RefundRow) -> Result<()> {
    sqlx::query("UPDATE orders SET refund_claimed_minor = refund_claimed_minor - $1, updated_at = $2 WHERE id = $3")
        .bind(refund.amount_minor)
        .bind(db::now())
        .bind(refund.order_id.to_string())
        .execute(&mut **tx)
        .await?;
    for (line_no, quantity) in &refund.lines {
        sqlx::query(
            "UPDATE order_lines SET refunded_quantity = refunded_quantity - $1 WHERE order_id = $2 AND line_no = $3",
        )
        .bind(quantity)
        .bind(refund.order_id.to_string())
        .bind(line_no)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Claims a paid order for a full refund: saga `refunding` with a lease until `deadline`,
/// and the rest of the total claimed, if the order is `paid`, no refund is claimed (full or
/// partial). When partial refunds were settled before, the remainder gets a refund row (its
/// id is the gateway's idempotency key). Returns the amount left to refund (minor units),
/// or `None` if the claim lost (nothing written).
pub(in crate::orders) async fn claim_full(db: &Db, id: Uuid, deadline: DateTime<Utc>) -> Result<Option<i64>> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE orders SET saga_state = $1, saga_deadline = $2, updated_at = $3, refund_claimed_minor = total_minor \
         WHERE id = $4 AND status = $5 AND saga_state <> $1 AND refund_claimed_minor = refunded_minor \
         RETURNING total_minor - refunded_minor AS remainder, refunded_minor",
    )
    .bind(SagaState::Refunding.as_str())
    .bind(db::ts(deadline))
    .bind(db::now())
    .bind(id.to_string())
    .bind(OrderStatus::Paid.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let remainder: i64 = row.try_get("remainder")?;
    let refunded_before: i64 = row.try_get("refunded_minor")?;
    if refunded_before > 0 && remainder > 0 {
        insert(&mut tx, db::new_id(), id, remainder, &[], None).await?;
    }
    tx.commit().await?;
    Ok(Some(remainder))
}

/// Gives a full refund's claim back after the gateway refused it: saga `completed`, the
/// claimed remainder released, its refund row `failed`.
pub(in crate::orders) async fn give_back_full(db: &Db, id: Uuid) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE orders SET saga_state = $1, saga_deadline = NULL, refund_claimed_minor = refunded_minor, \
         updated_at = $2 WHERE id = $3 AND status = $4 AND saga_state = $5",
    )
    .bind(SagaState::Completed.as_str())
    .bind(db::now())
    .bind(id.to_string())
    .bind(OrderStatus::Paid.as_str())
    .bind(SagaState::Refunding.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE order_refunds SET state = 'failed' WHERE order_id = $1 AND state = 'claimed' AND deadline IS NULL",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The claimed remainder of order `id`'s full refund, if partial refunds came before it:
/// (refund id, amount).
pub(in crate::orders) async fn remainder_of(db: &Db, id: Uuid) -> Result<Option<(Uuid, i64)>> {
    let row = sqlx::query(
        "SELECT id, amount_minor FROM order_refunds WHERE order_id = $1 AND state = 'claimed' AND deadline IS NULL",
    )
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((db::parse_id(&r.try_get::<String, _>("id")?)?, r.try_get("amount_minor")?))).transpose()
}

/// Records the gateway's id of refund `id`.
pub(in crate::orders) async fn set_gateway_id(db: &Db, id: Uuid, gateway_refund_id: &str) -> Result<()> {
    sqlx::query("UPDATE order_refunds SET gateway_refund_id = $1 WHERE id = $2")
        .bind(gateway_refund_id)
        .bind(id.to_string())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Settles the claimed remainder rows of order `id` (inside the `refunded` transition).
pub(in crate::orders) async fn settle_remainder(tx: &mut Tx, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE order_refunds SET state = 'settled', settled_at = $1 \
         WHERE order_id = $2 AND state = 'claimed' AND deadline IS NULL",
    )
    .bind(db::now())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether order `id`'s partial refunds settled its whole total (none in flight).
pub(in crate::orders) async fn refunded_in_full(db: &Db, id: Uuid) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE id = $1 AND refunded_minor = total_minor AND refund_claimed_minor = total_minor",
    )
    .bind(id.to_string())
    .fetch_one(db.pool())
    .await?;
    Ok(n == 1)
}

/// Up to `limit` partial refunds claimed past their lease, oldest first, with that lease
/// (the claim token for [`renew_lease`]).
pub(in crate::orders) async fn past_lease(db: &Db, limit: i64) -> Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query(
        "SELECT id, deadline FROM order_refunds WHERE state = 'claimed' AND deadline < $1 ORDER BY deadline LIMIT $2",
    )
    .bind(db::now())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok((db::parse_id(&r.try_get::<String, _>("id")?)?, r.try_get("deadline")?))).collect()
}

/// Takes over a lapsed refund lease: moves it from `old` to `new` only if nobody else did
/// first. Returns whether this call won.
pub(in crate::orders) async fn renew_lease(db: &Db, id: Uuid, old: &str, new: DateTime<Utc>) -> Result<bool> {
    let n = sqlx::query("UPDATE order_refunds SET deadline = $1 WHERE id = $2 AND state = 'claimed' AND deadline = $3")
        .bind(db::ts(new))
        .bind(id.to_string())
        .bind(old)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// The currency and payment id of order `id`.
pub(in crate::orders) async fn payment_of(db: &Db, id: Uuid) -> Result<(String, Option<String>)> {
    let r = sqlx::query("SELECT currency, payment_id FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("order"))?;
    Ok((r.try_get("currency")?, r.try_get("payment_id")?))
}

/// Order `id`'s Σ(claimed + settled refunds) and total, inside a transaction.
pub(in crate::orders) async fn claimed_and_total(tx: &mut Tx, id: Uuid) -> Result<(i64, i64)> {
    let r = sqlx::query("SELECT refund_claimed_minor, total_minor FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(Error::NotFound("order"))?;
    Ok((r.try_get("refund_claimed_minor")?, r.try_get("total_minor")?))
}
