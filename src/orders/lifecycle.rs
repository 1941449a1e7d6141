//! Transitions after checkout, as service operations: cancel, ship, deliver, refund. Each
//! authorizes its caller, then moves the order through [`transition::apply`] (state
//! machine, conditional UPDATE, stock, event in one transaction). Refund is a saga step of
//! its own ([`super::refund`]).

use uuid::Uuid;

use super::shipping::ShipRequest;
use super::store;
use super::transition::{self, Step};
use super::{Order, Orders, owner_filter};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::error::{Error, Result};
use crate::ratelimit::Class;

/// Cancels an unpaid order; its stock is released. The order's customer or staff (scope
/// `orders:write`); another customer's order is 404. Errors: 409 `invalid-transition`
/// naming the current status (paid, shipped, … or a lost race).
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn cancel(svc: &Orders, principal: &Principal, id: Uuid) -> Result<Order> {
    principal.admit(Class::Api).await?;
    let caller = principal.require(Scope::OrdersWrite)?;
    let order = store::find(&svc.db, id, owner_filter(&caller)).await?;
    let reason = if caller.id == order.customer_id { "cancelled_by_customer" } else { "cancelled_by_staff" };
    transition::apply(svc, id, Step::Cancelled { reason }).await?.map_err(Error::from)?;
    store::find(&svc.db, id, owner_filter(&caller)).await
}

/// Marks a paid order shipped, with the carrier and tracking number of `req` when given
/// (stored on the order, shown to its customer, carried by `order.shipped`); its reserved
/// stock leaves on-hand. Staff with scope `orders:write` (customers: 403). Errors: 404; 409
/// `invalid-transition` naming the current status, or `refund-in-progress` while a full
/// refund is claimed.
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn ship(svc: &Orders, principal: &Principal, id: Uuid, req: ShipRequest) -> Result<Order> {
    let step = Step::Shipped { carrier: req.carrier.as_ref(), tracking_number: req.tracking_number.as_ref() };
    staff_step(svc, principal, id, step).await
}

/// Marks a shipped order delivered. Staff with scope `orders:write` (customers: 403).
/// Errors: 404; 409 `invalid-transition` naming the current status.
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn deliver(svc: &Orders, principal: &Principal, id: Uuid) -> Result<Order> {
    staff_step(svc, principal, id, Step::Delivered).await
}

/// Refunds a paid, unshipped order in full: claims it, refunds the payment through the
/// gateway (after partial refunds, only the remainder), then settles it `refunded` and
/// releases its stock. Staff with scope `orders:write` (customers: 403). Errors: 404; 409
/// `invalid-transition` naming the current status (the gateway is then never called) or
/// `refund-in-progress` (a full or partial refund is in flight); 503 `Unavailable` when the
/// gateway does not answer (the recovery worker finishes the refund).
#[tracing::instrument(skip_all, fields(order.id = %id))]
pub async fn refund(svc: &Orders, principal: &Principal, id: Uuid) -> Result<Order> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::OrdersWrite)?;
    store::find(&svc.db, id, None).await?;
    super::refund::refund(svc, id).await?;
    store::find(&svc.db, id, None).await
}

async fn staff_step(svc: &Orders, principal: &Principal, id: Uuid, step: Step<'_>) -> Result<Order> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::OrdersWrite)?;
    store::find(&svc.db, id, None).await?;
    transition::apply(svc, id, step).await?.map_err(Error::from)?;
    store::find(&svc.db, id, None).await
}
