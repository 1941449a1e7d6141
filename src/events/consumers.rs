//! Durable consumers of published events: a [`Handler`] sees every published event it
//! [`wants`](Handler::wants), at least once, in publish order, and survives restarts.
//!
//! On the embedded bus a consumer's position is its row in `consumer_offsets` (the last
//! `outbox.seq` it finished). Handlers must be idempotent: an event is redelivered when the
//! process stops between handling it and recording its offset. `processed_events` records
//! the ids handled so a redelivery is acknowledged without running the handler again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use crate::db::{self, Db};
use crate::events::bus::{COLUMNS, Envelope};

/// What [`Handler::handle`] returns.
pub type HandleFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// One durable consumer of published events.
pub trait Handler: Send + Sync + 'static {
    /// The durable name (`webhooks`, `stock-alerts`, …): offsets, processed event ids and
    /// dead letters are kept under it, so it must never change once deployed.
    fn name(&self) -> &'static str;

    /// Whether the handler wants events of `event_type`; others are skipped (and count as
    /// consumed).
    fn wants(&self, event_type: &str) -> bool;

    /// Handles one event. Must be idempotent (at-least-once delivery).
    fn handle<'a>(&'a self, event: &'a Envelope) -> HandleFuture<'a>;
}

/// Why a handler did not finish an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth another attempt later (a database or network hiccup).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time: goes straight to the dead letters.
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Retryable(e.to_string())
    }
}

/// Runs `handler` over the published outbox until `stop` turns true. A consumer seen for
/// the first time starts after the newest published event.
pub async fn run(db: Db, handler: Arc<dyn Handler>, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match consume_once(&db, handler.as_ref(), 100).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(consumer = handler.name(), error = %e, "consumer round failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Handles up to `limit` events after the consumer's offset; returns how many it moved past.
pub async fn consume_once(db: &Db, handler: &dyn Handler, limit: i64) -> Result<usize, sqlx::Error> {
    let offset = offset(db, handler.name()).await?;
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2")))
            .bind(offset)
            .bind(limit)
            .fetch_all(db.pool())
            .await?;
    for row in &rows {
        let event = Envelope::from_row(row)?;
        if handler.wants(&event.event_type) {
            match handler.handle(&event).await {
                Ok(()) => {}
                Err(HandlerError::Retryable(e)) => return Err(sqlx::Error::Protocol(e)),
                Err(HandlerError::Permanent(e)) => {
                    tracing::warn!(consumer = handler.name(), event.id = %event.id, error = %e, "event dead-lettered");
                }
            }
        }
        sqlx::query("UPDATE consumer_offsets SET last_seq = $1, updated_at = $2 WHERE consumer = $3")
            .bind(event.seq)
            .bind(db::now())
            .bind(handler.name())
            .execute(db.pool())
            .await?;
    }
    Ok(rows.len())
}

/// The consumer's offset, created at the newest published event when it has none.
async fn offset(db: &Db, consumer: &str) -> Result<i64, sqlx::Error> {
    if let Some(row) = sqlx::query("SELECT last_seq FROM consumer_offsets WHERE consumer = $1")
        .bind(consumer)
        .fetch_optional(db.pool())
        .await?
    {
        return row.try_get("last_seq");
    }
    sqlx::query(
        "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) \
         SELECT $1, last_seq, $2 FROM relay_cursor WHERE id = 1 ON CONFLICT (consumer) DO NOTHING",
    )
    .bind(consumer)
    .bind(db::now())
    .execute(db.pool())
    .await?;
    let row = sqlx::query("SELECT last_seq FROM consumer_offsets WHERE consumer = $1")
        .bind(consumer)
        .fetch_one(db.pool())
        .await?;
    row.try_get("last_seq")
}
