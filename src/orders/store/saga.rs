//! The saga's SQL outside transactions: moving a saga between states under a lease, and
//! what the recovery and expiry workers look for.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{STATE_SQL, state_from};
use crate::db::{self, Db};
use crate::error::Result;
use crate::orders::state::{OrderStatus, SagaState};

/// Moves the saga `from → to` with a lease until `deadline` (or none), if it is in `from`
/// and the order is in `status` (any status if `None`); records the card's last four digits
/// when given. Returns whether this call won.
pub(in crate::orders) async fn move_saga(
    db: &Db,
    id: Uuid,
    status: Option<OrderStatus>,
    from: SagaState,
    to: SagaState,
    deadline: Option<DateTime<Utc>>,
    last4: Option<&str>,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE orders SET saga_state = $1, saga_deadline = $2, payment_last4 = COALESCE($3, payment_last4), \
         updated_at = $4 WHERE id = $5 AND ($6 = '' OR status = $6) AND saga_state = $7",
    )
    .bind(to.as_str())
    .bind(deadline.map(db::ts))
    .bind(last4)
    .bind(db::now())
    .bind(id.to_string())
    .bind(status.map(OrderStatus::as_str).unwrap_or_default())
    .bind(from.as_str())
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The order's status and saga state, outside a transaction.
pub(in crate::orders) async fn current_state(db: &Db, id: Uuid) -> Result<(OrderStatus, SagaState)> {
    let row = sqlx::query(STATE_SQL).bind(id.to_string()).fetch_optional(db.pool()).await?;
    state_from(row)
}

/// The gateway's id of the order's charge, if it was paid through the gateway.
pub(in crate::orders) async fn payment_id(db: &Db, id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT payment_id FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .flatten())
}

/// Up to `limit` orders whose saga sits in `state` past its deadline, oldest deadline
/// first, with that deadline (the claim token for [`renew_lease`]).
pub(in crate::orders) async fn past_lease(db: &Db, state: SagaState, limit: i64) -> Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query(
        "SELECT id, saga_deadline FROM orders WHERE saga_state = $1 AND saga_deadline < $2 \
         ORDER BY saga_deadline LIMIT $3",
    )
    .bind(state.as_str())
    .bind(db::now())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok((db::parse_id(&r.try_get::<String, _>("id")?)?, r.try_get("saga_deadline")?))).collect()
}

/// Takes over a lapsed lease: moves the deadline from `old` to `new` only if nobody else
/// did first. Returns whether this call won.
pub(in crate::orders) async fn renew_lease(
    db: &Db,
    id: Uuid,
    state: SagaState,
    old: &str,
    new: DateTime<Utc>,
) -> Result<bool> {
    let n =
        sqlx::query("UPDATE orders SET saga_deadline = $1 WHERE id = $2 AND saga_state = $3 AND saga_deadline = $4")
            .bind(db::ts(new))
            .bind(id.to_string())
            .bind(state.as_str())
            .bind(old)
            .execute(db.pool())
            .await?
            .rows_affected();
    Ok(n == 1)
}

/// Up to `limit` unpaid orders without a charge in flight whose reservation has expired.
pub(in crate::orders) async fn expired_reservations(db: &Db, limit: i64) -> Result<Vec<Uuid>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = $1 AND saga_state = $2 AND reserved_until < $3 \
         ORDER BY reserved_until LIMIT $4",
    )
    .bind(OrderStatus::PendingPayment.as_str())
    .bind(SagaState::AwaitingPayment.as_str())
    .bind(db::now())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(ids.iter().map(|i| db::parse_id(i)).collect::<Result<_, _>>()?)
}
