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
//!
//! Where a round publishes: with `nats.url` set, to JetStream ([`Nats::publish`]), every
//! acknowledgement awaited *before* the commit, so a committed row is always in the stream
//! (a commit lost after the publish republishes the row, and JetStream drops the duplicate
//! by its `Nats-Msg-Id`); this replica's hub is then fed by the fan-out subscriber, like
//! every other replica's, not by the relay. Without NATS, to the local [`Hub`] after the
//! commit. While NATS is unreachable rounds are skipped without touching the database, one
//! warning per outage; rows wait and go out in order when it is back.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use crate::config::EventsConfig;
use crate::db::{self, Backend, Db};
use crate::events::bus::{Envelope, Hub};
use crate::events::nats::{BusError, Nats};

/// Why a relay round published nothing. Either way the round was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox relay: database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("outbox relay: {0}")]
    Bus(#[from] BusError),
}

/// Publishes the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    db: Db,
    hub: Hub,
    nats: Option<Nats>,
    batch: i64,
    interval: Duration,
}

impl Relay {
    pub fn new(db: Db, hub: Hub, config: &EventsConfig) -> Self {
        Self {
            db,
            hub,
            nats: None,
            batch: i64::from(config.relay_batch.max(1)),
            interval: Duration::from_millis(config.relay_interval_ms.max(1)),
        }
    }

    /// Publishes to NATS JetStream instead of the local hub (`nats.url` set).
    pub fn with_nats(mut self, nats: Option<Nats>) -> Self {
        self.nats = nats;
        self
    }

    /// Relays until `stop` turns true, then flushes what is committed and returns. A failing
    /// bus or database is logged once when the failures start and once when they end.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            match self.relay_once().await {
                Ok(n) => {
                    if failing {
                        tracing::info!("outbox relay: publishing again");
                        failing = false;
                    }
                    if n as i64 >= self.batch {
                        continue;
                    }
                }
                Err(e) => {
                    crate::metrics::outbox_publish_error();
                    if !failing {
                        tracing::warn!(error = %e, "outbox relay: cannot publish; rows wait and go out when it recovers");
                        failing = true;
                    }
                }
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
    /// replica held the cursor). Errors: the database failed, or NATS is configured and is
    /// unreachable or did not acknowledge every event (nothing is marked published then).
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        if let Some(nats) = &self.nats {
            // Fail fast while disconnected rather than holding the cursor (and on SQLite the
            // write lock) until a publish times out.
            if !nats.is_connected() {
                return Err(BusError::Disconnected.into());
            }
            nats.ensure_stream().await?;
        }
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
        if let Some(nats) = &self.nats {
            // Dropping `tx` on failure rolls the round back.
            nats.publish(&batch).await?;
            tx.commit().await?;
            crate::metrics::outbox_published(published);
            return Ok(published);
        }
        tx.commit().await?;
        crate::metrics::outbox_published(published);
        // After the commit: a reader that sees an event live can already find it (and every
        // earlier one) in the outbox to resume from.
        for event in batch {
            self.hub.publish(Arc::new(event));
        }
        Ok(published)
    }
}

/// Sets `orderly_outbox_lag_seconds` (the age of the oldest unpublished outbox row, 0 when
/// none waits), measured now. Called when `/metrics` is scraped, so an idle replica runs no
/// query for it and the figure is as fresh as the scrape; one indexed query
/// (`outbox_unpublished`). A failed query leaves the last value.
pub async fn refresh_lag_gauge(db: &Db) {
    match oldest_unpublished_age(db).await {
        Ok(age) => crate::metrics::outbox_lag(age),
        Err(e) => tracing::debug!(error = %e, "outbox lag: query failed"),
    }
}

/// How long the oldest unpublished row has waited (UUID v7 ids sort by creation time).
async fn oldest_unpublished_age(db: &Db) -> Result<Duration, sqlx::Error> {
    let oldest: Option<String> =
        sqlx::query_scalar("SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1")
            .fetch_optional(db.pool())
            .await?;
    let Some(oldest) = oldest else {
        return Ok(Duration::ZERO);
    };
    let age = chrono::Utc::now() - db::parse_ts(&oldest)?;
    Ok(age.to_std().unwrap_or(Duration::ZERO))
}
