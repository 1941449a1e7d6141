//! Refunds of part of an order, by amount or by lines, as a saga step with the gateway:
//!
//! 1. **Claim**, in one transaction: the amount, with a conditional UPDATE of the order that
//!    can only succeed while Σ(claimed + settled refunds) + amount ≤ the total paid, and for
//!    a refund by lines each line's units, with a conditional UPDATE that keeps refunded
//!    units within the line's quantity; then a `claimed` refund row with a lease. Two
//!    concurrent refunds that together exceed the total: one claim fails, and its gateway is
//!    never called.
//! 2. **Refund** the amount through the gateway ([`PaymentGateway::refund_amount`]) with the
//!    refund's id as idempotency key.
//! 3. **Settle**, in one transaction: the row `settled`, the order's `refunded_minor`, stock
//!    and the `order.partially_refunded` event. When the refunds reach the total of a paid
//!    order, it moves to `refunded` through [`transition::apply`].
//!
//! A gateway that refuses gives the claim back (row `failed`). A crash or a gateway that
//! does not answer leaves the row `claimed`; past its lease the recovery worker calls the
//! gateway again with the same key (it answers with the first refund) and settles.
//!
//! **When**: paid, shipped and delivered orders (shops refund returned or missing items
//! after delivery); never while a full refund is claimed. The order keeps its status; the
//! state machine is unchanged (a shipped or delivered order refunded in full stays shipped
//! or delivered, with `refunded_minor = total_minor`).
//!
//! **Stock**: refunded lines of an order not yet shipped release their reserved units when
//! the refund settles (the shipment then ships only the rest). After shipping, stock does
//! not change: the units left with the parcel, and returns are out of scope.
//!
//! [`PaymentGateway::refund_amount`]: crate::payments::PaymentGateway::refund_amount

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Orders;
use super::cart::MAX_QUANTITY;
use super::state::{OrderStatus, SagaState, saga_lease};
use super::store;
use super::store::refunds::{self, LineCounter, RefundRow};
use super::transition::{self, Step};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::{self, Tx};
use crate::error::{Error, FieldError, Result};
use crate::events::{self, Event, OrderPartiallyRefunded, RefundedLine};
use crate::inventory::{self, StockLine};
use crate::payments::{GatewayError, RefundRequest};
use crate::ratelimit::Class;

/// Most lines in one refund.
pub const MAX_REFUND_LINES: usize = 100;

/// Units of one order line to refund.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLine {
    /// The order line's `line_no` (1, 2, …).
    #[schema(minimum = 1)]
    pub line_no: i64,
    /// Units, 1 to 1000, at most what the line has left to refund.
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// `POST /orders/{id}/refunds`: exactly one of `amount_minor` and `lines`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PartialRefundRequest)]
pub struct PartialRefundRequest {
    /// Refund this amount, in minor units of the order's currency (at least 1).
    #[schema(minimum = 1)]
    pub amount_minor: Option<i64>,
    /// Refund these units: each line's share is `line_total_minor × quantity ÷ line
    /// quantity`, rounded down (a whole line refunds its whole total). 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Option<Vec<RefundLine>>,
}

/// What a partial refund asks for, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundBy {
    /// An amount, in minor units, at least 1.
    Amount(i64),
    /// `(line_no, quantity)` pairs: distinct lines, quantities 1 to 1000.
    Lines(Vec<(i64, i64)>),
}

impl PartialRefundRequest {
    /// Every bad field at once (422): `amount_minor` (at least 1; exactly one of the two),
    /// `lines` (1 to 100), `lines[i].line_no` (at least 1, not twice), `lines[i].quantity`.
    pub fn parse(&self) -> Result<RefundBy> {
        match (self.amount_minor, &self.lines) {
            (Some(_), Some(_)) => Err(invalid("amount_minor", "give either amount_minor or lines, not both")),
            (None, None) => Err(invalid("amount_minor", "is required unless lines are given")),
            (Some(a), None) if a < 1 => Err(invalid("amount_minor", "must be at least 1")),
            (Some(a), None) => Ok(RefundBy::Amount(a)),
            (None, Some(lines)) => {
                if lines.is_empty() || lines.len() > MAX_REFUND_LINES {
                    return Err(invalid("lines", &format!("must list 1 to {MAX_REFUND_LINES} lines")));
                }
                let mut errors = Vec::new();
                for (i, l) in lines.iter().enumerate() {
                    if l.line_no < 1 {
                        errors.push(FieldError::new(format!("lines[{i}].line_no"), "must be at least 1"));
                    } else if lines[..i].iter().any(|o| o.line_no == l.line_no) {
                        errors.push(FieldError::new(format!("lines[{i}].line_no"), "is listed twice"));
                    }
                    if !(1..=MAX_QUANTITY).contains(&l.quantity) {
                        errors.push(FieldError::new(
                            format!("lines[{i}].quantity"),
                            format!("must be between 1 and {MAX_QUANTITY}"),
                        ));
                    }
                }
                if errors.is_empty() {
                    Ok(RefundBy::Lines(lines.iter().map(|l| (l.line_no, l.quantity)).collect()))
                } else {
                    Err(Error::Validation(errors))
                }
            }
        }
    }
}

