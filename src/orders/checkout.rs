//! The checkout saga.
//!
//! 1. Parse the request ([`CheckoutRequest::parse`]: every bad field at once), then validate
//!    and price the cart from the catalog (client prices and totals are never used).
//! 2. In one transaction: reserve stock (conditional decrement), insert the order and its
//!    line items, record `order.placed`. With a card, the order starts in saga state
//!    `charging` with a deadline, so a crash from here on is recoverable.
//! 3. Charge through the [`crate::payments::PaymentGateway`], with the payment attempt's
//!    idempotency key ([`attempt_key`]: the order id for the first attempt).
//! 4. Mark paid (`order.paid`). A declined card leaves the order `pending_payment`, its
//!    saga back in `awaiting_payment` with the next attempt number, so that `pay` with
//!    another card can succeed until the reservation expires (Stripe's PaymentIntents:
//!    `requires_payment_method`). If the gateway refuses the request, or is not called
//!    at checkout because its breaker is open: compensate — release the reservation, mark
//!    the order `failed` (`order.failed`). If the order was cancelled or expired while the
//!    charge ran, void the charge. Status changes go through [`transition::apply`].
//!
//! Without a card the order waits in `awaiting_payment` until paid (`pay`) or until its
//! reservation expires.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::Orders;
use super::cart::{CheckoutRequest, PaymentRequest, parse_card};
use super::pricing::{Priced, price};
use super::state::{OrderStatus, SagaState, saga_lease};
use super::store::{self, NewLine, NewOrder};
use super::transition::{self, Step};
use super::{Order, owner_filter};
use crate::auth::scopes::Scope;
use crate::auth::{Actor, Principal};
use crate::db::{self, WriteConn};
use crate::error::{Error, FieldError, Result};
use crate::events::{Event, OrderPlaced};
use crate::payments::{CardNumber, ChargeOutcome, ChargeRequest, GatewayError, PaymentRecord};
use crate::ratelimit::Class;

/// A new human-facing order number: `OL-` and 12 hex digits of the id's random part.
fn order_number(id: Uuid) -> String {
    let hex = id.simple().to_string().to_uppercase();
    format!("OL-{}", &hex[20..])
}

/// Places an order for the calling customer and, if a card is given, pays it. Returns the
/// order in its resulting state (`paid`, or `pending_payment` without a card or while the
/// charge's outcome is unknown).
///
/// Draws from the `checkout` rate-limit class; needs an authenticated caller with scope
/// `orders:write`. Errors: 422 `Validation` naming every bad field of `req` at once (see
/// [`CheckoutRequest::parse`]), then every bad line against the catalog, or a total beyond
/// `i64`; 409 `InsufficientStock`; 402 `PaymentDeclined` (the order exists, still
/// `pending_payment` and payable with another card); 503 `PaymentsUnavailable` (the payment
/// provider's breaker is open or its calls are saturated: the order exists, `failed` with
/// reason `payments_unavailable`, its stock released). Nothing is written before the cart
/// is valid and priced.
#[tracing::instrument(skip_all, fields(customer.id, order.id))]
pub async fn place_order(svc: &Orders, principal: &Principal, req: CheckoutRequest) -> Result<Order> {
    principal.admit(Class::Checkout).await?;
    let customer = principal.require(Scope::OrdersWrite)?;
    tracing::Span::current().record("customer.id", tracing::field::display(customer.id));
    let checkout = req.parse()?;
    if checkout.shipping_address.is_none() && svc.flags.is_enabled(crate::flags::REQUIRE_SHIPPING_ADDRESS) {
        return Err(Error::Validation(vec![FieldError::new("shipping_address", "is required")]));
    }
    let fingerprint = checkout.fingerprint();
    let key = checkout.idempotency_key.as_ref().map(|k| k.as_str());
    // Steps 1 and 2 share one connection: one pool acquisition (and one release) for the
    // idempotency lookup, the price lookup and the reservation (on SQLite, with the write
    // permit held throughout: see `Db::write_permit`).
    let mut conn = svc.db.acquire_for_write().await?;
    if let Some(key) = key
        && let Some(first) = store::idempotency::find(&mut conn, customer.id, key).await?
    {
        drop(conn);
        return replay(svc, &customer, first, &fingerprint).await;
    }
    let priced = price(&mut conn, checkout.cart.lines()).await?;
    let id = db::new_id();
    tracing::Span::current().record("order.id", tracing::field::display(id));
    let card = checkout.card;
    let address = checkout.shipping_address.as_ref().map(|a| a.as_json());
    let idempotency = key.map(|k| (k, fingerprint.as_str()));
    let reserved = reserve(svc, &mut conn, customer.id, id, card.as_ref(), address, &priced, idempotency).await;
    drop(conn);
    match reserved {
        Err(Error::Database(e)) if key.is_some() && store::idempotency::is_key_taken(&e) => {
            // A concurrent request with the same key won the insert: answer as its retry.
            let key = key.unwrap_or_default();
            let first = store::idempotency::find(&mut *svc.db.acquire().await?, customer.id, key).await?;
            return match first {
                Some(first) => replay(svc, &customer, first, &fingerprint).await,
                None => Err(Error::Database(e)),
            };
        }
        other => other?,
    }
    crate::metrics::order_placed(&priced.currency);
    // After the commit and with the connection (SQLite's write permit) released.
    let products: Vec<Uuid> = priced.lines.iter().map(|l| l.product_id).collect();
    svc.cache.products_changed(&products).await;

    if let Some(card) = card
        && let Some(paid) =
            charge(svc, id, Attempt { number: 1, from_checkout: true }, priced.subtotal_minor, priced.currency, card)
                .await?
    {
        // The paid write returned the order: no read after it.
        return Ok(paid);
    }
    store::find(&svc.db, id, owner_filter(&customer)).await
}

