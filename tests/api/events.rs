//! The outbox relay and the bus: publish order, the cursor, the hub, pruning; with NATS
//! (`ORDERLY_TEST_NATS_URL`): outages, deduplication and fan-out across replicas.

mod nats;
mod replicas;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use orderly::events::bus::Envelope;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use tokio::sync::broadcast;

use crate::helpers::{Options, TestApp};

/// Receives from `rx` until `done` holds for an event or `within` passes; returns what came.
pub async fn receive_until(
    rx: &mut broadcast::Receiver<Arc<Envelope>>,
    within: Duration,
    done: impl Fn(&Envelope) -> bool,
) -> Vec<Arc<Envelope>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let finished = done(&event);
        got.push(event);
        if finished {
            break;
        }
    }
    got
}

/// Polls until no outbox row waits, or `within` passes; returns how many still wait.
pub async fn wait_until_published(app: &TestApp, within: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let waiting = unpublished(app).await;
        if waiting == 0 || tokio::time::Instant::now() > deadline {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn unpublished(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(app.app.db.pool())
        .await
        .unwrap()
}

/// A customer's order of one unit of a fresh product; returns the order id.
pub async fn place_one_order(app: &TestApp, sku: &str) -> String {
    let staff = app.staff().await;
    app.create_product(&staff, sku, 1500, 10).await;
    let (customer, _, _) = app.register_customer(&format!("{}@example.com", sku.to_lowercase())).await;
    let (status, order) = app.place_order(&customer, sku, 1, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn placing_an_order_publishes_every_event_once_in_seq_order_onto_the_hub() {
    let app = TestApp::spawn().await;
    let mut rx = app.app.hub.subscribe();
    let order_id = place_one_order(&app, "RELAY-1").await;

    let got = receive_until(&mut rx, Duration::from_secs(10), |e| {
        e.event_type == "order.placed" && e.aggregate_id.to_string() == order_id
    })
    .await;
    assert!(
        got.last().is_some_and(|e| e.event_type == "order.placed"),
        "order.placed did not reach the hub: {:?}",
        got.iter().map(|e| &e.event_type).collect::<Vec<_>>()
    );
    assert_eq!(wait_until_published(&app, Duration::from_secs(10)).await, 0);
    // Whatever else arrives (nothing should) belongs to the comparison below too.
    let mut got = got;
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        got.push(e);
    }

    // The hub saw exactly the published rows from its first event on, in seq order, once each.
    let first = got[0].seq;
    let rows = sqlx::query("SELECT id, seq FROM outbox WHERE seq >= $1 ORDER BY seq")
        .bind(first)
        .fetch_all(app.app.db.pool())
        .await
        .unwrap();
    let expected: Vec<(String, i64)> = rows.iter().map(|r| (r.get("id"), r.get("seq"))).collect();
    let received: Vec<(String, i64)> = got.iter().map(|e| (e.id.to_string(), e.seq)).collect();
    assert_eq!(received, expected);
    assert!(received.windows(2).all(|w| w[0].1 < w[1].1), "seqs increase: {received:?}");
    let distinct: HashSet<_> = received.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), received.len(), "each event once");

    // The cursor stands at the last seq given out, and seqs are 1..=n with no gap.
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM relay_cursor WHERE id = 1")
        .fetch_one(app.app.db.pool())
        .await
        .unwrap();
    let (count, max): (i64, i64) = {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MAX(seq) AS m FROM outbox").fetch_one(app.app.db.pool()).await.unwrap();
        (row.get("n"), row.get("m"))
    };
    assert_eq!(last_seq, max);
    assert_eq!(count, max, "seqs are dense");
    app.stop().await;
}

#[tokio::test]
async fn readyz_reports_the_bus_without_turning_unready() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bus = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "bus").cloned();
    let want = if crate::helpers::test_nats_url().is_some() { "nats" } else { "in-process" };
    assert_eq!(bus.as_ref().map(|b| b["backend"].clone()), Some(json!(want)), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn pruning_deletes_only_published_rows_and_processed_events_older_than_the_retention() {
    // The relay runs once at start, then not for an hour: the unpublished row stays so.
    let app = TestApp::spawn_with(Options {
        config: vec![("events.relay_interval_ms", "3600000".into())],
        ..Default::default()
    })
    .await;
    let pool = app.app.db.pool();
    let now = chrono::Utc::now();
    let old = orderly::db::ts(now - chrono::Duration::days(8));
    let recent = orderly::db::ts(now - chrono::Duration::days(6));
    let rows = [
        ("old-published-1", Some(old.as_str()), Some(9001_i64)),
        ("old-published-2", Some(old.as_str()), Some(9002)),
        ("old-published-3", Some(old.as_str()), Some(9003)),
        ("recent-published", Some(recent.as_str()), Some(9004)),
        ("old-unpublished", None, None),
    ];
    let mut ids = Vec::new();
    for (name, published_at, seq) in rows {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO outbox (id, event_type, aggregate_id, payload, created_at, published_at, seq) \
             VALUES ($1, 'product.updated', $2, '{}', $3, $4, $5)",
        )
        .bind(&id)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&old)
        .bind(published_at)
        .bind(seq)
        .execute(pool)
        .await
        .unwrap();
        ids.push((name, id));
    }
    for (event, at) in [("old", &old), ("recent", &recent)] {
        sqlx::query("INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ('test', $1, $2)")
            .bind(event)
            .bind(at)
            .execute(pool)
            .await
            .unwrap();
    }

    // Batches of 2: the three old rows take two statements.
    let pruned = orderly::events::prune::prune_once(&app.app.db, Duration::from_secs(7 * 24 * 3600), 2).await.unwrap();
    assert_eq!(pruned.outbox, 3);
    assert_eq!(pruned.processed_events, 1);

    let mut left: Vec<&str> = Vec::new();
    for (name, id) in &ids {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id = $1").bind(id).fetch_one(pool).await.unwrap();
        if n == 1 {
            left.push(name);
        }
    }
    assert_eq!(left, ["recent-published", "old-unpublished"]);
    let processed: Vec<String> = sqlx::query_scalar("SELECT event_id FROM processed_events WHERE consumer = 'test'")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(processed, ["recent"]);
    app.stop().await;
}

