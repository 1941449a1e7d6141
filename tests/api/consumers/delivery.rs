//! Delivery guarantees: retries, no double handling on redelivery, and one handling per
//! event across two instances on one PostgreSQL database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderly::events::bus::Envelope;
use orderly::events::consumers::{HandleFuture, Handler};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Options, TestApp};

use super::{Recorder, caught_up, created_event, distinct, eventually, fast, reset_offset, spawn};

#[tokio::test]
async fn a_handler_that_fails_twice_is_retried_and_handles_the_event_once() {
    let recorder = Arc::new(Recorder { fail_first: 2, ..Recorder::new("test-retries") });
    let app = spawn(vec![recorder.clone()], None).await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "RETRY-1", 100, 5).await;
    let event = created_event(&app, p["id"].as_str().unwrap()).await;

    eventually("the event to be handled", || async { recorder.handled_count(event) == 1 }).await;
    caught_up(&app, "test-retries").await;
    assert_eq!(recorder.calls_for(event), 3, "two failed attempts, then the one that succeeded");
    assert_eq!(recorder.handled_count(event), 1);
    let (dead,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dead_letters WHERE consumer = 'test-retries'")
        .fetch_one(app.app.db.pool())
        .await
        .unwrap();
    assert_eq!(dead, 0, "a retried success is not dead-lettered");
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_event_is_not_handled_twice() {
    let recorder = Arc::new(Recorder::new("test-redelivery"));
    let app = spawn(vec![recorder.clone()], None).await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "REDELIVER-1", 100, 5).await;
    let event = created_event(&app, p["id"].as_str().unwrap()).await;
    eventually("the event to be handled", || async { recorder.handled_count(event) == 1 }).await;
    caught_up(&app, "test-redelivery").await;

    // An operator rewinds the consumer: every event is delivered again.
    reset_offset(&app, "test-redelivery").await;
    caught_up(&app, "test-redelivery").await;
    assert_eq!(recorder.calls_for(event), 1, "the redelivery is acknowledged without calling the handler");
    assert_eq!(recorder.handled_count(event), 1);
    app.stop().await;
}

/// Records `(aggregate, seq)` of every `product.updated` it handles, slowly.
struct SeqLog(Mutex<Vec<(Uuid, i64)>>);

impl Handler for SeqLog {
    fn name(&self) -> &'static str {
        "test-order"
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "product.updated"
    }

    fn handle<'a>(&'a self, event: &'a Envelope) -> HandleFuture<'a> {
        Box::pin(async move {
            // The two products' events alternate, so seq mod 4 alternates within each
            // product: a slow event followed by a fast one of the same product, which
            // would overtake it if one product's events ran concurrently.
            tokio::time::sleep(Duration::from_millis(if event.seq % 4 >= 2 { 30 } else { 1 })).await;
            self.0.lock().unwrap().push((event.aggregate_id, event.seq));
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_events_of_one_product_are_handled_in_publish_order() {
    let log = Arc::new(SeqLog(Mutex::new(Vec::new())));
    // A slow poll, so each round finds several updates of both products in its batch.
    let mut config = fast();
    config.retain(|(k, _)| *k != "events.consumer_interval_ms");
    config.push(("events.consumer_interval_ms", "700".into()));
    let app = TestApp::spawn_with(Options {
        config,
        overrides: orderly::Overrides { consumers: vec![log.clone()], ..Default::default() },
        ..Default::default()
    })
    .await;
    let staff = app.staff().await;
    let mut ids = Vec::new();
    for sku in ["ORDER-A", "ORDER-B"] {
        ids.push(app.create_product(&staff, sku, 100, 5).await["id"].as_str().unwrap().to_owned());
    }
    for price in 101..=106 {
        for id in &ids {
            let (status, body) =
                app.patch(&format!("/api/v1/products/{id}"), Some(&staff), &json!({ "price_minor": price })).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    caught_up(&app, "test-order").await;
    let log = log.0.lock().unwrap().clone();
    assert_eq!(log.len(), 12, "{log:?}");
    for id in &ids {
        let id: Uuid = id.parse().unwrap();
        let seqs: Vec<i64> = log.iter().filter(|(a, _)| *a == id).map(|(_, s)| *s).collect();
        assert_eq!(seqs.len(), 6);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order for {id}: {seqs:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_database_handle_each_event_exactly_once() {
    let a = spawn(Vec::new(), None).await;
    if !a.db.is_postgres() {
        eprintln!("skipped: two instances share a consumer only on PostgreSQL (set ORDERLY_TEST_DATABASE_URL)");
        return;
    }
    let db = a.db.clone();
    a.stop().await;
    // Two instances whose handlers write to one log: a slow handler widens every window
    // in which both could take the same batch.
    let first = Arc::new(Recorder { delay: Duration::from_millis(3), ..Recorder::new("test-exactly-once") });
    let second = Arc::new(Recorder {
        delay: Duration::from_millis(3),
        handled: first.handled.clone(),
        ..Recorder::new("test-exactly-once")
    });
    let a = spawn(vec![first.clone()], Some(db.clone())).await;
    let b = spawn(vec![second.clone()], Some(db)).await;
    let staff = a.staff().await;
    let mut events = Vec::new();
    for i in 0..30 {
        let app = if i % 2 == 0 { &a } else { &b };
        let p = app.create_product(&staff, &format!("ONCE-{i}"), 100, 5).await;
        events.push(created_event(app, p["id"].as_str().unwrap()).await);
    }
    caught_up(&a, "test-exactly-once").await;
    let handled = first.handled.lock().unwrap().clone();
    assert_eq!(handled.len(), events.len(), "each event handled once between the two instances: {handled:?}");
    assert_eq!(distinct(&handled), distinct(&events));
    let calls_a: u32 = first.calls.lock().unwrap().values().sum();
    let calls_b: u32 = second.calls.lock().unwrap().values().sum();
    assert_eq!(calls_a + calls_b, 30, "no event reached both handlers");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_shutdown_during_a_retry_wait_hands_the_event_back_to_the_next_start() {
    // The first retry would wait 5 to 10 s.
    let mut config = fast();
    config.retain(|(k, _)| *k != "events.consumer_backoff_ms");
    config.push(("events.consumer_backoff_ms", "10000".into()));
    let failing = Arc::new(Recorder { fail_first: 1, ..Recorder::new("test-handback") });
    let app = TestApp::spawn_with(Options {
        config: config.clone(),
        overrides: orderly::Overrides { consumers: vec![failing.clone()], ..Default::default() },
        ..Default::default()
    })
    .await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "HANDBACK-1", 100, 5).await;
    let event = created_event(&app, p["id"].as_str().unwrap()).await;
    eventually("the first, failing attempt", || async { failing.calls_for(event) == 1 }).await;

    let db = app.db.clone();
    let started = tokio::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(4), "shutdown waited out the retry: {:?}", started.elapsed());

    // Handed back: nothing recorded, so the next start (any replica) handles it.
    let healthy = Arc::new(Recorder::new("test-handback"));
    let app = TestApp::spawn_with(Options {
        config,
        db: Some(db),
        overrides: orderly::Overrides { consumers: vec![healthy.clone()], ..Default::default() },
    })
    .await;
    eventually("the handed-back event to be handled", || async { healthy.handled_count(event) == 1 }).await;
    let (dead,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dead_letters WHERE consumer = 'test-handback'")
        .fetch_one(app.app.db.pool())
        .await
        .unwrap();
    assert_eq!(dead, 0);
    assert_eq!(failing.handled_count(event), 0);
    app.stop().await;
}
