//! Two replicas on one database and one NATS: a client on A sees an order paid on B.
//! Needs `ORDERLY_TEST_NATS_URL` (and the NATS relay/fan-out of issue 8 part 2, 6).

use std::sync::Arc;

use super::*;
use crate::helpers::{Options, TestDb};

/// Replica A relays almost never (one round at start), so whatever it sees of B's
/// changes came through NATS, not through its own relay reading the shared outbox.
async fn replicas(nats: &str) -> (TestApp, TestApp) {
    let db = Arc::new(TestDb::new().await);
    let a = TestApp::spawn_with(Options {
        config: vec![("nats.url", nats.to_owned()), ("events.relay_interval_ms", "3600000".to_owned())],
        db: Some(db.clone()),
        ..Default::default()
    })
    .await;
    let b = TestApp::spawn_with(Options {
        config: vec![("nats.url", nats.to_owned())],
        db: Some(db),
        ..Default::default()
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn an_sse_client_on_replica_a_sees_an_order_paid_on_replica_b() {
    let Some(nats) = nats_url() else {
        eprintln!("skipped: ORDERLY_TEST_NATS_URL is not set");
        return;
    };
    let (a, b) = replicas(&nats).await;
    let shop = shop(&b).await;
    let id = pending_order(&b, &shop.customer, &shop.sku).await;
    // Live only (no Last-Event-ID): the replay from the shared outbox cannot help.
    let mut stream = sse(&a, &format!("/api/v1/orders/{id}/events"), &shop.customer, None).await;
    pay(&b, &shop.customer, &id).await;
    loop {
        let e = envelope(&next_event(&mut stream).await);
        if e["type"] == "order.paid" {
            assert_eq!(e["aggregate_id"], id.as_str());
            break;
        }
    }
}

#[tokio::test]
async fn a_websocket_client_on_replica_a_sees_an_order_paid_on_replica_b() {
    let Some(nats) = nats_url() else {
        eprintln!("skipped: ORDERLY_TEST_NATS_URL is not set");
        return;
    };
    let (a, b) = replicas(&nats).await;
    let shop = shop(&b).await;
    let id = pending_order(&b, &shop.customer, &shop.sku).await;
    let mut ws = ws_connect(&a, Some(&shop.customer)).await;
    subscribe(&mut ws, &format!("order:{id}"), None).await;
    pay(&b, &shop.customer, &id).await;
    loop {
        let (_, e) = next_ws_event(&mut ws).await;
        if e["type"] == "order.paid" {
            assert_eq!(e["aggregate_id"], id.as_str());
            break;
        }
    }
}
