//! The checkout saga.
//!
//! 1. Validate and price the cart from the catalog (client prices and totals are never used).
//! 2. In one transaction: reserve stock (conditional decrement), insert the order and its
//!    line items, record `order.placed`. With a card, the order starts in saga state
//!    `charging` with a deadline, so a crash from here on is recoverable.
//! 3. Charge through the [`PaymentGateway`] with the order id as idempotency key.
//! 4. Mark paid (`order.paid`). If the gateway declines or fails: compensate — release the
//!    reservation, mark the order `failed` (`order.failed`); if the order was cancelled or
//!    expired while the charge ran, void the charge.
//!
//! Without a card the order waits in `awaiting_payment` until paid (`pay`) or until its
//! reservation expires.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::Orders;
use super::pricing::{PricedLine, price};
use super::{Order, OrderStatus};
use crate::auth::scopes::Scope;
use crate::auth::{Actor, Principal};
use crate::catalog::Sku;
use crate::db::{self, Arg, SqlBuilder};
use crate::error::{Error, FieldError, Result};
use crate::events::{self, Event, OrderFailed, OrderPaid, OrderPlaced};
use crate::inventory::{self, StockLine};
use crate::payments::{CardNumber, ChargeOutcome, ChargeRequest, GatewayError, PaymentRecord};
use crate::ratelimit::Class;

/// Largest quantity of one SKU in one order.
pub const MAX_QUANTITY: i64 = 1_000;
/// Most distinct line items in one order.
pub const MAX_LINES: usize = 100;

/// A validated cart line.
#[derive(Debug, Clone)]
pub struct CartLine {
    pub sku: Sku,
    pub quantity: i64,
}

#[derive(Debug)]
pub struct CheckoutRequest {
    pub lines: Vec<CartLine>,
    pub card: Option<CardNumber>,
    pub shipping_address: Option<serde_json::Value>,
}

/// A new human-facing order number: `OL-` and 12 hex digits of the id's random part.
fn order_number(id: Uuid) -> String {
    let hex = id.simple().to_string().to_uppercase();
    format!("OL-{}", &hex[20..])
}

/// Places an order for `customer` and, if a card is given, pays it. Returns the order in
/// its resulting state; a declined payment is `Error::PaymentDeclined` (the order exists,
/// `failed`, its stock released).
///
/// Needs an authenticated caller with scope `orders:write`; draws from the `checkout`
/// rate-limit class.
#[tracing::instrument(skip_all, fields(customer.id, order.id))]
pub async fn place_order(svc: &Orders, principal: &Principal, req: CheckoutRequest) -> Result<Order> {
    let customer = principal.require(Scope::OrdersWrite)?;
    tracing::Span::current().record("customer.id", tracing::field::display(customer.id));
    principal.admit(Class::Checkout).await?;
    if req.lines.is_empty() {
        return Err(Error::Validation(vec![FieldError::new("line_items", "must not be empty")]));
    }
    if req.lines.len() > MAX_LINES {
        return Err(Error::Validation(vec![FieldError::new("line_items", format!("at most {MAX_LINES} lines"))]));
    }
    if req.shipping_address.is_none() && svc.flags.is_enabled(crate::flags::REQUIRE_SHIPPING_ADDRESS) {
        return Err(Error::Validation(vec![FieldError::new("shipping_address", "is required")]));
    }
    let (lines, currency) = price(svc, &req.lines).await?;
    let subtotal: i64 = lines.iter().map(|l| l.unit_price_minor * l.quantity).sum();
    let id = db::new_id();
    tracing::Span::current().record("order.id", tracing::field::display(id));
    reserve(svc, &customer, id, &req, &lines, &currency, subtotal).await?;
    crate::metrics::order_placed(&currency);

    if let Some(card) = req.card {
        charge(svc, id, subtotal, currency, card).await?;
    }
    super::get_as(&svc.db, &customer, id).await
}