fn invalid(field: &str, message: &str) -> Error {
    Error::Validation(vec![FieldError::new(field, message)])
}

/// A refund of part of an order. Amounts in minor units of the order's currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount_minor: i64,
    /// The lines refunded; empty for a refund by amount.
    pub lines: Vec<RefundLine>,
    /// `claimed` (the gateway has not confirmed yet), `settled` or `failed`.
    pub state: String,
    /// The gateway's id of the refund, once it confirmed.
    pub gateway_refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

impl From<RefundRow> for Refund {
    fn from(r: RefundRow) -> Self {
        Refund {
            id: r.id,
            order_id: r.order_id,
            amount_minor: r.amount_minor,
            lines: r.lines.iter().map(|&(line_no, quantity)| RefundLine { line_no, quantity }).collect(),
            state: r.state,
            gateway_refund_id: r.gateway_refund_id,
            created_at: r.created_at,
            settled_at: r.settled_at,
        }
    }
}

/// Refunds part of order `id` (see the module doc): staff with scope `orders:write`
/// (customers: 403; `api` rate-limit class). Returns the refund, `settled`.
///
/// Errors: 422 on the request's fields (see [`PartialRefundRequest::parse`]), or on
/// `lines[i].line_no` for a line the order does not have, or on `lines` when the lines are
/// worth nothing; 404; 409 `refund-exceeds-payment` when the amount would take the refunds
/// beyond the total paid, `refund-exceeds-quantity` when a line has fewer units left to
/// refund, `not-refundable` when the order is not paid, shipped or delivered,
/// `refund-in-progress` while a full refund is claimed (in every 409 case nothing is
/// written and the gateway is not called); 503 when the gateway does not answer (the
/// recovery worker finishes the refund); 500 when the gateway refuses (the claim is given
/// back).
#[tracing::instrument(skip_all, fields(order.id = %id, refund.id))]
pub async fn refund_part(svc: &Orders, principal: &Principal, id: Uuid, req: PartialRefundRequest) -> Result<Refund> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::OrdersWrite)?;
    let by = req.parse()?;
    store::find(&svc.db, id, None).await?;
    let refund_id = db::new_id();
    tracing::Span::current().record("refund.id", tracing::field::display(refund_id));
    let deadline = Utc::now() + saga_lease(svc.payment_timeout_ms);
    let claim = claim(svc, id, refund_id, &by, deadline).await?;
    pay_back_and_settle(svc, refund_id, claim).await?;
    Ok(refunds::get(&svc.db, refund_id).await?.into())
}

/// What step 2 needs.
struct Claim {
    amount_minor: i64,
    currency: String,
    payment_id: Option<String>,
}

/// Step 1, in one write transaction; any refusal rolls everything back.
async fn claim(svc: &Orders, id: Uuid, refund_id: Uuid, by: &RefundBy, deadline: DateTime<Utc>) -> Result<Claim> {
    let mut tx = svc.db.begin_write().await?;
    let (amount, lines) = match by {
        RefundBy::Amount(a) => (*a, Vec::new()),
        RefundBy::Lines(lines) => (lines_amount(&mut tx, id, lines).await?, lines.clone()),
    };
    let Some(order) = refunds::claim_amount(&mut tx, id, amount).await? else {
        return Err(why_refused(&mut tx, id).await?);
    };
    for (i, (line_no, quantity)) in lines.iter().enumerate() {
        if !refunds::advance_line(&mut tx, LineCounter::Refunded, id, *line_no, *quantity).await? {
            return Err(exceeds_quantity(i, *line_no, *quantity));
        }
    }
    refunds::insert(&mut tx, refund_id, id, amount, &lines, Some(deadline)).await?;
    tx.commit().await?;
    Ok(Claim { amount_minor: amount, currency: order.currency, payment_id: order.payment_id })
}

