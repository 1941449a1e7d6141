//! The order aggregate's SQL, all of it: tables `orders` and `order_lines` here, the
//! partial refunds' `order_refunds` in [`refunds`]. Nothing here
//! decides who may do what or which move is legal (that is the services' and
//! [`super::transition`]'s job); every write is a single conditional statement so that two
//! racing callers cannot both win.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

pub(super) mod idempotency;
pub(super) mod payment_attempts;
mod place;
pub(super) mod refunds;
mod saga;

pub(super) use self::place::{NewLine, NewOrder, mark_paid, place};
pub(super) use self::saga::{current_state, expired_reservations, move_saga, past_lease, payment_id, renew_lease};

use super::shipping::{Carrier, OrderNumber, TrackingNumber};
use super::state::{OrderStatus, SagaState};
use super::{LineItem, Order, OrderFilter};
use crate::auth::Email;
use crate::db::{self, Arg, Db, SqlBuilder, Tx};
use crate::error::{Error, Result};
use crate::inventory::StockLine;
use crate::pagination::PageRequest;

/// An order's columns, as [`from_row`] reads them (a macro, for `concat!`).
macro_rules! columns {
    () => {
        "id, number, customer_id, status, currency, subtotal_minor, discount_minor, total_minor, \
         payment_last4, failure_reason, reserved_until, ship_mode, shipping_address, placed_at, paid_at, \
         shipped_at, carrier, tracking_number, refunded_minor, delivered_at, closed_at, updated_at"
    };
}
pub(super) use columns;

const COLUMNS: &str = columns!();

/// [`COLUMNS`] of an order aliased `o`, for reads that join its lines (a macro, for `concat!`).
macro_rules! o_columns {
    () => {
        "o.id, o.number, o.customer_id, o.status, o.currency, o.subtotal_minor, o.discount_minor, \
     o.total_minor, o.payment_last4, o.failure_reason, o.reserved_until, o.ship_mode, o.shipping_address, \
     o.placed_at, o.paid_at, o.shipped_at, o.carrier, o.tracking_number, o.refunded_minor, o.delivered_at, \
     o.closed_at, o.updated_at"
    };
}
pub(super) use o_columns;

/// The columns of a line aliased `l` joined to `o_columns!()` (read by [`with_lines`]).
macro_rules! l_columns {
    () => {
        "l.line_no, l.product_id, l.sku, l.name, l.unit_price_minor, l.quantity, \
     l.discount_minor AS line_discount_minor, l.line_total_minor"
    };
}
pub(super) use l_columns;

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    row.try_get::<Option<String>, _>(col)?.as_deref().map(db::parse_ts).transpose()
}