/// Step 2: in one transaction, reserves the stock and records the order, its lines and
/// `order.placed`.
#[tracing::instrument(name = "checkout.reserve", skip_all, fields(order.id = %id, order.subtotal_minor = subtotal))]
async fn reserve(
    svc: &Orders,
    customer: &Actor,
    id: Uuid,
    req: &CheckoutRequest,
    lines: &[PricedLine],
    currency: &str,
    subtotal: i64,
) -> Result<()> {
    let now = Utc::now();
    let reserved_until =
        now + chrono::Duration::seconds(i64::try_from(svc.checkout.reservation_ttl_secs).unwrap_or(900));
    let charging = req.card.is_some();

    let stock: Vec<StockLine> = lines
        .iter()
        .map(|l| StockLine { product_id: l.product_id, sku: l.sku.clone(), quantity: l.quantity })
        .collect();
    let mut tx = svc.db.begin_write().await?;
    inventory::reserve(&mut tx, &stock).await?;
    sqlx::query(
        "INSERT INTO orders (id, number, customer_id, status, currency, subtotal_minor, discount_minor, total_minor, \
         saga_state, saga_deadline, reserved_until, payment_last4, shipping_address, placed_at, updated_at) \
         VALUES ($1, $2, $3, 'pending_payment', $4, $5, 0, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(id.to_string())
    .bind(order_number(id))
    .bind(customer.id.to_string())
    .bind(currency)
    .bind(subtotal)
    .bind(if charging { "charging" } else { "awaiting_payment" })
    .bind(charging.then(|| db::ts(now + saga_lease(svc))))
    .bind(db::ts(reserved_until))
    .bind(req.card.as_ref().map(|c| c.last4().to_owned()))
    .bind(req.shipping_address.as_ref().map(|a| a.to_string()))
    .bind(db::ts(now))
    .execute(&mut *tx)
    .await?;
    let mut b = SqlBuilder::new(
        "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity, \
         discount_minor, line_total_minor) VALUES ",
    );
    for (i, l) in lines.iter().enumerate() {
        let vals = [
            b.arg(Arg::Text(id.to_string())),
            b.arg(Arg::Int(i as i64 + 1)),
            b.arg(Arg::Text(l.product_id.to_string())),
            b.arg(Arg::Text(l.sku.clone())),
            b.arg(Arg::Text(l.name.clone())),
            b.arg(Arg::Int(l.unit_price_minor)),
            b.arg(Arg::Int(l.quantity)),
            b.arg(Arg::Int(l.unit_price_minor * l.quantity)),
        ];
        let [o, n, p, s, nm, u, q, t] = &vals;
        b.push(if i == 0 { "" } else { ", " });
        b.push(&format!("({o}, {n}, {p}, {s}, {nm}, {u}, {q}, 0, {t})"));
    }
    b.build().execute(&mut *tx).await?;
    let placed =
        OrderPlaced { order_id: id, customer_id: customer.id, total_minor: subtotal, currency: currency.into() };
    events::record(&mut tx, Event::OrderPlaced(placed)).await?;
    let products: Vec<Uuid> = stock.iter().map(|l| l.product_id).collect();
    inventory::record_if_low(&mut tx, &products).await?;
    tx.commit().await?;
    Ok(())
}

/// Pays an order waiting for payment. 409 if it is not waiting (already paid, being paid,
/// cancelled, …).
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn pay(svc: &Orders, principal: &Principal, id: Uuid, card: CardNumber) -> Result<Order> {
    let caller = principal.require(Scope::OrdersWrite)?;
    principal.admit(Class::Checkout).await?;
    let order = super::get_as(&svc.db, &caller, id).await?;
    let deadline = db::ts(Utc::now() + saga_lease(svc));
    let claimed = sqlx::query(
        "UPDATE orders SET saga_state = 'charging', saga_deadline = $1, payment_last4 = $2, updated_at = $3 \
         WHERE id = $4 AND status = 'pending_payment' AND saga_state = 'awaiting_payment'",
    )
    .bind(&deadline)
    .bind(card.last4())
    .bind(db::now())
    .bind(id.to_string())
    .execute(svc.db.pool())
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(if order.status == OrderStatus::PendingPayment {
            Error::conflict("payment-in-progress", "a payment for this order is already in progress")
        } else {
            Error::InvalidTransition { from: order.status.as_str(), to: OrderStatus::Paid.as_str() }
        });
    }
    charge(svc, id, order.total_minor, order.currency, card).await?;
    super::get_as(&svc.db, &caller, id).await
}

/// How long a saga may sit in `charging` before recovery takes it over: twice the gateway
/// timeout, so the original attempt has certainly given up.
fn saga_lease(svc: &Orders) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(svc.payment_timeout_ms.saturating_mul(2)).unwrap_or(i64::MAX))
}

/// Step 3 and 4 (or compensation). An unknown outcome (gateway timeout) leaves the saga in
/// `charging` for the recovery worker, and the order is returned as `pending_payment`.
#[tracing::instrument(name = "checkout.charge", skip_all, fields(order.id = %id, payment.amount_minor = amount_minor))]
async fn charge(svc: &Orders, id: Uuid, amount_minor: i64, currency: String, card: CardNumber) -> Result<()> {
    let req = ChargeRequest { idempotency_key: id.to_string(), amount_minor, currency, card };
    let timeout = Duration::from_millis(svc.payment_timeout_ms);
    let outcome = match tokio::time::timeout(timeout, svc.payments.charge(req)).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::Unavailable("timed out".into())),
    };
    match outcome {
        Ok(ChargeOutcome::Succeeded { payment_id }) => {
            match finish_paid(svc, id, &payment_id).await? {
                Settled::Paid => crate::metrics::saga_outcome("paid"),
                Settled::Voided => crate::metrics::saga_outcome("compensated"),
                Settled::AlreadyPaid => {}
            }
            Ok(())
        }
        Ok(ChargeOutcome::Declined { code, .. }) => {
            fail(svc, id, &code).await?;
            crate::metrics::saga_outcome("declined");
            Err(Error::PaymentDeclined { order_id: id, decline_code: code })
        }
        Err(GatewayError::Rejected(why)) => {
            tracing::warn!(order.id = %id, reason = %why, "payment rejected by the gateway");
            fail(svc, id, "payment_rejected").await?;
            crate::metrics::saga_outcome("rejected");
            Err(Error::PaymentDeclined { order_id: id, decline_code: "payment_rejected".into() })
        }
        Err(GatewayError::Unavailable(why)) => {
            tracing::warn!(order.id = %id, reason = %why, "payment outcome unknown; recovery will resolve it");
            crate::metrics::saga_outcome("unknown");
            Ok(())
        }
    }
}