fn exceeds_quantity(i: usize, line_no: i64, quantity: i64) -> Error {
    Error::conflict(
        "refund-exceeds-quantity",
        format!("line {line_no} (lines[{i}]) has fewer than {quantity} units left to refund"),
    )
}

/// Σ each line's share of its total, rounded down; checked.
async fn lines_amount(tx: &mut Tx, id: Uuid, lines: &[(i64, i64)]) -> Result<i64> {
    let mut amount: i64 = 0;
    for (i, (line_no, quantity)) in lines.iter().enumerate() {
        let Some((line_quantity, line_total, _, _)) = refunds::line(tx, id, *line_no).await? else {
            return Err(invalid(&format!("lines[{i}].line_no"), "is not a line of this order"));
        };
        if *quantity > line_quantity {
            return Err(exceeds_quantity(i, *line_no, *quantity));
        }
        let share = i128::from(line_total.max(0)) * i128::from(*quantity) / i128::from(line_quantity.max(1));
        amount = i64::try_from(share)
            .ok()
            .and_then(|s| amount.checked_add(s))
            .ok_or_else(|| invalid("lines", "the refund's amount is too large"))?;
    }
    if amount < 1 {
        return Err(invalid("lines", "the lines refunded are worth nothing"));
    }
    Ok(amount)
}

/// Why the amount claim lost: the order's state, or the amount left.
async fn why_refused(tx: &mut Tx, id: Uuid) -> Result<Error> {
    let (status, saga) = store::state_of(tx, id).await?;
    let (claimed, total) = refunds::claimed_and_total(tx, id).await?;
    Ok(if !matches!(status, OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered) {
        Error::conflict("not-refundable", format!("an order that is {} cannot be refunded", status.as_str()))
    } else if saga == SagaState::Refunding {
        Error::conflict("refund-in-progress", "a refund of this order is in progress")
    } else {
        let left = total.saturating_sub(claimed).max(0);
        Error::conflict(
            "refund-exceeds-payment",
            format!("only {left} of the {total} paid (minor units) can still be refunded"),
        )
    })
}

/// Steps 2 and 3 for a claimed refund.
async fn pay_back_and_settle(svc: &Orders, refund_id: Uuid, claim: Claim) -> Result<()> {
    let Some(payment_id) = claim.payment_id else {
        // Paid outside orderly (an imported order): nothing to pay back through the gateway.
        return settle(svc, refund_id, None).await;
    };
    let req = RefundRequest {
        payment_id,
        idempotency_key: refund_id.to_string(),
        amount_minor: claim.amount_minor,
        currency: claim.currency,
    };
    let timeout = Duration::from_millis(svc.payment_timeout_ms);
    let outcome = match tokio::time::timeout(timeout, svc.payments.refund_amount(req)).await {
        Ok(r) => r,
        Err(_) => Err(GatewayError::Unavailable("timed out".into())),
    };
    match outcome {
        Ok(receipt) => settle(svc, refund_id, Some(&receipt.refund_id)).await,
        // Not sent (breaker open) or outcome unknown: the claim stays for recovery.
        Err(why @ (GatewayError::Unavailable(_) | GatewayError::Shed { .. })) => {
            tracing::warn!(refund.id = %refund_id, reason = %why, "refund outcome unknown; recovery will finish it");
            Err(Error::Unavailable("the payment gateway did not answer; the refund will be retried"))
        }
        Err(GatewayError::Rejected(why)) => {
            let mut tx = svc.db.begin_write().await?;
            if let Some(row) = refunds::finish(&mut tx, refund_id, false, None).await? {
                refunds::release_claim(&mut tx, &row).await?;
            }
            tx.commit().await?;
            Err(Error::Internal(anyhow::anyhow!("the payment gateway refused the refund: {why}")))
        }
    }
}

