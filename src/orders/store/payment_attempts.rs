//! Payment attempts on an order (migration 0011): each charge of an order is one attempt,
//! numbered from 1, with its own provider idempotency key; a declined attempt returns the
//! order to waiting for payment with the next number. See `orders::checkout`.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::orders::state::{OrderStatus, SagaState};

/// Claims the next payment of an order waiting for one (`pending_payment`, saga
/// `awaiting_payment` → `charging` with a lease until `deadline`), recording the card's last
/// four digits. Returns the attempt's number, or `None` if the order was not waiting.
pub(in crate::orders) async fn claim(db: &Db, id: Uuid, deadline: DateTime<Utc>, last4: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE orders SET saga_state = $1, saga_deadline = $2, payment_last4 = $3, updated_at = $4 \
         WHERE id = $5 AND status = $6 AND saga_state = $7 RETURNING payment_attempt",
    )
    .bind(SagaState::Charging.as_str())
    .bind(db::ts(deadline))
    .bind(last4)
    .bind(db::now())
    .bind(id.to_string())
    .bind(OrderStatus::PendingPayment.as_str())
    .bind(SagaState::AwaitingPayment.as_str())
    .fetch_optional(db.pool())
    .await?)
}

/// Ends a charge that moved no money, leaving the order payable again (saga `charging` →
/// `awaiting_payment`, lease cleared) while it is still `pending_payment`. A declined attempt
/// (`declined`) moves on to the next attempt number, and when it was the checkout's own
/// charge (`from_checkout`) its decline code is kept for replays. Returns whether the order
/// was still charging and waiting.
pub(in crate::orders) async fn reopen(db: &Db, id: Uuid, declined: Option<&str>, from_checkout: bool) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE orders SET saga_state = $1, saga_deadline = NULL, payment_attempt = payment_attempt + $2, \
         checkout_decline_code = COALESCE($3, checkout_decline_code), updated_at = $4 \
         WHERE id = $5 AND status = $6 AND saga_state = $7",
    )
    .bind(SagaState::AwaitingPayment.as_str())
    .bind(i64::from(declined.is_some()))
    .bind(declined.filter(|_| from_checkout))
    .bind(db::now())
    .bind(id.to_string())
    .bind(OrderStatus::PendingPayment.as_str())
    .bind(SagaState::Charging.as_str())
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The order's current (or next) attempt number and the decline code of its checkout's own
/// charge, if that was declined.
pub(in crate::orders) async fn current(db: &Db, id: Uuid) -> Result<(i64, Option<String>)> {
    let row = sqlx::query("SELECT payment_attempt, checkout_decline_code FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("order"))?;
    Ok((row.try_get("payment_attempt")?, row.try_get("checkout_decline_code")?))
}
