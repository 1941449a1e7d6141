//! The one function every order status change goes through: the checkout saga's paid and
//! failed, reservation expiry, recovery, and cancel, ship, deliver and refund (in full, or
//! when partial refunds reach a paid order's total).

use uuid::Uuid;

use super::shipping::{Carrier, TrackingNumber};
use super::state::{OrderStatus, SagaState};
use super::store::{self, Guard, SagaWrite, StatusWrite};
use super::{Order, Orders};
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::events::{self, Event, OrderFailed, OrderPaid, OrderShipped, OrderTransitioned};
use crate::inventory::{self, StockLine};

/// A status change, with what it carries.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// The charge succeeded (checkout, `pay`, recovery): `pending_payment → paid`.
    Paid {
        /// The gateway's id of the charge, kept for the refund.
        payment_id: &'a str,
    },
    /// The charge was refused or interrupted, or payments were unavailable at checkout (a
    /// declined card leaves the order payable instead): `pending_payment → failed`, stock
    /// released.
    Failed {
        /// `payments_unavailable`, `payment_rejected`, `payment_interrupted`, …
        reason: &'a str,
    },
    /// The reservation expired unpaid (no charge in flight): `pending_payment → cancelled`,
    /// reason `reservation_expired`, stock released.
    Expired,
    /// The customer or staff cancelled: `pending_payment → cancelled`, stock released.
    Cancelled {
        /// `cancelled_by_customer` or `cancelled_by_staff`.
        reason: &'a str,
    },
    /// `paid → shipped`: the reserved stock (less units a partial refund released) leaves
    /// on-hand. Refused while a full refund is in flight.
    Shipped {
        /// Stored on the order and carried by `order.shipped`.
        carrier: Option<&'a Carrier>,
        tracking_number: Option<&'a TrackingNumber>,
    },
    /// `shipped → delivered`.
    Delivered,
    /// The refund claimed before (saga `refunding`) was paid back: `paid → refunded`, stock
    /// released, the whole total counted refunded.
    Refunded,
    /// Partial refunds settled the whole total of a paid order (none in flight, no full
    /// refund claimed): `paid → refunded`, the remaining stock released.
    RefundedInParts,
}

impl Step<'_> {
    /// The status this step moves to.
    pub fn target(&self) -> OrderStatus {
        match self {
            Step::Paid { .. } => OrderStatus::Paid,
            Step::Failed { .. } => OrderStatus::Failed,
            Step::Expired | Step::Cancelled { .. } => OrderStatus::Cancelled,
            Step::Shipped { .. } => OrderStatus::Shipped,
            Step::Delivered => OrderStatus::Delivered,
            Step::Refunded | Step::RefundedInParts => OrderStatus::Refunded,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Step::Failed { reason } | Step::Cancelled { reason } => Some(reason),
            Step::Expired => Some("reservation_expired"),
            _ => None,
        }
    }

    /// What else must hold in the saga for this step to apply.
    fn guard(&self) -> Guard {
        match self {
            Step::Expired => Guard::ReservationExpired,
            Step::Shipped { .. } => Guard::SagaIsNot(SagaState::Refunding),
            Step::Refunded => Guard::SagaIs(SagaState::Refunding),
            Step::RefundedInParts => Guard::RefundedInParts,
            _ => Guard::None,
        }
    }

    fn saga_write(&self) -> SagaWrite {
        match self {
            Step::Paid { .. } | Step::Refunded => SagaWrite::Set(SagaState::Completed),
            Step::Failed { .. } | Step::Expired => SagaWrite::Set(SagaState::Compensated),
            Step::Cancelled { .. } => SagaWrite::EndUnlessCharging,
            Step::Shipped { .. } | Step::Delivered | Step::RefundedInParts => SagaWrite::Keep,
        }
    }

    fn admits(&self, saga: SagaState) -> bool {
        match self.guard() {
            Guard::SagaIs(s) => saga == s,
            Guard::SagaIsNot(s) => saga != s,
            Guard::ReservationExpired => saga == SagaState::AwaitingPayment,
            // The amounts are checked by the conditional write itself.
            Guard::RefundedInParts => saga != SagaState::Refunding,
            Guard::None => true,
        }
    }
}

/// A transition that did not happen: the state machine does not allow it from the order's
/// current state, or another transition won the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The order's status now.
    pub current: OrderStatus,
    /// Its saga state now.
    pub saga: SagaState,
    /// The status that was asked for.
    pub to: OrderStatus,
}

impl From<Refused> for Error {
    /// 409: `refund-in-progress` when a claimed refund blocks the move (a second refund
    /// included), else
    /// `invalid-transition` naming the current status.
    fn from(r: Refused) -> Error {
        if r.current == OrderStatus::Paid && r.saga == SagaState::Refunding {
            Error::conflict("refund-in-progress", "a refund of this order is in progress")
        } else {
            Error::InvalidTransition { from: r.current.as_str(), to: r.to.as_str() }
        }
    }
}

