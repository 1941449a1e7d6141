//! Two replicas on one database and one NATS: an event caused on one reaches the other's
//! hub, which is what its SSE and WebSocket clients read. Needs `ORDERLY_TEST_NATS_URL`.

use std::time::Duration;

use super::{place_one_order, receive_until};
use crate::helpers::{Options, TestApp, test_nats_url};

#[tokio::test]
async fn an_event_recorded_on_replica_b_reaches_replica_a_hub_once() {
    if test_nats_url().is_none() {
        eprintln!("skipped: ORDERLY_TEST_NATS_URL is not set");
        return;
    }
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_with(Options { db: Some(a.db.clone()), ..Default::default() }).await;
    let mut on_a = a.app.hub.subscribe();
    let mut on_b = b.app.hub.subscribe();

    let order_id = place_one_order(&b, "REPL-1").await;
    let placed =
        |e: &orderly::events::bus::Envelope| e.event_type == "order.placed" && e.aggregate_id.to_string() == order_id;
    let got_a = receive_until(&mut on_a, Duration::from_secs(10), placed).await;
    assert!(got_a.last().is_some_and(|e| placed(e)), "replica A's hub got order.placed");
    let got_b = receive_until(&mut on_b, Duration::from_secs(10), placed).await;
    assert!(got_b.last().is_some_and(|e| placed(e)), "replica B's hub got it too");
    // Once on each hub, whichever replica's relay published it.
    let ids = |got: &[std::sync::Arc<orderly::events::bus::Envelope>]| got.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&got_a), ids(&got_b));
    b.stop().await;
    a.stop().await;
}
