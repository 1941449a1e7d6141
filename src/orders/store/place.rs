//! Checkout's two writes, each one step on one connection: placing an order (reserve every
//! line, insert the order and its lines, record `order.placed` and any `inventory.low`) and
//! marking it paid (`order.paid`), which returns the order so checkout need not read it again.
//!
//! PostgreSQL runs each step as one statement ([`pg`]: a single statement is atomic, so no
//! `BEGIN`/`COMMIT` round trips). SQLite, which has no data-modifying CTEs, runs each as one
//! `BEGIN IMMEDIATE` transaction of a few set-based statements on the same connection.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::Connection;
use uuid::Uuid;

use super::{Order, with_lines};
use crate::db::{self, Arg, Backend, Db, SqlBuilder, WriteConn};
use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::inventory::{self, StockLine};
use crate::orders::state::{OrderStatus, SagaState};

mod pg;

/// A new order as checkout writes it, in `pending_payment`.
pub(in crate::orders) struct NewOrder<'a> {
    pub id: Uuid,
    pub number: String,
    pub customer_id: Uuid,
    pub currency: &'a str,
    /// Σ line totals, minor units (checked by pricing).
    pub subtotal_minor: i64,
    pub saga: SagaState,
    pub saga_deadline: Option<DateTime<Utc>>,
    pub reserved_until: DateTime<Utc>,
    pub payment_last4: Option<&'a str>,
    pub shipping_address: Option<&'a serde_json::Value>,
    pub placed_at: DateTime<Utc>,
    pub lines: Vec<NewLine<'a>>,
    /// The client's idempotency key and the request's fingerprint, if it sent a key.
    pub idempotency: Option<(&'a str, &'a str)>,
}

/// One line of a [`NewOrder`].
pub(in crate::orders) struct NewLine<'a> {
    pub product_id: Uuid,
    pub sku: &'a str,
    pub name: &'a str,
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub line_total_minor: i64,
}

/// Inserts the order and its lines (numbered from 1).
async fn insert(conn: &mut AnyConnection, o: &NewOrder<'_>) -> Result<()> {
    let placed = db::ts(o.placed_at);
    sqlx::query(
        "INSERT INTO orders (id, number, customer_id, status, currency, subtotal_minor, discount_minor, total_minor, \
         saga_state, saga_deadline, reserved_until, payment_last4, shipping_address, placed_at, updated_at, \
         idempotency_key, request_fingerprint) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
    )
    .bind(o.id.to_string())
    .bind(&o.number)
    .bind(o.customer_id.to_string())
    .bind(OrderStatus::PendingPayment.as_str())
    .bind(o.currency)
    .bind(o.subtotal_minor)
    .bind(o.saga.as_str())
    .bind(o.saga_deadline.map(db::ts))
    .bind(db::ts(o.reserved_until))
    .bind(o.payment_last4)
    .bind(o.shipping_address.map(|a| a.to_string()))
    .bind(&placed)
    .bind(o.idempotency.map(|(key, _)| key))
    .bind(o.idempotency.map(|(_, fingerprint)| fingerprint))
    .execute(&mut *conn)
    .await?;
    let mut b = SqlBuilder::new(
        "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity, \
         discount_minor, line_total_minor) VALUES ",
    );
    for (i, (l, line_no)) in o.lines.iter().zip(1_i64..).enumerate() {
        let vals = [
            b.arg(Arg::Text(o.id.to_string())),
            b.arg(Arg::Int(line_no)),
            b.arg(Arg::Text(l.product_id.to_string())),
            b.arg(Arg::Text(l.sku.to_owned())),
            b.arg(Arg::Text(l.name.to_owned())),
            b.arg(Arg::Int(l.unit_price_minor)),
            b.arg(Arg::Int(l.quantity)),
            b.arg(Arg::Int(l.line_total_minor)),
        ];
        let [o, n, p, s, nm, u, q, t] = &vals;
        b.push(if i == 0 { "" } else { ", " });
        b.push(&format!("({o}, {n}, {p}, {s}, {nm}, {u}, {q}, 0, {t})"));
    }
    b.build().execute(&mut *conn).await?;
    Ok(())
}