/// Applies `step` to order `id`, in one transaction: checks the move against the state
/// machine ([`OrderStatus::check`]) from the order's current status, writes it with a
/// conditional `UPDATE … WHERE id = $ AND status = <current>` (plus the step's saga guard),
/// sets the new status's timestamp (`paid_at`, `shipped_at`, `delivered_at`, else
/// `closed_at`) and saga state, settles stock (release on cancelled, failed and refunded
/// while reserved; ship on shipped), and records the step's event.
///
/// No authorization: the service operations decide who may ask for which step.
///
/// Returns `Ok(Err(Refused))` when the move is illegal from the current state or another
/// transition won (nothing written); `Err(NotFound)` for no such order, `Err(Database)`
/// otherwise.
#[tracing::instrument(name = "orders.transition", skip_all, fields(order.id = %id, order.to = step.target().as_str()))]
pub async fn apply(svc: &Orders, id: Uuid, step: Step<'_>) -> Result<Result<(), Refused>> {
    let mut tx = svc.db.begin_write().await?;
    let stock_moved = match apply_in(&mut tx, id, step).await? {
        Ok(moved) => moved,
        Err(refused) => return Ok(Err(refused)),
    };
    tx.commit().await?;
    if let Some(lines) = stock_moved {
        let products: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
        svc.cache.products_changed(&products).await;
    }
    Ok(Ok(()))
}

/// [`apply`] inside the caller's transaction (the batch operations, `crate::batch`, run
/// many in one): returns the stock lines it moved, whose products' cached reads the caller
/// invalidates after its commit. On `Ok(Err(Refused))` nothing was written.
pub(crate) async fn apply_in(tx: &mut Tx, id: Uuid, step: Step<'_>) -> Result<Result<Option<Vec<StockLine>>, Refused>> {
    let to = step.target();
    let (from, saga) = store::state_of(tx, id).await?;
    if from.check(to).is_err() || !step.admits(saga) {
        return Ok(Err(Refused { current: from, saga, to }));
    }
    let write = StatusWrite {
        from,
        to,
        at_column: match to {
            OrderStatus::Paid => "paid_at",
            OrderStatus::Shipped => "shipped_at",
            OrderStatus::Delivered => "delivered_at",
            _ => "closed_at",
        },
        saga: step.saga_write(),
        guard: step.guard(),
        reason: step.reason(),
        payment_id: match step {
            Step::Paid { payment_id } => Some(payment_id),
            _ => None,
        },
        carrier: match step {
            Step::Shipped { carrier, .. } => carrier,
            _ => None,
        },
        tracking_number: match step {
            Step::Shipped { tracking_number, .. } => tracking_number,
            _ => None,
        },
        refunded_in_full: matches!(step, Step::Refunded),
    };
    if !store::write_status(tx, id, &write).await? {
        // Someone else moved it first (or the guard no longer holds): report the state now.
        let (current, saga) = store::state_of(tx, id).await?;
        return Ok(Err(Refused { current, saga, to }));
    }
    let stock_moved = match to {
        OrderStatus::Cancelled | OrderStatus::Failed | OrderStatus::Refunded if from.holds_reservation() => {
            let lines = store::stock_lines(tx, id).await?;
            inventory::release(tx, &lines).await?;
            Some(lines)
        }
        OrderStatus::Shipped => {
            let lines = store::stock_lines(tx, id).await?;
            inventory::ship(tx, &lines).await?;
            Some(lines)
        }
        _ => None,
    };
    if let Step::Refunded = step {
        store::refunds::settle_remainder(tx, id).await?;
    }
    let moved =
        || OrderTransitioned { order_id: id, from: from.as_str().to_owned(), reason: step.reason().map(str::to_owned) };
    let event = match step {
        Step::Paid { .. } => Event::OrderPaid(OrderPaid { order_id: id }),
        Step::Failed { reason } => Event::OrderFailed(OrderFailed { order_id: id, reason: reason.to_owned() }),
        Step::Expired | Step::Cancelled { .. } => Event::OrderCancelled(moved()),
        Step::Shipped { carrier, tracking_number } => Event::OrderShipped(OrderShipped {
            order_id: id,
            from: from.as_str().to_owned(),
            carrier: carrier.map(|c| c.as_str().to_owned()),
            tracking_number: tracking_number.map(|t| t.as_str().to_owned()),
        }),
        Step::Delivered => Event::OrderDelivered(moved()),
        Step::Refunded | Step::RefundedInParts => Event::OrderRefunded(moved()),
    };
    events::record(tx, event).await?;
    Ok(Ok(stock_moved))
}

/// [`Step::Paid`] for the charge `payment_id`, as [`apply`] makes it, but written in one step
/// that also returns the paid order with its lines (`store::mark_paid`: one statement on
/// PostgreSQL), so checkout does not read it again. `pending_payment` is the only status
/// that may become `paid` and the step has no saga guard, so a conditional write on
/// `status = 'pending_payment'` is the whole check; when it does not apply, [`apply`] runs
/// and reports why (`Refused`).
#[tracing::instrument(name = "orders.transition", skip_all, fields(order.id = %id, order.to = "paid"))]
pub async fn paid(svc: &Orders, id: Uuid, payment_id: &str) -> Result<Result<Order, Refused>> {
    debug_assert!(OrderStatus::PendingPayment.check(OrderStatus::Paid).is_ok());
    if let Some(order) = store::mark_paid(&svc.db, id, payment_id).await? {
        return Ok(Ok(order));
    }
    Ok(match apply(svc, id, Step::Paid { payment_id }).await? {
        Ok(()) => Ok(store::find(&svc.db, id, None).await?),
        Err(refused) => Err(refused),
    })
}
