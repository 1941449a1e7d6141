//! Background workers that keep orders moving without a client:
//! - **saga recovery**: a saga left in `charging` past its deadline (its process crashed or
//!   lost the gateway) is resolved from what the gateway remembers: paid, or compensated.
//! - **reservation expiry**: an unpaid order past `reserved_until` is cancelled with reason
//!   `reservation_expired` and its stock released.
//!
//! Every replica may run both: each order is claimed with a conditional UPDATE, so no two
//! workers act on the same one.

use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;
use uuid::Uuid;

use super::OrderStatus;
use super::Orders;
use crate::db;
use crate::error::Result;
use crate::events::{self, Event, OrderTransitioned};
use crate::inventory;

const BATCH: i64 = 100;

/// Resumes interrupted sagas; returns how many were resolved.
pub async fn recover_interrupted_sagas(svc: &Orders) -> Result<usize> {
    let now = db::now();
    let rows = sqlx::query(
        "SELECT id, saga_deadline FROM orders WHERE saga_state = 'charging' AND saga_deadline < $1 \
         ORDER BY saga_deadline LIMIT $2",
    )
    .bind(&now)
    .bind(BATCH)
    .fetch_all(svc.db.pool())
    .await?;
    let lease =
        chrono::Duration::milliseconds(i64::try_from(svc.payment_timeout_ms.saturating_mul(2)).unwrap_or(60_000));
    let mut resolved = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        let old: String = r.try_get("saga_deadline")?;
        // Claim: extend the deadline only if nobody else did first.
        let claimed = sqlx::query(
            "UPDATE orders SET saga_deadline = $1 WHERE id = $2 AND saga_state = 'charging' AND saga_deadline = $3",
        )
        .bind(db::ts(chrono::Utc::now() + lease))
        .bind(&id)
        .bind(&old)
        .execute(svc.db.pool())
        .await?
        .rows_affected();
        if claimed == 0 {
            continue;
        }
        let order_id: Uuid = db::parse_id(&id)?;
        match super::checkout::resolve_from_gateway(svc, order_id).await {
            Ok(()) => {
                resolved += 1;
                tracing::info!(order.id = %order_id, "interrupted checkout saga resolved");
            }
            Err(e) => tracing::warn!(order.id = %order_id, error = %e, "saga recovery will retry"),
        }
    }
    Ok(resolved)
}

/// Cancels unpaid orders whose reservation expired; returns how many.
pub async fn expire_reservations(svc: &Orders) -> Result<usize> {
    let now = db::now();
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'pending_payment' AND saga_state = 'awaiting_payment' \
         AND reserved_until < $1 ORDER BY reserved_until LIMIT $2",
    )
    .bind(&now)
    .bind(BATCH)
    .fetch_all(svc.db.pool())
    .await?;
    let mut expired = 0;
    for id in ids {
        let mut tx = svc.db.begin_write().await?;
        let n = sqlx::query(
            "UPDATE orders SET status = 'cancelled', saga_state = 'compensated', reserved_until = NULL, \
             failure_reason = 'reservation_expired', closed_at = $1, updated_at = $1 \
             WHERE id = $2 AND status = 'pending_payment' AND saga_state = 'awaiting_payment' AND reserved_until < $1",
        )
        .bind(&now)
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            let order_id = db::parse_id(&id)?;
            let lines = super::stock_lines(&mut tx, order_id).await?;
            inventory::release(&mut tx, &lines).await?;
            let cancelled = OrderTransitioned {
                order_id,
                from: OrderStatus::PendingPayment.as_str().to_owned(),
                reason: Some("reservation_expired".to_owned()),
            };
            events::record(&mut tx, Event::OrderCancelled(cancelled)).await?;
            expired += 1;
        }
        tx.commit().await?;
    }
    if expired > 0 {
        tracing::info!(orders.expired = expired, "released expired reservations");
    }
    Ok(expired)
}

/// Runs both workers until `shutdown` turns true. Recovery runs once at start, so a
/// restarted process finishes what a crashed one left as soon as the leases allow.
pub async fn run_workers(svc: Orders, mut shutdown: watch::Receiver<bool>) {
    let mut recovery = tokio::time::interval(Duration::from_millis(svc.checkout.recovery_interval_ms.max(10)));
    let mut expiry = tokio::time::interval(Duration::from_millis(svc.checkout.expiry_interval_ms.max(10)));
    recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = recovery.tick() => {
                if let Err(e) = recover_interrupted_sagas(&svc).await {
                    tracing::warn!(error = %e, "saga recovery pass failed");
                }
            }
            _ = expiry.tick() => {
                if let Err(e) = expire_reservations(&svc).await {
                    tracing::warn!(error = %e, "reservation expiry pass failed");
                }
            }
        }
    }
}