fn from_row(row: &AnyRow) -> Result<Order, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let address: Option<String> = row.try_get("shipping_address")?;
    Ok(Order {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        number: row.try_get("number")?,
        customer_id: db::parse_id(&row.try_get::<String, _>("customer_id")?)?,
        status: OrderStatus::parse(&status).map_err(|e| sqlx::Error::Decode(e.into()))?,
        currency: row.try_get("currency")?,
        subtotal_minor: row.try_get("subtotal_minor")?,
        discount_minor: row.try_get("discount_minor")?,
        total_minor: row.try_get("total_minor")?,
        line_items: Vec::new(),
        payment_last4: row.try_get("payment_last4")?,
        failure_reason: row.try_get("failure_reason")?,
        reserved_until: opt_ts(row, "reserved_until")?,
        ship_mode: row.try_get("ship_mode")?,
        shipping_address: address.and_then(|a| serde_json::from_str(&a).ok()),
        placed_at: db::parse_ts(&row.try_get::<String, _>("placed_at")?)?,
        paid_at: opt_ts(row, "paid_at")?,
        shipped_at: opt_ts(row, "shipped_at")?,
        carrier: row.try_get("carrier")?,
        tracking_number: row.try_get("tracking_number")?,
        refunded_minor: row.try_get("refunded_minor")?,
        delivered_at: opt_ts(row, "delivered_at")?,
        closed_at: opt_ts(row, "closed_at")?,
        updated_at: db::parse_ts(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn line_from_row(row: &AnyRow) -> Result<(Uuid, LineItem), sqlx::Error> {
    let order_id = db::parse_id(&row.try_get::<String, _>("order_id")?)?;
    Ok((order_id, line_item(row, row.try_get("line_no")?, "discount_minor")?))
}

/// A line item from `row`, whose line discount is in column `discount` (the joined order
/// read names it apart from the order's own `discount_minor`).
fn line_item(row: &AnyRow, line_no: i64, discount: &str) -> Result<LineItem, sqlx::Error> {
    let product: Option<String> = row.try_get("product_id")?;
    Ok(LineItem {
        line_no,
        product_id: product.as_deref().map(db::parse_id).transpose()?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        unit_price_minor: row.try_get("unit_price_minor")?,
        quantity: row.try_get("quantity")?,
        discount_minor: row.try_get(discount)?,
        line_total_minor: row.try_get("line_total_minor")?,
    })
}

/// Fills in the line items of `orders` with one query (no N+1).
pub(super) async fn attach_lines(db: &Db, orders: &mut [Order]) -> Result<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let mut b = SqlBuilder::new(
        "SELECT order_id, line_no, product_id, sku, name, unit_price_minor, quantity, discount_minor, \
         line_total_minor FROM order_lines WHERE order_id IN (",
    );
    for (i, o) in orders.iter().enumerate() {
        let a = b.arg(Arg::Text(o.id.to_string()));
        b.push(if i == 0 { "" } else { ", " }).push(&a);
    }
    b.push(") ORDER BY order_id, line_no");
    let rows = b.build().fetch_all(db.pool()).await?;
    for row in &rows {
        let (order_id, line) = line_from_row(row)?;
        if let Some(o) = orders.iter_mut().find(|o| o.id == order_id) {
            o.line_items.push(line);
        }
    }
    Ok(())
}

/// Order `id` with its lines, in one query; with `owner`, only if that customer placed it.
/// 404 otherwise.
pub(super) async fn find(db: &Db, id: Uuid, owner: Option<Uuid>) -> Result<Order> {
    let rows = sqlx::query(FIND_SQL)
        .bind(id.to_string())
        .bind(owner.map(|o| o.to_string()).unwrap_or_default())
        .fetch_all(db.pool())
        .await?;
    with_lines(&rows)?.ok_or(Error::NotFound("order"))
}

const FIND_SQL: &str = concat!(
    "SELECT ",
    o_columns!(),
    ", ",
    l_columns!(),
    " FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id \
     WHERE o.id = $1 AND ($2 = '' OR o.customer_id = $2) ORDER BY l.line_no"
);

/// The order of rows of `o_columns!()` and `l_columns!()` (one row per line, or one row with
/// null line columns), with its lines; `None` without rows.
pub(super) fn with_lines(rows: &[AnyRow]) -> Result<Option<Order>> {
    let Some(first) = rows.first() else { return Ok(None) };
    let mut order = from_row(first)?;
    for row in rows {
        let Some(line_no) = row.try_get::<Option<i64>, _>("line_no")? else { continue };
        order.line_items.push(line_item(row, line_no, "line_discount_minor")?);
    }
    Ok(Some(order))
}

/// Order `number` with its lines; with `owner`, only if that customer placed it. 404
/// otherwise.
pub(super) async fn find_by_number(db: &Db, number: &OrderNumber, owner: Option<Uuid>) -> Result<Order> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM orders WHERE number = $1")
        .bind(number.as_str())
        .fetch_optional(db.pool())
        .await?;
    let id = id.ok_or(Error::NotFound("order"))?;
    find(db, db::parse_id(&id)?, owner).await
}

/// Whose orders a list is restricted to, besides [`OrderFilter`]'s status and window.
pub(super) struct ListBy<'a> {
    /// Orders of this customer (always set for customers).
    pub customer: Option<Uuid>,
    /// Orders of the user with this (lower-cased) email.
    pub email: Option<&'a Email>,
    /// The order with this number.
    pub number: Option<&'a OrderNumber>,
}

