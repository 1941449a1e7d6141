//! Orders: what was bought, by whom, for how much, and where it is in its life.
//! `state` holds the state machine, `checkout` the saga that creates and pays orders,
//! `lifecycle` the later transitions, `recovery` the background workers.

pub mod checkout;
pub mod lifecycle;
mod pricing;
pub mod recovery;
pub mod state;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use state::OrderStatus;

use std::sync::Arc;

use crate::auth::scopes::Scope;
use crate::auth::{Actor, Principal};
use crate::config::{CheckoutConfig, Config};
use crate::db::{self, Arg, Db, SqlBuilder, Tx};
use crate::error::{Error, FieldError, Result};
use crate::flags::Flags;
use crate::inventory::StockLine;
use crate::pagination::{Cursor, Page, PageRequest};
use crate::payments::PaymentGateway;

/// The order service: checkout, reads, transitions, and the workers that finish sagas.
/// Holds only what orders need.
#[derive(Clone)]
pub struct Orders {
    pub(crate) db: Db,
    pub(crate) payments: Arc<dyn PaymentGateway>,
    pub(crate) flags: Arc<Flags>,
    pub(crate) checkout: CheckoutConfig,
    /// How long one gateway call may take (`payments.timeout_ms`).
    pub(crate) payment_timeout_ms: u64,
}

impl Orders {
    pub fn new(db: Db, payments: Arc<dyn PaymentGateway>, flags: Arc<Flags>, config: &Config) -> Self {
        Self { db, payments, flags, checkout: config.checkout.clone(), payment_timeout_ms: config.payments.timeout_ms }
    }
}

/// A line item: SKU, name and unit price as they were when the order was placed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineItem {
    pub line_no: i64,
    pub product_id: Option<Uuid>,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    pub discount_minor: i64,
    /// unit_price_minor × quantity − discount_minor.
    pub line_total_minor: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    /// Human-facing order number (`OL-…`, or the number it had where it was imported from).
    pub number: String,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    /// What the customer pays: computed by the server, never taken from the client.
    pub total_minor: i64,
    pub line_items: Vec<LineItem>,
    /// Last four digits of the card charged.
    pub payment_last4: Option<String>,
    /// Why the order failed or was cancelled (`card_declined`, `reservation_expired`, …).
    pub failure_reason: Option<String>,
    /// An unpaid order's stock is released at this time.
    pub reserved_until: Option<DateTime<Utc>>,
    pub ship_mode: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<serde_json::Value>,
    pub placed_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, number, customer_id, status, currency, subtotal_minor, discount_minor, total_minor, \
     payment_last4, failure_reason, reserved_until, ship_mode, shipping_address, placed_at, paid_at, \
     shipped_at, delivered_at, closed_at, updated_at";

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
        delivered_at: opt_ts(row, "delivered_at")?,
        closed_at: opt_ts(row, "closed_at")?,
        updated_at: db::parse_ts(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn line_from_row(row: &AnyRow) -> Result<(Uuid, LineItem), sqlx::Error> {
    let product: Option<String> = row.try_get("product_id")?;
    Ok((
        db::parse_id(&row.try_get::<String, _>("order_id")?)?,
        LineItem {
            line_no: row.try_get("line_no")?,
            product_id: product.as_deref().map(db::parse_id).transpose()?,
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            unit_price_minor: row.try_get("unit_price_minor")?,
            quantity: row.try_get("quantity")?,
            discount_minor: row.try_get("discount_minor")?,
            line_total_minor: row.try_get("line_total_minor")?,
        },
    ))
}

/// Fills in the line items of `orders` with one query (no N+1).
async fn attach_lines(db: &Db, orders: &mut [Order]) -> Result<()> {
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

/// An order as `principal` may see it (scope `orders:read`): a customer's view of another
/// customer's order is 404, exactly as if it did not exist.
pub async fn get(db: &Db, principal: &Principal, id: Uuid) -> Result<Order> {
    let caller = principal.require(Scope::OrdersRead)?;
    get_as(db, &caller, id).await
}

/// An order as `caller` may see it, once authorized.
pub(crate) async fn get_as(db: &Db, caller: &Actor, id: Uuid) -> Result<Order> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1 AND ($2 = '' OR customer_id = $2)");
    let owner = if caller.is_staff() { String::new() } else { caller.id.to_string() };
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(owner)
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("order"))?;
    let mut orders = vec![from_row(&row)?];
    attach_lines(db, &mut orders).await?;
    Ok(orders.remove(0))
}

/// Reads an order inside a transaction, without access checks (for the saga and workers).
pub(crate) async fn status_of(tx: &mut Tx, id: Uuid) -> Result<OrderStatus> {
    let s: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let s = s.ok_or(Error::NotFound("order"))?;
    OrderStatus::parse(&s).map_err(|e| Error::Internal(anyhow::anyhow!(e)))
}

/// The stock an order holds, one entry per product.
pub(crate) async fn stock_lines(tx: &mut Tx, id: Uuid) -> Result<Vec<StockLine>> {
    let rows =
        sqlx::query("SELECT product_id, sku, quantity FROM order_lines WHERE order_id = $1 AND product_id IS NOT NULL")
            .bind(id.to_string())
            .fetch_all(&mut **tx)
            .await?;
    let mut lines: Vec<StockLine> = Vec::with_capacity(rows.len());
    for r in &rows {
        let product_id = db::parse_id(&r.try_get::<String, _>("product_id")?)?;
        let quantity: i64 = r.try_get("quantity")?;
        match lines.iter_mut().find(|l| l.product_id == product_id) {
            Some(l) => l.quantity += quantity,
            None => lines.push(StockLine { product_id, sku: r.try_get("sku")?, quantity }),
        }
    }
    Ok(lines)
}

/// Order list filters. Customers always see only their own orders.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// Staff only: orders of this customer.
    pub customer_id: Option<Uuid>,
    /// Placed at or after this instant (RFC 3339).
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed before this instant (RFC 3339).
    pub placed_to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Orders newest first (scope `orders:read`). Customers see their own.
pub async fn list(db: &Db, principal: &Principal, f: &OrderFilter) -> Result<Page<Order>> {
    let caller = principal.require(Scope::OrdersRead)?;
    let page = PageRequest::parse(f.limit, f.cursor.as_deref(), "-placed_at").map_err(Error::Validation)?;
    let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM orders WHERE 1 = 1"));
    let customer = if caller.is_staff() {
        f.customer_id
    } else {
        if f.customer_id.is_some_and(|c| c != caller.id) {
            return Err(Error::Validation(vec![FieldError::new(
                "customer_id",
                "customers may list only their own orders",
            )]));
        }
        Some(caller.id)
    };
    if let Some(c) = customer {
        let a = b.arg(Arg::Text(c.to_string()));
        b.push(&format!(" AND customer_id = {a}"));
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
    let orders = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let mut page = page.finish(orders, |o| Cursor::text(db::ts(o.placed_at), o.id.to_string()));
    attach_lines(db, &mut page.items).await?;
    Ok(page)
}
