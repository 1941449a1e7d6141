//! The outbox relay: publishes committed outbox rows, oldest first, and gives each its
//! publish sequence (`seq`).
//!
//! One round is one transaction: lock `relay_cursor`'s row (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL: a replica that finds it taken skips the round instead of waiting, so every
//! replica runs the relay and none is a leader); mark up to `events.relay_batch` unpublished
//! rows published with the next sequence numbers in one statement; publish them; advance
//! the cursor; commit. A failed publish rolls the round back and the rows wait for the next
//! one. Because the cursor row is held until commit, rounds commit in sequence order, so a
//! reader resuming after `seq` n (SSE `Last-Event-ID`) never misses a row published before
//! n + 1, and an aggregate's events are published in the order they were recorded.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use crate::config::EventsConfig;
use crate::db::{self, Backend, Db};
use crate::events::bus::{Envelope, Hub};

/// Publishes the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    db: Db,
    hub: Hub,
    batch: i64,
    interval: Duration,
}

impl Relay {
    pub fn new(db: Db, hub: Hub, config: &EventsConfig) -> Self {
        Self {
            db,
            hub,
            batch: i64::from(config.relay_batch.max(1)),
            interval: Duration::from_millis(config.relay_interval_ms.max(1)),
        }
    }

    /// Relays until `stop` turns true, then flushes what is committed and returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            match self.relay_once().await {
                Ok(n) if n as i64 >= self.batch => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox relay: a round failed; its rows wait for the next"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = stop.changed() => break,
            }
        }
        // Flush: publish what committed before shutdown, so no event waits for a restart.
        while let Ok(n) = self.relay_once().await {
            if n == 0 {
                break;
            }
        }
    }

    /// One round; returns how many rows it published (0 when none waited, or when another
    /// replica held the cursor).
    pub async fn relay_once(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        let lock = match self.db.backend() {
            Backend::Postgres => "SELECT last_seq FROM relay_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "SELECT last_seq FROM relay_cursor WHERE id = 1",
        };
        let Some(cursor) = sqlx::query(lock).fetch_optional(&mut *tx).await? else {
            return Ok(0);
        };
        let last_seq: i64 = cursor.try_get("last_seq")?;
        let rows = sqlx::query(
            "UPDATE outbox SET seq = $1 + n.rn, published_at = $2 \
             FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM outbox \
                   WHERE published_at IS NULL ORDER BY id LIMIT $3) AS n \
             WHERE outbox.id = n.id \
             RETURNING outbox.seq, outbox.id, outbox.event_type, CAST(outbox.event_version AS BIGINT) AS event_version, \
                       outbox.aggregate_id, outbox.payload, outbox.created_at",
        )
        .bind(last_seq)
        .bind(db::now())
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut batch = rows.iter().map(Envelope::from_row).collect::<Result<Vec<_>, _>>()?;
        batch.sort_by_key(|e| e.seq);
        let published = batch.len();
        sqlx::query("UPDATE relay_cursor SET last_seq = $1 WHERE id = 1")
            .bind(last_seq + published as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // After the commit: a reader that sees an event live can already find it (and every
        // earlier one) in the outbox to resume from.
        for event in batch {
            self.hub.publish(Arc::new(event));
        }
        Ok(published)
    }
}