/// The answer to a checkout retried with an idempotency key that already created `first`
/// (its order id and request fingerprint): the same answer as the first time (the order, the
/// same 402 if the card was declined, even if the order was paid with another card since, or
/// the same 503 if payments were unavailable), 422 on `Idempotency-Key` if the request
/// differs, 409 `idempotency-key-in-use` while the first request is still charging.
async fn replay(svc: &Orders, customer: &Actor, first: (Uuid, String), fingerprint: &str) -> Result<Order> {
    let (id, first_fingerprint) = first;
    if first_fingerprint != fingerprint {
        return Err(Error::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "was already used for a different checkout; use a new key for a new order",
        )]));
    }
    let order = store::find(&svc.db, id, owner_filter(customer)).await?;
    let (_, saga) = store::current_state(&svc.db, id).await?;
    if saga == SagaState::Charging {
        return Err(Error::conflict(
            "idempotency-key-in-use",
            "the first request with this Idempotency-Key is still being processed; retry shortly",
        ));
    }
    if let (_, Some(decline_code)) = store::payment_attempts::current(&svc.db, id).await? {
        return Err(Error::PaymentDeclined { order_id: id, decline_code });
    }
    match (order.status, order.failure_reason.as_deref()) {
        (OrderStatus::Failed, Some(PAYMENTS_UNAVAILABLE)) => {
            Err(Error::PaymentsUnavailable { order_id: Some(id), retry_after_secs: 1 })
        }
        // Orders declined before migration 0011 failed with the decline code.
        (OrderStatus::Failed, Some(code)) if code != "payment_interrupted" => {
            Err(Error::PaymentDeclined { order_id: id, decline_code: code.to_owned() })
        }
        _ => Ok(order),
    }
}

/// Step 2: in one transaction, reserves the stock and records the order, its lines and
/// `order.placed`. With a card the saga starts in `charging` under a lease.
#[tracing::instrument(name = "checkout.reserve", skip_all, fields(order.id = %id, order.subtotal_minor = priced.subtotal_minor))]
#[allow(clippy::too_many_arguments)]
async fn reserve(
    svc: &Orders,
    conn: &mut WriteConn,
    customer_id: Uuid,
    id: Uuid,
    card: Option<&CardNumber>,
    shipping_address: Option<&serde_json::Value>,
    priced: &Priced,
    idempotency: Option<(&str, &str)>,
) -> Result<()> {
    let now = Utc::now();
    let ttl = i64::try_from(svc.checkout.reservation_ttl_secs).unwrap_or(900).clamp(0, 366 * 86_400);
    let order = NewOrder {
        id,
        number: order_number(id),
        customer_id,
        currency: &priced.currency,
        subtotal_minor: priced.subtotal_minor,
        saga: if card.is_some() { SagaState::Charging } else { SagaState::AwaitingPayment },
        saga_deadline: card.is_some().then(|| now + saga_lease(svc.payment_timeout_ms)),
        reserved_until: now + chrono::Duration::seconds(ttl),
        payment_last4: card.map(CardNumber::last4),
        shipping_address,
        idempotency,
        placed_at: now,
        lines: priced
            .lines
            .iter()
            .map(|l| NewLine {
                product_id: l.product_id,
                sku: &l.sku,
                name: &l.name,
                unit_price_minor: l.unit_price_minor,
                quantity: l.quantity,
                line_total_minor: l.line_total_minor,
            })
            .collect(),
    };
    let placed = OrderPlaced {
        order_id: id,
        customer_id,
        total_minor: priced.subtotal_minor,
        currency: priced.currency.clone(),
    };
    store::place(conn, svc.db.backend(), &order, Event::OrderPlaced(placed)).await?;
    Ok(())
}