/// Resolves a saga whose charge outcome was unknown, from what the gateway remembers.
#[tracing::instrument(name = "checkout.recover", skip_all, fields(order.id = %id))]
pub(crate) async fn resolve_from_gateway(svc: &Orders, id: Uuid) -> Result<()> {
    let record = svc.payments.lookup(id.to_string()).await.map_err(|e| Error::Internal(e.into()))?;
    let outcome = match record {
        Some(PaymentRecord::Succeeded { payment_id }) => match finish_paid(svc, id, &payment_id).await? {
            Settled::Paid => "recovered_paid",
            Settled::Voided => "compensated",
            Settled::AlreadyPaid => return Ok(()),
        },
        Some(PaymentRecord::Declined { code, .. }) => {
            fail(svc, id, &code).await?;
            "recovered_failed"
        }
        Some(PaymentRecord::Reversed { .. }) | None => {
            fail(svc, id, "payment_interrupted").await?;
            "recovered_failed"
        }
    };
    crate::metrics::saga_outcome(outcome);
    Ok(())
}

/// How a successful charge was settled: paid by this call, already paid by another attempt,
/// or voided because the order had stopped waiting (cancelled, expired).
enum Settled {
    Paid,
    AlreadyPaid,
    Voided,
}

/// Step 4: paid. If the order stopped waiting meanwhile (cancelled, expired), the charge is
/// voided instead: compensation.
#[tracing::instrument(name = "checkout.finish_paid", skip_all, fields(order.id = %id, payment.id = %payment_id))]
async fn finish_paid(svc: &Orders, id: Uuid, payment_id: &str) -> Result<Settled> {
    let now = db::now();
    let mut tx = svc.db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE orders SET status = 'paid', saga_state = 'completed', saga_deadline = NULL, reserved_until = NULL, \
         payment_id = $1, paid_at = $2, updated_at = $2 WHERE id = $3 AND status = 'pending_payment'",
    )
    .bind(payment_id)
    .bind(&now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        events::record(&mut tx, Event::OrderPaid(OrderPaid { order_id: id })).await?;
        tx.commit().await?;
        return Ok(Settled::Paid);
    }
    let status = super::status_of(&mut tx, id).await?;
    end_saga(&mut tx, id).await?;
    tx.commit().await?;
    if status == OrderStatus::Paid {
        return Ok(Settled::AlreadyPaid);
    }
    tracing::warn!(order.id = %id, order.status = status.as_str(), "charged an order that stopped waiting; voiding");
    svc.payments.void(payment_id.to_owned()).await.map_err(|e| Error::Internal(e.into()))?;
    Ok(Settled::Voided)
}

/// Closes a saga that another path already settled (the order was cancelled, expired or
/// paid meanwhile), so recovery never picks it up again.
async fn end_saga(tx: &mut db::Tx, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE orders SET saga_state = 'compensated', saga_deadline = NULL WHERE id = $1 AND saga_state = 'charging'",
    )
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Compensation: the order fails and its reservation is released, once.
#[tracing::instrument(name = "checkout.fail", skip_all, fields(order.id = %id, order.failure_reason = reason))]
async fn fail(svc: &Orders, id: Uuid, reason: &str) -> Result<()> {
    let now = db::now();
    let mut tx = svc.db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE orders SET status = 'failed', saga_state = 'compensated', saga_deadline = NULL, reserved_until = NULL, \
         failure_reason = $1, closed_at = $2, updated_at = $2 WHERE id = $3 AND status = 'pending_payment'",
    )
    .bind(reason)
    .bind(&now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        let lines = super::stock_lines(&mut tx, id).await?;
        inventory::release(&mut tx, &lines).await?;
        events::record(&mut tx, Event::OrderFailed(OrderFailed { order_id: id, reason: reason.to_owned() })).await?;
    } else {
        end_saga(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_short_and_distinct() {
        let a = order_number(Uuid::now_v7());
        let b = order_number(Uuid::now_v7());
        assert!(a.starts_with("OL-") && a.len() == 15, "{a}");
        assert_ne!(a, b);
    }
}
