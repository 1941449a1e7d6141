//! PostgreSQL's checkout writes, one statement (one round trip, no `BEGIN`/`COMMIT`) each,
//! through the same `AnyPool` as everything else. Lines travel as one JSON text parameter
//! (`jsonb_to_recordset`), because the portable `Any` driver binds no arrays.
//!
//! Why one statement is safe: a statement is atomic on PostgreSQL (it commits or rolls back
//! whole), and its data-modifying CTEs run on one snapshot. The reservation first locks every
//! inventory row it needs (`FOR UPDATE`, in product-id order, so two checkouts cannot
//! deadlock) and reads their *latest* committed stock (READ COMMITTED re-reads a row after
//! waiting for its lock); only if every line is covered do the stock update and the inserts
//! run (each is guarded by `go.ok`), so a short order writes nothing and never oversells. The
//! schema's `CHECK (reserved <= on_hand)` backs this: an oversell would abort the statement.

use sqlx::AnyConnection;
use sqlx::Row;
use uuid::Uuid;

use super::{NewOrder, Order, bind_paid, paid_set, shortage};
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::events::{Event, StockLow};
use crate::inventory::StockLine;
use crate::orders::state::OrderStatus;

const PLACE_SQL: &str = "\
WITH want AS (
    SELECT w.p, w.q, w.e FROM jsonb_to_recordset($1::jsonb) AS w (p text, q bigint, e text)
),
locked AS MATERIALIZED (
    SELECT i.product_id, i.on_hand - i.reserved AS available FROM inventory i
    WHERE i.product_id IN (SELECT p FROM want) ORDER BY i.product_id FOR UPDATE
),
short AS (
    SELECT w.p, COALESCE(l.available, 0) AS available FROM want w LEFT JOIN locked l ON l.product_id = w.p
    WHERE l.product_id IS NULL OR l.available < w.q
),
go AS (SELECT NOT EXISTS (SELECT 1 FROM short) AS ok),
reserved AS (
    UPDATE inventory i SET reserved = i.reserved + w.q, updated_at = $2 FROM want w
    WHERE i.product_id = w.p AND (SELECT ok FROM go)
    RETURNING i.product_id, i.on_hand - i.reserved AS available, i.low_stock_threshold, w.e
),
placed AS (
    INSERT INTO orders (id, number, customer_id, status, currency, subtotal_minor, discount_minor, total_minor,
        saga_state, saga_deadline, reserved_until, payment_last4, shipping_address, placed_at, updated_at,
        idempotency_key, request_fingerprint)
    SELECT $3, $4, $5, $6, $7, $8, 0, $8, $9, $10, $11, $12, $13, $2, $2, $14, $15
    WHERE (SELECT ok FROM go)
    RETURNING id
),
lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity,
        discount_minor, line_total_minor)
    SELECT o.id, l.n, l.p, l.s, l.m, l.u, l.q, 0, l.t
    FROM placed o CROSS JOIN jsonb_to_recordset($16::jsonb) AS l (n bigint, p text, s text, m text, u bigint,
        q bigint, t bigint)
),
events AS (
    INSERT INTO outbox (id, event_type, event_version, aggregate_id, payload, created_at)
    SELECT $17, $18, $19, o.id, $20, $2 FROM placed o
    UNION ALL
    SELECT r.e, $21, $22, r.product_id,
        '{\"product_id\":\"' || r.product_id || '\",\"available\":' || r.available || '}', $2
    FROM reserved r WHERE r.available <= r.low_stock_threshold
)
SELECT 'short' AS outcome, s.p AS product_id, s.available FROM short s
UNION ALL
SELECT 'placed', o.id, 0 FROM placed o";

/// See [`super::place`]. `stock` has one entry per product, in the order of the lines.
pub(super) async fn place(
    conn: &mut AnyConnection,
    o: &NewOrder<'_>,
    stock: &[StockLine],
    placed: &Event,
) -> Result<()> {
    let mut want: Vec<&StockLine> = stock.iter().collect();
    want.sort_by_key(|l| l.product_id);
    // Each product carries the id of the `inventory.low` event it may need, generated after
    // the order's own event, so the outbox keeps the events in the order they happened.
    let placed_id = db::new_id();
    let want: Vec<serde_json::Value> = want
        .iter()
        .map(|l| serde_json::json!({ "p": l.product_id.to_string(), "q": l.quantity, "e": db::new_id().to_string() }))
        .collect();
    let lines: Vec<serde_json::Value> = o
        .lines
        .iter()
        .zip(1_i64..)
        .map(|(l, n)| {
            serde_json::json!({
                "n": n, "p": l.product_id.to_string(), "s": l.sku, "m": l.name,
                "u": l.unit_price_minor, "q": l.quantity, "t": l.line_total_minor,
            })
        })
        .collect();
    let payload = placed.payload_json().map_err(|e| Error::Internal(e.into()))?;
    let low = Event::StockLow(StockLow { product_id: Uuid::nil(), available: 0 });
    let rows = sqlx::query(PLACE_SQL)
        .bind(serde_json::Value::from(want).to_string())
        .bind(db::ts(o.placed_at))
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
        .bind(o.idempotency.map(|(key, _)| key))
        .bind(o.idempotency.map(|(_, fingerprint)| fingerprint))
        .bind(serde_json::Value::from(lines).to_string())
        .bind(placed_id.to_string())
        .bind(placed.event_type())
        .bind(i64::from(placed.version()))
        .bind(payload)
        .bind(low.event_type())
        .bind(i64::from(low.version()))
        .fetch_all(&mut *conn)
        .await?;
    let mut short = Vec::new();
    let mut was_placed = false;
    for r in &rows {
        let product = db::parse_id(&r.try_get::<String, _>("product_id")?)?;
        match r.try_get::<String, _>("outcome")?.as_str() {
            "placed" => was_placed = true,
            _ => short.push((product, r.try_get::<i64, _>("available")?)),
        }
    }
    if short.is_empty() && was_placed {
        return Ok(());
    }
    // The short products report what they have; every other product covered its line.
    let mut known: Vec<(Uuid, i64)> = stock
        .iter()
        .filter(|l| !short.iter().any(|(p, _)| *p == l.product_id))
        .map(|l| (l.product_id, l.quantity))
        .collect();
    known.extend(short);
    Err(shortage(stock, &known).unwrap_or_else(|| Error::Internal(anyhow::anyhow!("order {} was not placed", o.id))))
}

/// See [`super::mark_paid`]: the paid write, its event and the read of the order with its
/// lines, in one statement.
pub(super) async fn mark_paid(db: &Db, id: Uuid, payment_id: &str, paid: &Event) -> Result<Option<Order>> {
    let sql = concat!(
        "WITH o AS (UPDATE orders SET ",
        paid_set!(),
        " RETURNING ",
        crate::orders::store::columns!(),
        "), event AS (INSERT INTO outbox (id, event_type, event_version, aggregate_id, payload, created_at) \
         SELECT $7, $8, $9, o.id, $10, $2 FROM o) SELECT ",
        crate::orders::store::o_columns!(),
        ", ",
        crate::orders::store::l_columns!(),
        " FROM o LEFT JOIN order_lines l ON l.order_id = o.id ORDER BY l.line_no"
    );
    let payload = paid.payload_json().map_err(|e| Error::Internal(e.into()))?;
    let rows = bind_paid(sqlx::query(sql), id, payment_id)
        .bind(db::new_id().to_string())
        .bind(paid.event_type())
        .bind(i64::from(paid.version()))
        .bind(payload)
        .fetch_all(db.pool())
        .await?;
    crate::orders::store::with_lines(&rows)
}
