//! Durable consumers of published events: a [`Handler`] sees every published event it
//! [`wants`](Handler::wants), at least once, in publish order per aggregate, and survives
//! restarts.
//!
//! On the embedded bus a consumer's position is its row in `consumer_offsets` (the last
//! `outbox.seq` it finished). One round of a consumer ([`runner`]):
//!
//! 1. **Claim.** On PostgreSQL the consumer's `consumer_offsets` row is locked with
//!    `FOR UPDATE SKIP LOCKED` for the round, so of several replicas exactly one handles a
//!    batch and the others skip the round (no leader). SQLite serves one process: there the
//!    round reads the offset and moves it with a compare-and-set.
//! 2. **Handle.** Up to `events.consumer_batch` events after the offset; the events of one
//!    aggregate (an order, a product) one after the other, different aggregates at once,
//!    with at most `events.consumer_workers` handler calls running in the process. Events
//!    listed in `processed_events` for the consumer are skipped: a redelivered event is not
//!    handled twice.
//! 3. **Retry or dead-letter.** A [`HandlerError::Retryable`] is retried with exponential
//!    backoff and jitter (`events.consumer_backoff_ms`, doubled per attempt, capped at
//!    60 s) up to `events.consumer_max_attempts` attempts; then, or at once for a
//!    [`HandlerError::Permanent`] (or a panic), the event goes to `dead_letters` with its
//!    envelope, last error and attempts, and the events after it flow on. The admin API
//!    ([`dead_letters`]) lists and replays them.
//! 4. **Advance.** The offset moves to the end of the longest run of finished (handled,
//!    skipped or dead-lettered) events from the start of the batch, then the claim is
//!    released. Finished events past a gap are in `processed_events`, so the next round
//!    acknowledges them without handling them again.
//!
//! At shutdown a round starts no new event and cuts retry waits short; a handler call in
//! flight finishes. Unfinished events are handed back: not recorded, the offset stays
//! before them, and the next start (any replica) handles them.
//!
//! Handlers must still be idempotent: a process that dies between a handler's success and
//! its `processed_events` row redelivers the event.

pub mod dead_letters;
pub mod invalidation;
pub mod runner;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::runner::{Runner, Settings};
use crate::config::EventsConfig;
use crate::db::Db;
use crate::events::bus::Envelope;

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

/// Why a handler did not finish an event. The text is stored in the dead letter and shown
/// to admins: no secrets in it.
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

/// The durable consumers of this process: their handlers (by name) and how they run.
/// Built once by the composition root; [`spawn_all`](Self::spawn_all) starts them, and the
/// dead-letter admin operations ([`dead_letters`]) replay through the same handlers.
pub struct Consumers {
    db: Db,
    handlers: Vec<Arc<dyn Handler>>,
    settings: Arc<Settings>,
}

impl Consumers {
    /// No consumers yet, with the retry, batch and pool settings of `config`
    /// (`events.consumer_*`).
    pub fn new(db: Db, config: &EventsConfig) -> Self {
        Self { db, handlers: Vec::new(), settings: Arc::new(Settings::from_config(config)) }
    }

    /// Adds `handler`; one with the same [`name`](Handler::name) is replaced (tests and
    /// embedders swap a built-in consumer this way).
    pub fn register(&mut self, handler: Arc<dyn Handler>) {
        self.handlers.retain(|h| h.name() != handler.name());
        self.handlers.push(handler);
    }

    /// The same, by value.
    pub fn with(mut self, handler: Arc<dyn Handler>) -> Self {
        self.register(handler);
        self
    }

    /// The handler named `name`, if this process runs it.
    pub fn handler(&self, name: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.iter().find(|h| h.name() == name)
    }

    /// The names of the registered consumers.
    pub fn names(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.name()).collect()
    }

    /// Gives every registered consumer seen for the first time its offset (the newest
    /// published event), before the process serves: a new consumer then sees every event
    /// recorded after its first start, whatever its runner's first round races with.
    pub async fn create_offsets(&self) -> Result<(), sqlx::Error> {
        for h in &self.handlers {
            store::create_offset(&self.db, h.name()).await?;
        }
        Ok(())
    }

    /// Starts one runner task per consumer; each returns once `stop` turns true and its
    /// round in flight has finished or handed its events back. Await the handles before
    /// closing the database.
    pub fn spawn_all(&self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        self.handlers
            .iter()
            .map(|h| {
                let runner = Runner::new(self.db.clone(), h.clone(), self.settings.clone());
                tokio::spawn(runner.run(stop.clone()))
            })
            .collect()
    }

    /// One round of consumer `name` now (tests and tools); `Ok(0)` when it is unknown, has
    /// nothing to do or another replica holds its claim. Returns the events moved past.
    pub async fn consume_once(&self, name: &str) -> Result<usize, sqlx::Error> {
        let Some(h) = self.handler(name) else { return Ok(0) };
        let (_tx, stop) = watch::channel(false);
        runner::round(&self.db, h.as_ref(), &self.settings, &stop).await
    }
}
