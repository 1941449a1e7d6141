//! Transitions after checkout: cancel, ship, deliver, refund. Each is checked against the
//! state machine, applied with a conditional UPDATE (so two racing transitions cannot both
//! win), moves stock as the new state requires, and records its event.

use uuid::Uuid;

use super::Orders;
use super::{Order, OrderStatus};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db;
use crate::error::{Error, Result};
use crate::events::{self, Event, OrderTransitioned};
use crate::inventory;

/// Moves order `id` to `to` on behalf of `caller`.
///
/// Who may: `cancelled` — the order's customer or staff; `shipped`, `delivered`,
/// `refunded` — staff. `paid` and `failed` are reached only through the checkout saga.
/// Errors: 404 (not the caller's order), 403 (role), 409 `invalid-transition` naming the
/// current status.
#[tracing::instrument(skip_all, fields(order.id = %id, order.to = to.as_str()))]
pub async fn transition(svc: &Orders, principal: &Principal, id: Uuid, to: OrderStatus) -> Result<Order> {
    let caller = principal.require(Scope::OrdersWrite)?;
    let order = super::get_as(&svc.db, &caller, id).await?;
    match to {
        OrderStatus::Cancelled => {}
        OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Refunded => {
            principal.require_staff(Scope::OrdersWrite)?;
        }
        OrderStatus::Paid | OrderStatus::Failed | OrderStatus::PendingPayment => {
            return Err(Error::InvalidTransition { from: order.status.as_str(), to: to.as_str() });
        }
    }
    let from = order.status;
    from.check(to)?;

    if to == OrderStatus::Refunded {
        let payment_id: Option<String> = sqlx::query_scalar("SELECT payment_id FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(svc.db.pool())
            .await?;
        if let Some(pid) = payment_id {
            svc.payments.refund(pid).await.map_err(|e| Error::Internal(e.into()))?;
        }
    }

    let (ts_col, reason) = match to {
        OrderStatus::Shipped => ("shipped_at", None),
        OrderStatus::Delivered => ("delivered_at", None),
        OrderStatus::Cancelled => (
            "closed_at",
            Some(if caller.id == order.customer_id { "cancelled_by_customer" } else { "cancelled_by_staff" }),
        ),
        _ => ("closed_at", None),
    };
    let now = db::now();
    let mut tx = svc.db.begin_write().await?;
    let sql = format!(
        "UPDATE orders SET status = $1, {ts_col} = $2, updated_at = $2, reserved_until = NULL, \
         failure_reason = COALESCE($3, failure_reason) WHERE id = $4 AND status = $5"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(to.as_str())
        .bind(&now)
        .bind(reason)
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        // Someone else moved it first; report the state it is in now.
        let current = super::status_of(&mut tx, id).await?;
        return Err(Error::InvalidTransition { from: current.as_str(), to: to.as_str() });
    }
    let lines = super::stock_lines(&mut tx, id).await?;
    match to {
        OrderStatus::Cancelled | OrderStatus::Refunded if from.holds_reservation() => {
            inventory::release(&mut tx, &lines).await?
        }
        OrderStatus::Shipped => inventory::ship(&mut tx, &lines).await?,
        _ => {}
    }
    let payload = OrderTransitioned { order_id: id, from: from.as_str().to_owned(), reason: reason.map(str::to_owned) };
    let event = match to {
        OrderStatus::Cancelled => Event::OrderCancelled(payload),
        OrderStatus::Shipped => Event::OrderShipped(payload),
        OrderStatus::Delivered => Event::OrderDelivered(payload),
        _ => Event::OrderRefunded(payload),
    };
    events::record(&mut tx, event).await?;
    tx.commit().await?;
    super::get_as(&svc.db, &caller, id).await
}