impl NewOrder<'_> {
    /// The stock the order reserves, one entry per product, in the order of its lines.
    fn stock(&self) -> Result<Vec<StockLine>> {
        let mut stock: Vec<StockLine> = Vec::with_capacity(self.lines.len());
        for l in &self.lines {
            match stock.iter_mut().find(|s| s.product_id == l.product_id) {
                Some(s) => {
                    s.quantity = s
                        .quantity
                        .checked_add(l.quantity)
                        .ok_or_else(|| Error::Internal(anyhow::anyhow!("order quantity overflow")))?
                }
                None => stock.push(StockLine { product_id: l.product_id, sku: l.sku.to_owned(), quantity: l.quantity }),
            }
        }
        Ok(stock)
    }
}

/// Places order `o` in one step: reserves every line or none (409 `InsufficientStock` naming
/// the first short line, nothing written), inserts the order and its lines, and records
/// `placed` (its `order.placed` event) and `inventory.low` for each product left at or under
/// its threshold. `conn` is from [`Db::acquire_for_write`] (on SQLite it holds the write
/// permit). Errors: a unique violation on the idempotency key (see
/// [`super::idempotency::is_key_taken`]), with nothing written; `Database` otherwise.
pub(in crate::orders) async fn place(
    conn: &mut WriteConn,
    backend: Backend,
    o: &NewOrder<'_>,
    placed: Event,
) -> Result<()> {
    let stock = o.stock()?;
    if stock.iter().any(|l| l.quantity < 1) {
        return Err(Error::Internal(anyhow::anyhow!("an order line without units")));
    }
    if backend == Backend::Postgres {
        return pg::place(conn, o, &stock, &placed).await;
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let low = inventory::reserve_noting_low(&mut tx, &stock).await?;
    insert(&mut tx, o).await?;
    events::record(&mut tx, placed).await?;
    for l in low {
        events::record(&mut tx, Event::StockLow(l)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The SET and WHERE of the paid write, binding `$1` id, `$2` now, `$3` payment id, `$4`
/// paid, `$5` completed, `$6` pending_payment (see [`bind_paid`]).
macro_rules! paid_set {
    () => {
        "status = $4, paid_at = $2, updated_at = $2, reserved_until = NULL, payment_id = $3, \
         saga_state = $5, saga_deadline = NULL WHERE id = $1 AND status = $6"
    };
}
use paid_set;

/// `pending_payment → paid` for the charge `payment_id`, with `order.paid`, in one step, as
/// `transition::apply` would write it (paid_at, saga `completed`, reservation kept for
/// shipping, `reserved_until` cleared). Returns the paid order with its lines, or `None` when
/// the order is not (or no longer) waiting for payment: nothing is written then, and the
/// caller falls back to `transition::apply` to learn why.
pub(in crate::orders) async fn mark_paid(db: &Db, id: Uuid, payment_id: &str) -> Result<Option<Order>> {
    let paid = Event::OrderPaid(events::OrderPaid { order_id: id });
    if db.backend() == Backend::Postgres {
        return pg::mark_paid(db, id, payment_id, &paid).await;
    }
    let mut conn = db.acquire_for_write().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let sql = concat!("UPDATE orders SET ", paid_set!(), " RETURNING ", super::columns!());
    let row = bind_paid(sqlx::query(sql), id, payment_id).fetch_optional(&mut *tx).await?;
    if row.is_none() {
        return Ok(None);
    }
    events::record(&mut tx, paid).await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        super::o_columns!(),
        ", ",
        super::l_columns!(),
        " FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id WHERE o.id = $1 ORDER BY l.line_no"
    ))
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    with_lines(&rows)
}

fn bind_paid<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    id: Uuid,
    payment_id: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(id.to_string())
        .bind(db::now())
        .bind(payment_id)
        .bind(OrderStatus::Paid.as_str())
        .bind(SagaState::Completed.as_str())
        .bind(OrderStatus::PendingPayment.as_str())
}

/// The first entry of `stock` (in order) that `available` (units per product) cannot cover,
/// as 409 `InsufficientStock`; `None` if all are covered.
fn shortage(stock: &[StockLine], available: &[(Uuid, i64)]) -> Option<Error> {
    stock.iter().find_map(|l| {
        let have = available.iter().find(|(p, _)| *p == l.product_id).map_or(0, |(_, a)| *a);
        (have < l.quantity).then(|| Error::InsufficientStock {
            sku: l.sku.clone(),
            requested: l.quantity,
            available: have,
        })
    })
}
