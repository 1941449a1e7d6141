//! Pruning: published outbox rows and `processed_events` entries older than
//! `events.retention_secs` (default 7 days), and finished webhook deliveries (`succeeded`,
//! `dead`, with their attempts) older than `webhooks.delivery_retention_secs` (default 30
//! days), are deleted in statements of at most `events.prune_batch` rows so no pass holds a
//! long lock or a huge transaction.
//!
//! Every replica prunes every `events.prune_interval_secs`; passes of two replicas may
//! overlap harmlessly (a row is deleted once). Unpublished rows are never pruned, however
//! old. The retention is also how far back SSE `Last-Event-ID` can resume from the outbox
//! and how long a durable consumer on the embedded bus may fall behind before it misses
//! events.

use std::time::Duration;

use tokio::sync::watch;

use crate::config::EventsConfig;
use crate::db::{self, Db};

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub processed_events: u64,
    pub webhook_deliveries: u64,
}

/// Prunes every `events.prune_interval_secs` until `stop` turns true. The first pass runs
/// one interval after start. `delivery_retention` is `webhooks.delivery_retention_secs`.
pub async fn run(db: Db, config: EventsConfig, delivery_retention: Duration, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(config.prune_interval_secs.max(1));
    let retention = Duration::from_secs(config.retention_secs);
    let batch = i64::from(config.prune_batch.max(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let pass = async {
            let mut pruned = prune_once(&db, retention, batch).await?;
            pruned.webhook_deliveries = prune_deliveries(&db, delivery_retention, batch).await?;
            Ok::<_, sqlx::Error>(pruned)
        };
        match pass.await {
            Ok(p) if p != Pruned::default() => tracing::info!(
                outbox.rows = p.outbox,
                processed_events.rows = p.processed_events,
                webhook_deliveries.rows = p.webhook_deliveries,
                "pruned old events"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning old events failed; the next pass retries"),
        }
    }
}

/// One pass: deletes published outbox rows and processed-event records older than
/// `retention`, `batch` rows per statement, until none is left.
pub async fn prune_once(db: &Db, retention: Duration, batch: i64) -> Result<Pruned, sqlx::Error> {
    let cutoff = cutoff(retention);
    let outbox = delete_in_batches(
        db,
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
         WHERE published_at IS NOT NULL AND published_at < $1 ORDER BY published_at LIMIT $2)",
        &cutoff,
        batch,
    )
    .await?;
    let processed_events = delete_in_batches(
        db,
        "DELETE FROM processed_events WHERE (consumer, event_id) IN (SELECT consumer, event_id \
         FROM processed_events WHERE processed_at < $1 ORDER BY processed_at LIMIT $2)",
        &cutoff,
        batch,
    )
    .await?;
    Ok(Pruned { outbox, processed_events, webhook_deliveries: 0 })
}

/// Deletes webhook deliveries that finished (`succeeded`, or `dead` and not replayed) more
/// than `retention` ago, `batch` per statement; their attempts go with them (`ON DELETE
/// CASCADE`). Deliveries still to be tried are never pruned, however old. Returns how many.
pub async fn prune_deliveries(db: &Db, retention: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    delete_in_batches(
        db,
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
         WHERE status IN ('succeeded', 'dead') AND updated_at < $1 ORDER BY updated_at LIMIT $2)",
        &cutoff(retention),
        batch,
    )
    .await
}

/// The timestamp `retention` ago, as the timestamp columns store it.
fn cutoff(retention: Duration) -> String {
    let age = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    db::ts(chrono::Utc::now().checked_sub_signed(age).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

async fn delete_in_batches(db: &Db, sql: &'static str, cutoff: &str, batch: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        // One short write transaction per batch (on SQLite: the process's write permit),
        // so checkout never waits behind a whole pass.
        let mut tx = db.begin_write().await?;
        let n = sqlx::query(sql).bind(cutoff).bind(batch).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}