/// Step 3: settles the refund once (a second call finds it settled and does nothing).
async fn settle(svc: &Orders, refund_id: Uuid, gateway_refund_id: Option<&str>) -> Result<()> {
    let mut tx = svc.db.begin_write().await?;
    let Some(row) = refunds::finish(&mut tx, refund_id, true, gateway_refund_id).await? else {
        return Ok(());
    };
    let (status, refunded, total) = refunds::add_refunded(&mut tx, row.order_id, row.amount_minor).await?;
    let stock_released = status.holds_reservation() && !row.lines.is_empty();
    let mut stock = Vec::new();
    if stock_released {
        for &(line_no, quantity) in &row.lines {
            if !refunds::advance_line(&mut tx, LineCounter::Released, row.order_id, line_no, quantity).await? {
                return Err(Error::Internal(anyhow::anyhow!("line {line_no} holds fewer than {quantity} units")));
            }
            if let Some((_, _, Some(product_id), sku)) = refunds::line(&mut tx, row.order_id, line_no).await? {
                stock.push(StockLine { product_id, sku, quantity });
            }
        }
        inventory::release(&mut tx, &stock).await?;
    }
    let event = OrderPartiallyRefunded {
        order_id: row.order_id,
        refund_id,
        amount_minor: row.amount_minor,
        refunded_minor: refunded,
        lines: row.lines.iter().map(|&(line_no, quantity)| RefundedLine { line_no, quantity }).collect(),
        stock_released,
    };
    events::record(&mut tx, Event::OrderPartiallyRefunded(event)).await?;
    tx.commit().await?;
    if !stock.is_empty() {
        let ids: Vec<Uuid> = stock.iter().map(|l| l.product_id).collect();
        svc.cache.products_changed(&ids).await;
    }
    if status == OrderStatus::Paid && refunded == total {
        // Losing this (a full refund or a racing settle moved first) is fine: either way
        // the order ends refunded.
        let _ = transition::apply(svc, row.order_id, Step::RefundedInParts).await?;
    }
    Ok(())
}

/// Finishes partial refunds left `claimed` past their lease (a crash, or a gateway that did
/// not answer): each is claimed by renewing its lease, refunded again under its own key, and
/// settled. Returns how many were resolved.
pub(crate) async fn recover(svc: &Orders, limit: i64) -> Result<usize> {
    let mut resolved = 0;
    for (refund_id, old) in refunds::past_lease(&svc.db, limit).await? {
        let lease = Utc::now() + saga_lease(svc.payment_timeout_ms);
        if !refunds::renew_lease(&svc.db, refund_id, &old, lease).await? {
            continue;
        }
        let row = refunds::get(&svc.db, refund_id).await?;
        let (currency, payment_id) = refunds::payment_of(&svc.db, row.order_id).await?;
        let claim = Claim { amount_minor: row.amount_minor, currency, payment_id };
        match pay_back_and_settle(svc, refund_id, claim).await {
            Ok(()) => {
                resolved += 1;
                tracing::info!(refund.id = %refund_id, order.id = %row.order_id, "interrupted refund resolved");
            }
            Err(e) => tracing::warn!(refund.id = %refund_id, error = %e, "refund recovery will retry"),
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(amount: Option<i64>, lines: Option<Vec<(i64, i64)>>) -> PartialRefundRequest {
        PartialRefundRequest {
            amount_minor: amount,
            lines: lines.map(|l| l.into_iter().map(|(line_no, quantity)| RefundLine { line_no, quantity }).collect()),
        }
    }

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::Validation(f) => f.into_iter().map(|f| f.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_refund_is_by_amount_or_by_lines_never_both_or_neither() {
        assert_eq!(req(Some(5), None).parse().unwrap(), RefundBy::Amount(5));
        assert_eq!(req(None, Some(vec![(1, 2)])).parse().unwrap(), RefundBy::Lines(vec![(1, 2)]));
        assert_eq!(fields(req(Some(5), Some(vec![(1, 1)])).parse().unwrap_err()), ["amount_minor"]);
        assert_eq!(fields(req(None, None).parse().unwrap_err()), ["amount_minor"]);
        assert_eq!(fields(req(Some(0), None).parse().unwrap_err()), ["amount_minor"]);
        assert_eq!(fields(req(Some(-3), None).parse().unwrap_err()), ["amount_minor"]);
    }

    #[test]
    fn bad_lines_are_all_named_at_once() {
        assert_eq!(fields(req(None, Some(vec![])).parse().unwrap_err()), ["lines"]);
        let bad = req(None, Some(vec![(0, 1), (2, 0), (2, 1001)])).parse().unwrap_err();
        assert_eq!(fields(bad), ["lines[0].line_no", "lines[1].quantity", "lines[2].line_no", "lines[2].quantity"]);
    }
}