#[tokio::test]
async fn pruning_deletes_only_finished_webhook_deliveries_older_than_their_retention_with_their_attempts() {
    let app = TestApp::spawn().await;
    let pool = app.app.db.pool();
    let now = chrono::Utc::now();
    let old = orderly::db::ts(now - chrono::Duration::days(31));
    let recent = orderly::db::ts(now - chrono::Duration::days(29));
    let endpoint = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, description, event_types, enabled, secret, created_at, updated_at) \
         VALUES ($1, 'https://partner.example/hook', 'test', '[]', 1, 'whsec_test', $2, $2)",
    )
    .bind(&endpoint)
    .bind(&old)
    .execute(pool)
    .await
    .unwrap();
    let rows = [
        ("old-succeeded", "succeeded", &old),
        ("old-dead", "dead", &old),
        ("old-failed", "failed", &old),
        ("old-pending", "pending", &old),
        ("recent-succeeded", "succeeded", &recent),
    ];
    for (event, status, at) in rows {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, status, attempts, \
             created_at, updated_at) VALUES ($1, $2, $3, 'order.paid', '{}', $4, 1, $5, $5)",
        )
        .bind(&id)
        .bind(&endpoint)
        .bind(event)
        .bind(status)
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, duration_ms, attempted_at) \
             VALUES ($1, $2, 1, 200, 5, $3)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&id)
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
    }

    let retention = Duration::from_secs(30 * 24 * 3600);
    let pruned = orderly::events::prune::prune_deliveries(&app.app.db, retention, 1).await.unwrap();
    assert_eq!(pruned, 2);
    let mut left: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM webhook_deliveries").fetch_all(pool).await.unwrap();
    left.sort();
    assert_eq!(left, ["old-failed", "old-pending", "recent-succeeded"]);
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts").fetch_one(pool).await.unwrap();
    assert_eq!(attempts, 3, "the pruned deliveries' attempts went with them");
    app.stop().await;
}
