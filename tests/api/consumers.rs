//! Durable consumers (src/events/consumers): retries, dead letters and their admin API,
//! redelivery, several instances on one PostgreSQL database, low-stock alerts, and cache
//! invalidation by events. Test handlers record what they handled, so each test counts
//! handled event ids instead of guessing from timing.

mod alerts;
mod dead_letters;
mod delivery;
mod invalidation;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderly::events::bus::Envelope;
use orderly::events::consumers::{HandleFuture, Handler, HandlerError};
use sqlx::Row;
use uuid::Uuid;

use crate::helpers::{Options, TestApp, TestDb};

/// A test consumer of `product.created`: fails each event's first `fail_first` attempts
/// (retryable), fails products whose SKU starts with `POISON` permanently (until
/// `cured`) and those starting with `FLAKY` retryably every time, and records every call
/// and every success.
pub struct Recorder {
    pub name: &'static str,
    pub fail_first: u32,
    pub delay: Duration,
    pub cured: AtomicBool,
    /// Calls per event id.
    pub calls: Mutex<HashMap<Uuid, u32>>,
    /// Successful handlings, in order (shared between instances in the exactly-once test).
    pub handled: Arc<Mutex<Vec<Uuid>>>,
}

impl Recorder {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            fail_first: 0,
            delay: Duration::ZERO,
            cured: AtomicBool::new(false),
            calls: Mutex::new(HashMap::new()),
            handled: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn calls_for(&self, id: Uuid) -> u32 {
        self.calls.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    pub fn handled_count(&self, id: Uuid) -> usize {
        self.handled.lock().unwrap().iter().filter(|h| **h == id).count()
    }

    async fn run(&self, event: &Envelope) -> Result<(), HandlerError> {
        let attempt = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(event.id).or_insert(0);
            *n += 1;
            *n
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let sku = event.data["sku"].as_str().unwrap_or_default();
        if sku.starts_with("POISON") && !self.cured.load(Ordering::SeqCst) {
            return Err(HandlerError::Permanent(format!("cannot handle {sku}")));
        }
        if sku.starts_with("FLAKY") {
            return Err(HandlerError::Retryable(format!("{sku} is flaky")));
        }
        if attempt <= self.fail_first {
            return Err(HandlerError::Retryable(format!("attempt {attempt} failed")));
        }
        self.handled.lock().unwrap().push(event.id);
        Ok(())
    }
}

impl Handler for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "product.created"
    }

    fn handle<'a>(&'a self, event: &'a Envelope) -> HandleFuture<'a> {
        Box::pin(self.run(event))
    }
}

/// Fast rounds and retries, so tests wait milliseconds.
pub fn fast() -> Vec<(&'static str, String)> {
    vec![
        ("events.relay_interval_ms", "20".into()),
        ("events.consumer_interval_ms", "20".into()),
        ("events.consumer_backoff_ms", "10".into()),
        ("events.consumer_max_attempts", "3".into()),
    ]
}

/// An app running `handlers` besides the built-in consumers, on `db` (or a fresh one).
pub async fn spawn(handlers: Vec<Arc<dyn Handler>>, db: Option<Arc<TestDb>>) -> TestApp {
    TestApp::spawn_with(Options {
        config: fast(),
        db,
        overrides: orderly::Overrides { consumers: handlers, ..Default::default() },
    })
    .await
}

/// Polls `check` every 20 ms until it holds; fails the test after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `product.created` event id of product `product_id`.
pub async fn created_event(app: &TestApp, product_id: &str) -> Uuid {
    let row = sqlx::query("SELECT id FROM outbox WHERE event_type = 'product.created' AND aggregate_id = $1")
        .bind(product_id)
        .fetch_one(app.app.db.pool())
        .await
        .unwrap();
    row.get::<String, _>("id").parse().unwrap()
}

/// Waits until `consumer` has passed every event in the outbox (all published).
pub async fn caught_up(app: &TestApp, consumer: &str) {
    let pool = app.app.db.pool().clone();
    eventually(&format!("{consumer} to catch up"), || {
        let pool = pool.clone();
        async move {
            let waiting: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get("n");
            let newest: i64 =
                sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM outbox").fetch_one(&pool).await.unwrap().get("s");
            let at: Option<i64> = sqlx::query("SELECT last_seq FROM consumer_offsets WHERE consumer = $1")
                .bind(consumer)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .map(|r| r.get("last_seq"));
            waiting == 0 && at.is_some_and(|at| at >= newest)
        }
    })
    .await;
}

/// Moves `consumer` back to the start of the outbox, as an operator's reset would.
pub async fn reset_offset(app: &TestApp, consumer: &str) {
    sqlx::query("UPDATE consumer_offsets SET last_seq = 0 WHERE consumer = $1")
        .bind(consumer)
        .execute(app.app.db.pool())
        .await
        .unwrap();
}

/// The distinct ids in `ids`.
pub fn distinct(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}