/// Pays an order waiting for payment with the card of `req` (field `card_number`): a new
/// payment attempt, with its own idempotency key ([`attempt_key`]).
///
/// Draws from the `checkout` rate-limit class; needs scope `orders:write`; a customer may
/// pay only their own orders (404 otherwise). Errors: 422 (card), 404, 409
/// `payment-in-progress` (another payment is running) or `invalid-transition` (not
/// waiting: paid, cancelled, …), 402 `PaymentDeclined` and 503 `PaymentsUnavailable` (both
/// leave the order payable).
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn pay(svc: &Orders, principal: &Principal, id: Uuid, req: PaymentRequest) -> Result<Order> {
    principal.admit(Class::Checkout).await?;
    let caller = principal.require(Scope::OrdersWrite)?;
    let card = parse_card(&req, "card_number")?;
    let order = store::find(&svc.db, id, owner_filter(&caller)).await?;
    let deadline = Utc::now() + saga_lease(svc.payment_timeout_ms);
    let Some(number) = store::payment_attempts::claim(&svc.db, id, deadline, card.last4()).await? else {
        return Err(if order.status == OrderStatus::PendingPayment {
            Error::conflict("payment-in-progress", "a payment for this order is already in progress")
        } else {
            Error::InvalidTransition { from: order.status.as_str(), to: OrderStatus::Paid.as_str() }
        });
    };
    match charge(svc, id, Attempt { number, from_checkout: false }, order.total_minor, order.currency, card).await? {
        Some(paid) => Ok(paid),
        None => store::find(&svc.db, id, owner_filter(&caller)).await,
    }
}

/// The failure reason of an order whose checkout found the payment provider unavailable
/// (breaker open, calls saturated).
const PAYMENTS_UNAVAILABLE: &str = "payments_unavailable";

/// One payment attempt on an order: its number (from 1) and whether it is the checkout's
/// own charge (whose decline a retried checkout replays).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    number: i64,
    from_checkout: bool,
}

/// The provider idempotency key of payment attempt `number` on order `id`: the order id for
/// the first attempt (as before attempts existed), `<order id>:<number>` after. Each attempt
/// needs its own key: the provider replays the first outcome of a key, so a second card
/// under the first key would get the first card's decline back.
pub(crate) fn attempt_key(id: Uuid, number: i64) -> String {
    if number <= 1 { id.to_string() } else { format!("{id}:{number}") }
}

/// Step 3 and 4 (or compensation). Returns the order when this call marked it paid (the paid
/// write returns it), `None` otherwise. An unknown outcome (gateway timeout) leaves the saga
/// in `charging` for the recovery worker, and the order is returned as `pending_payment`.
#[tracing::instrument(name = "checkout.charge", skip_all, fields(order.id = %id, payment.attempt = attempt.number, payment.amount_minor = amount_minor))]
async fn charge(
    svc: &Orders,
    id: Uuid,
    attempt: Attempt,
    amount_minor: i64,
    currency: String,
    card: CardNumber,
) -> Result<Option<Order>> {
    let req = ChargeRequest { idempotency_key: attempt_key(id, attempt.number), amount_minor, currency, card };
    let timeout = Duration::from_millis(svc.payment_timeout_ms);
    let outcome = match tokio::time::timeout(timeout, svc.payments.charge(req)).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::Unavailable("timed out".into())),
    };
    match outcome {
        Ok(ChargeOutcome::Succeeded { payment_id }) => Ok(match finish_paid(svc, id, &payment_id).await? {
            Settled::Paid(order) => {
                crate::metrics::saga_outcome("paid");
                Some(*order)
            }
            Settled::Voided => {
                crate::metrics::saga_outcome("compensated");
                None
            }
            Settled::AlreadyPaid => None,
        }),
        Ok(ChargeOutcome::Declined { code, .. }) => {
            declined(svc, id, &code, attempt.from_checkout).await?;
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
            Ok(None)
        }
        Err(GatewayError::Shed { reason, retry_after_secs }) => {
            // Nothing was sent: a checkout compensates, a `pay` leaves the order payable.
            tracing::warn!(order.id = %id, reason, "payment provider not called");
            if attempt.from_checkout {
                fail(svc, id, PAYMENTS_UNAVAILABLE).await?;
            } else if !store::payment_attempts::reopen(&svc.db, id, None, false).await? {
                end_saga(svc, id).await?;
            }
            crate::metrics::saga_outcome("shed");
            Err(Error::PaymentsUnavailable { order_id: Some(id), retry_after_secs })
        }
    }
}