/// One page of orders newest first (`page.fetch_limit()` rows, without their lines),
/// restricted by `by`, filtered by `f`'s status and placement window.
pub(super) async fn list(db: &Db, by: &ListBy<'_>, f: &OrderFilter, page: &PageRequest) -> Result<Vec<Order>> {
    let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM orders WHERE 1 = 1"));
    if let Some(c) = by.customer {
        let a = b.arg(Arg::Text(c.to_string()));
        b.push(&format!(" AND customer_id = {a}"));
    }
    if let Some(e) = by.email {
        let a = b.arg(Arg::Text(e.as_str().to_owned()));
        b.push(&format!(" AND customer_id IN (SELECT id FROM users WHERE email = {a})"));
    }
    if let Some(n) = by.number {
        let a = b.arg(Arg::Text(n.as_str().to_owned()));
        b.push(&format!(" AND number = {a}"));
    }
    if let Some(s) = f.status {
        let a = b.arg(Arg::Text(s.as_str().into()));
        b.push(&format!(" AND status = {a}"));
    }
    if let Some(t) = f.placed_from {
        let a = b.arg(Arg::Text(db::ts(t)));
        b.push(&format!(" AND placed_at >= {a}"));
    }
    if let Some(t) = f.placed_to {
        let a = b.arg(Arg::Text(db::ts(t)));
        b.push(&format!(" AND placed_at < {a}"));
    }
    if let Some(c) = &page.cursor {
        let k = b.arg(Arg::Text(c.key_text()?.to_owned()));
        let id = b.arg(Arg::Text(c.id.clone()));
        b.push(&format!(" AND (placed_at < {k} OR (placed_at = {k} AND id < {id}))"));
    }
    let lim = b.arg(Arg::Int(page.fetch_limit()));
    b.push(&format!(" ORDER BY placed_at DESC, id DESC LIMIT {lim}"));
    let rows = b.build().fetch_all(db.pool()).await?;
    Ok(rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?)
}

/// An order's status and saga state, inside a transaction. 404 if there is no such order.
pub(super) async fn state_of(tx: &mut Tx, id: Uuid) -> Result<(OrderStatus, SagaState)> {
    let row = sqlx::query(STATE_SQL).bind(id.to_string()).fetch_optional(&mut **tx).await?;
    state_from(row)
}

const STATE_SQL: &str = "SELECT status, saga_state FROM orders WHERE id = $1";

/// The status and saga state of a [`STATE_SQL`] row; 404 without one.
fn state_from(row: Option<AnyRow>) -> Result<(OrderStatus, SagaState)> {
    let row = row.ok_or(Error::NotFound("order"))?;
    let status = OrderStatus::parse(&row.try_get::<String, _>("status")?).map_err(internal)?;
    let saga = SagaState::parse(&row.try_get::<String, _>("saga_state")?).map_err(internal)?;
    Ok((status, saga))
}

fn internal(e: String) -> Error {
    Error::Internal(anyhow::anyhow!(e))
}

