//! Domain events (`order.placed`, `order.paid`, `inventory.low`, …), written to the
//! transactional outbox in the same transaction as the change they describe, so an event
//! exists exactly when its change committed. Publishing them to a bus is the relay's job.

use serde::Serialize;
use uuid::Uuid;

use crate::db::{self, Tx};

/// Appends an event to the outbox inside `tx`.
pub async fn record(
    tx: &mut Tx,
    event_type: &str,
    aggregate_id: Uuid,
    payload: &impl Serialize,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(payload).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query("INSERT INTO outbox (id, event_type, aggregate_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(db::new_id().to_string())
        .bind(event_type)
        .bind(aggregate_id.to_string())
        .bind(payload)
        .bind(db::now())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