/// A declined attempt: the order waits for payment again, with the next attempt number; if
/// it stopped waiting meanwhile (cancelled, expired), the saga just ends.
#[tracing::instrument(name = "checkout.declined", skip_all, fields(order.id = %id, payment.decline_code = code))]
async fn declined(svc: &Orders, id: Uuid, code: &str, from_checkout: bool) -> Result<()> {
    if !store::payment_attempts::reopen(&svc.db, id, Some(code), from_checkout).await? {
        end_saga(svc, id).await?;
    }
    Ok(())
}

/// Resolves a saga whose charge outcome was unknown, from what the gateway remembers of the
/// current attempt's key: paid, payable again (declined), or compensated (never received).
#[tracing::instrument(name = "checkout.recover", skip_all, fields(order.id = %id))]
pub(crate) async fn resolve_from_gateway(svc: &Orders, id: Uuid) -> Result<()> {
    let (number, _) = store::payment_attempts::current(&svc.db, id).await?;
    let key = attempt_key(id, number);
    let record = svc.payments.lookup(key).await.map_err(|e| match e {
        // Expected while the breaker is open: recovery tries again later.
        GatewayError::Shed { retry_after_secs, .. } => {
            Error::PaymentsUnavailable { order_id: Some(id), retry_after_secs }
        }
        e => Error::Internal(e.into()),
    })?;
    let outcome = match record {
        Some(PaymentRecord::Succeeded { payment_id }) => match finish_paid(svc, id, &payment_id).await? {
            Settled::Paid(_) => "recovered_paid",
            Settled::Voided => "compensated",
            Settled::AlreadyPaid => return Ok(()),
        },
        Some(PaymentRecord::Declined { code, .. }) => {
            // The checkout (or `pay`) already answered; its answer was not this decline.
            declined(svc, id, &code, false).await?;
            "recovered_declined"
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
    /// With the paid order, as the paid write returned it.
    Paid(Box<Order>),
    AlreadyPaid,
    Voided,
}

/// Step 4: paid, through [`transition::apply`]. If the order stopped waiting meanwhile
/// (cancelled, expired), the charge is voided instead: compensation.
#[tracing::instrument(name = "checkout.finish_paid", skip_all, fields(order.id = %id, payment.id = %payment_id))]
async fn finish_paid(svc: &Orders, id: Uuid, payment_id: &str) -> Result<Settled> {
    let refused = match transition::paid(svc, id, payment_id).await? {
        Ok(order) => return Ok(Settled::Paid(Box::new(order))),
        Err(refused) => refused,
    };
    end_saga(svc, id).await?;
    if refused.current == OrderStatus::Paid {
        return Ok(Settled::AlreadyPaid);
    }
    tracing::warn!(order.id = %id, order.status = refused.current.as_str(), "charged an order that stopped waiting; voiding");
    svc.payments.void(payment_id.to_owned()).await.map_err(|e| Error::Internal(e.into()))?;
    Ok(Settled::Voided)
}

/// Closes a charge that another path already settled (the order was cancelled, expired or
/// paid meanwhile), so recovery never picks it up again.
async fn end_saga(svc: &Orders, id: Uuid) -> Result<()> {
    store::move_saga(&svc.db, id, None, SagaState::Charging, SagaState::Compensated, None, None).await?;
    Ok(())
}

/// Compensation, through [`transition::apply`]: the order fails and its reservation is
/// released, once.
#[tracing::instrument(name = "checkout.fail", skip_all, fields(order.id = %id, order.failure_reason = reason))]
async fn fail(svc: &Orders, id: Uuid, reason: &str) -> Result<()> {
    if transition::apply(svc, id, Step::Failed { reason }).await?.is_err() {
        end_saga(svc, id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attempt_keeps_the_order_id_as_its_key() {
        let id = Uuid::now_v7();
        assert_eq!(attempt_key(id, 1), id.to_string());
        assert_eq!(attempt_key(id, 2), format!("{id}:2"));
        assert_ne!(attempt_key(id, 2), attempt_key(id, 3));
    }

    #[test]
    fn order_numbers_are_short_and_distinct() {
        let a = order_number(Uuid::now_v7());
        let b = order_number(Uuid::now_v7());
        assert!(a.starts_with("OL-") && a.len() == 15, "{a}");
        assert_ne!(a, b);
    }
}