/// The stock an order holds, one entry per product: each line's units less those a settled
/// partial refund already released.
pub(super) async fn stock_lines(tx: &mut Tx, id: Uuid) -> Result<Vec<StockLine>> {
    let rows = sqlx::query(
        "SELECT product_id, sku, quantity - released_quantity AS quantity FROM order_lines \
         WHERE order_id = $1 AND product_id IS NOT NULL AND quantity > released_quantity",
    )
    .bind(id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    let mut lines: Vec<StockLine> = Vec::with_capacity(rows.len());
    for r in &rows {
        let product_id = db::parse_id(&r.try_get::<String, _>("product_id")?)?;
        let quantity: i64 = r.try_get("quantity")?;
        match lines.iter_mut().find(|l| l.product_id == product_id) {
            Some(l) => {
                l.quantity =
                    l.quantity.checked_add(quantity).ok_or_else(|| internal("order quantity overflow".into()))?
            }
            None => lines.push(StockLine { product_id, sku: r.try_get("sku")?, quantity }),
        }
    }
    Ok(lines)
}

/// How a status write changes the saga state.
#[derive(Debug, Clone, Copy)]
pub(super) enum SagaWrite {
    /// Leave it (and its deadline) as it is.
    Keep,
    /// Set it and clear the deadline.
    Set(SagaState),
    /// `compensated` unless a charge is in flight: that one's outcome still has to be
    /// settled (a late success is voided).
    EndUnlessCharging,
}

/// What must hold besides `status = from` for a status write to apply.
#[derive(Debug, Clone, Copy)]
pub(super) enum Guard {
    None,
    SagaIs(SagaState),
    SagaIsNot(SagaState),
    /// Waiting for payment without a charge in flight, and `reserved_until` is past.
    ReservationExpired,
    /// Partial refunds settled the whole total, none is in flight, and no full refund is
    /// claimed.
    RefundedInParts,
}

/// One conditional status write (see `transition::apply`).
pub(super) struct StatusWrite<'a> {
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// The timestamp column the new status sets (`paid_at`, `shipped_at`, …).
    pub at_column: &'static str,
    pub saga: SagaWrite,
    pub guard: Guard,
    /// Stored in `failure_reason` when given.
    pub reason: Option<&'a str>,
    /// Stored in `payment_id` when given.
    pub payment_id: Option<&'a str>,
    /// Stored in `carrier` and `tracking_number` when given.
    pub carrier: Option<&'a Carrier>,
    pub tracking_number: Option<&'a TrackingNumber>,
    /// The whole total is refunded: `refunded_minor` and `refund_claimed_minor` become
    /// `total_minor`.
    pub refunded_in_full: bool,
}

/// `UPDATE orders … WHERE id = id AND status = from AND <guard>`; returns whether it applied.
/// Every status change clears `reserved_until` (only `pending_payment` has one).
pub(super) async fn write_status(tx: &mut Tx, id: Uuid, w: &StatusWrite<'_>) -> Result<bool> {
    // Only `&'static str` constants of this module's enums are formatted into the SQL.
    let (saga, deadline) = match w.saga {
        SagaWrite::Keep => ("saga_state".to_owned(), "saga_deadline".to_owned()),
        SagaWrite::Set(s) => (format!("'{}'", s.as_str()), "NULL".to_owned()),
        SagaWrite::EndUnlessCharging => (
            format!(
                "CASE WHEN saga_state = '{c}' THEN saga_state ELSE '{e}' END",
                c = SagaState::Charging.as_str(),
                e = SagaState::Compensated.as_str()
            ),
            format!("CASE WHEN saga_state = '{}' THEN saga_deadline ELSE NULL END", SagaState::Charging.as_str()),
        ),
    };
    let guard = match w.guard {
        Guard::None => String::new(),
        Guard::SagaIs(s) => format!(" AND saga_state = '{}'", s.as_str()),
        Guard::SagaIsNot(s) => format!(" AND saga_state <> '{}'", s.as_str()),
        Guard::ReservationExpired => {
            format!(" AND saga_state = '{}' AND reserved_until < $2", SagaState::AwaitingPayment.as_str())
        }
        Guard::RefundedInParts => format!(
            " AND saga_state <> '{}' AND refunded_minor = total_minor AND refund_claimed_minor = refunded_minor",
            SagaState::Refunding.as_str()
        ),
    };
    let refunded =
        if w.refunded_in_full { ", refunded_minor = total_minor, refund_claimed_minor = total_minor" } else { "" };
    let sql = format!(
        "UPDATE orders SET status = $1, {at} = $2, updated_at = $2, reserved_until = NULL, \
         failure_reason = COALESCE($3, failure_reason), payment_id = COALESCE($4, payment_id), \
         carrier = COALESCE($7, carrier), tracking_number = COALESCE($8, tracking_number), \
         saga_state = {saga}, saga_deadline = {deadline}{refunded} WHERE id = $5 AND status = $6{guard}",
        at = w.at_column,
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(w.to.as_str())
        .bind(db::now())
        .bind(w.reason)
        .bind(w.payment_id)
        .bind(id.to_string())
        .bind(w.from.as_str())
        .bind(w.carrier.map(Carrier::as_str))
        .bind(w.tracking_number.map(TrackingNumber::as_str))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}
