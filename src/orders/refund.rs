//! Refund as a saga step, so that money goes back only for an order that ends `refunded`:
//!
//! 1. **Claim**: `paid` with no refund in flight (full or partial) → saga `refunding`, with
//!    a lease ([`saga_lease`]), and the rest of the total claimed. While claimed, no other
//!    transition (ship) and no partial refund can win. A refund that loses this race
//!    (shipped first, refunded by someone else) stops here: the gateway is never called.
//! 2. **Refund** through the gateway: the whole charge; or, when partial refunds came first
//!    (`super::partial_refund`), the remainder with its own idempotency key (the
//!    remainder's refund id); or nothing when partial refunds already paid everything back.
//! 3. **Settle** `paid → refunded` through [`transition::apply`] (stock released, event).
//!
//! A crash between 1 and 3 leaves the saga `refunding` past its deadline; the recovery
//! worker then [`resume`]s it: a remainder is refunded again with the same key (the gateway
//! answers with the first refund); otherwise, if the gateway already shows the charge
//! reversed, it only settles; else it refunds (same payment id) and settles.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::Orders;
use super::state::{OrderStatus, SagaState, saga_lease};
use super::store;
use super::store::refunds;
use super::transition::{self, Refused, Step};
use crate::error::{Error, Result};
use crate::payments::{GatewayError, PaymentRecord, RefundRequest};

/// Claims, refunds and settles order `id` (no authorization: the caller did it).
pub(super) async fn refund(svc: &Orders, id: Uuid) -> Result<()> {
    let deadline = Utc::now() + saga_lease(svc.payment_timeout_ms);
    let Some(remainder_minor) = refunds::claim_full(&svc.db, id, deadline).await? else {
        let (current, saga) = store::current_state(&svc.db, id).await?;
        if current == OrderStatus::Paid && saga != SagaState::Refunding {
            // Paid and not claimed: a partial refund is in flight.
            return Err(Error::conflict("refund-in-progress", "a refund of this order is in progress"));
        }
        return Err(Refused { current, saga, to: OrderStatus::Refunded }.into());
    };
    if remainder_minor == 0 {
        return settle(svc, id).await;
    }
    pay_back_and_settle(svc, id).await
}

/// Step 2 and 3 for a claimed order.
async fn pay_back_and_settle(svc: &Orders, id: Uuid) -> Result<()> {
    if let Some(payment_id) = store::payment_id(&svc.db, id).await? {
        let timeout = Duration::from_millis(svc.payment_timeout_ms);
        let call = async {
            match refunds::remainder_of(&svc.db, id).await? {
                Some((refund_id, amount_minor)) => {
                    let (currency, _) = refunds::payment_of(&svc.db, id).await?;
                    let req =
                        RefundRequest { payment_id, idempotency_key: refund_id.to_string(), amount_minor, currency };
                    let made = svc.payments.refund_amount(req).await;
                    if let Ok(receipt) = &made {
                        refunds::set_gateway_id(&svc.db, refund_id, &receipt.refund_id).await?;
                    }
                    Ok::<_, Error>(made.map(|_| ()))
                }
                None => Ok(svc.payments.refund(payment_id).await),
            }
        };
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(r) => r?,
            Err(_) => Err(GatewayError::Unavailable("timed out".into())),
        };
        match outcome {
            Ok(()) => {}
            // Not sent (breaker open) or outcome unknown: the claim stays for recovery.
            Err(why @ (GatewayError::Unavailable(_) | GatewayError::Shed { .. })) => {
                tracing::warn!(order.id = %id, reason = %why, "refund outcome unknown; recovery will finish it");
                return Err(Error::Unavailable("the payment gateway did not answer; the refund will be retried"));
            }
            Err(GatewayError::Rejected(why)) => {
                // A definite no: give the claim back so the order can move on (or be retried).
                refunds::give_back_full(&svc.db, id).await?;
                return Err(Error::Internal(anyhow::anyhow!("the payment gateway refused the refund: {why}")));
            }
        }
    }
    settle(svc, id).await
}

/// Step 3: `paid → refunded`. Cannot lose while the claim holds; if it does, it says why.
async fn settle(svc: &Orders, id: Uuid) -> Result<()> {
    transition::apply(svc, id, Step::Refunded).await?.map_err(Error::from)
}

/// Finishes a refund whose process stopped between claim and settle (the recovery worker
/// holds its renewed lease). A remainder is refunded again under its own key (idempotent).
/// Else a gateway that already shows the charge reversed is not asked again, so a gateway
/// whose refund is not idempotent is safe too.
#[tracing::instrument(name = "refund.recover", skip_all, fields(order.id = %id))]
pub(crate) async fn resume(svc: &Orders, id: Uuid) -> Result<()> {
    if refunds::remainder_of(&svc.db, id).await?.is_some() {
        return pay_back_and_settle(svc, id).await;
    }
    if refunds::refunded_in_full(&svc.db, id).await? {
        return settle(svc, id).await;
    }
    let record = svc.payments.lookup(id.to_string()).await.map_err(|e| Error::Internal(e.into()))?;
    match record {
        Some(PaymentRecord::Reversed { .. }) => settle(svc, id).await,
        _ => pay_back_and_settle(svc, id).await,
    }
}
