//! Background workers that keep orders moving without a client:
//! - **saga recovery**: a saga left in `charging` past its deadline (its process crashed or
//!   lost the gateway) is resolved from what the gateway remembers: paid, or compensated; a
//!   saga left in `refunding` is refunded (if the gateway has not already) and settled; a
//!   partial refund left `claimed` past its lease is refunded again under its own key (the
//!   gateway answers with the first refund) and settled.
//! - **reservation expiry**: an unpaid order (no card yet, or its cards declined) past
//!   `reserved_until` is cancelled with reason
//!   `reservation_expired` and its stock released.
//!
//! Every replica may run both: each order is claimed with a conditional UPDATE, so no two
//! workers act on the same one.

use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::Orders;
use super::state::{SagaState, saga_lease};
use super::store;
use super::transition::{self, Step};
use crate::error::Result;

const BATCH: i64 = 100;

/// Resumes interrupted sagas (a charge, a refund or a partial refund left past its lease);
/// returns how many were resolved.
pub async fn recover_interrupted_sagas(svc: &Orders) -> Result<usize> {
    let mut resolved = super::partial_refund::recover(svc, BATCH).await?;
    for state in [SagaState::Charging, SagaState::Refunding] {
        for (id, old) in store::past_lease(&svc.db, state, BATCH).await? {
            // Claim: extend the lease only if nobody else did first.
            let lease = chrono::Utc::now() + saga_lease(svc.payment_timeout_ms);
            if !store::renew_lease(&svc.db, id, state, &old, lease).await? {
                continue;
            }
            match resume(svc, id, state).await {
                Ok(()) => {
                    resolved += 1;
                    tracing::info!(order.id = %id, saga.state = state.as_str(), "interrupted saga resolved");
                }
                Err(e) => tracing::warn!(order.id = %id, error = ?e, "saga recovery will retry"),
            }
        }
    }
    Ok(resolved)
}

async fn resume(svc: &Orders, id: Uuid, state: SagaState) -> Result<()> {
    match state {
        SagaState::Refunding => super::refund::resume(svc, id).await,
        _ => super::checkout::resolve_from_gateway(svc, id).await,
    }
}

/// Cancels unpaid orders whose reservation expired (reason `reservation_expired`, stock
/// released), through [`transition::apply`]; returns how many.
pub async fn expire_reservations(svc: &Orders) -> Result<usize> {
    let mut expired = 0;
    for id in store::expired_reservations(&svc.db, BATCH).await? {
        if transition::apply(svc, id, Step::Expired).await?.is_ok() {
            expired += 1;
        }
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
    // Recovery runs at once (a restart finishes what the last process left); expiry is a
    // periodic sweep whose first pass waits one interval, so it never races a caller that
    // drives `expire_reservations` itself right after start-up.
    let every = Duration::from_millis(svc.checkout.expiry_interval_ms.max(10));
    let mut expiry = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = recovery.tick() => {
                if let Err(e) = recover_interrupted_sagas(&svc).await {
                    tracing::warn!(error = ?e, "saga recovery pass failed");
                }
            }
            _ = expiry.tick() => {
                if let Err(e) = expire_reservations(&svc).await {
                    tracing::warn!(error = ?e, "reservation expiry pass failed");
                }
            }
        }
    }
}
