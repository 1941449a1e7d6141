//! A client that stops reading is cut off once it falls `events.hub_capacity` events
//! behind; a fast client on the same feed receives every event meanwhile.

use orderly::events::{self, Event, ImportCompleted};

use super::*;
use crate::helpers::Options;

/// Records `n` events of about 4 KiB each (import summaries) in one transaction.
async fn record_burst(app: &TestApp, n: usize) {
    let mut tx = app.app.db.begin_write().await.unwrap();
    for i in 0..n {
        let counts = (0..100u64).map(|j| (format!("padding_padding_padding_{i:04}_{j:04}"), j)).collect();
        events::record(&mut tx, Event::ImportCompleted(ImportCompleted { kind: "products".into(), counts }))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

const CHUNKS: usize = 60;
const PER_CHUNK: usize = 50;

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_a_fast_one_gets_every_event() {
    let config = vec![
        ("events.hub_capacity", "256".to_string()),
        ("events.relay_batch", "16".to_string()),
        ("events.relay_interval_ms", "20".to_string()),
    ];
    let app = TestApp::spawn_with(Options { config, ..Default::default() }).await;
    let staff = app.staff().await;
    let before = app.app.hub.subscribers();
    let mut fast = sse(&app, "/api/v1/events?types=import.completed", &staff, None).await;
    let slow = open_sse(&app, "/api/v1/events?types=import.completed", Some(&staff), None).await;
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(app.app.hub.subscribers(), before + 2);

    // Paced by the fast reader, so it never lags; the slow one never reads. ~12 MB in all,
    // more than the socket buffers between the server and the slow client hold.
    let mut seqs: Vec<i64> = Vec::new();
    for _ in 0..CHUNKS {
        record_burst(&app, PER_CHUNK).await;
        for _ in 0..PER_CHUNK {
            let e = envelope(&next_event(&mut fast).await);
            let seq = e["seq"].as_i64().unwrap();
            if let Some(prev) = seqs.last() {
                assert_eq!(seq, prev + 1, "the fast client misses nothing");
            }
            seqs.push(seq);
        }
    }
    assert_eq!(seqs.len(), CHUNKS * PER_CHUNK);

    // The slow client now reads: what its socket held, then the end of its stream.
    let mut slow = Box::pin(slow.bytes_stream().eventsource());
    let mut received = 0usize;
    let ended = tokio::time::timeout(WAIT * 2, async {
        while let Some(item) = slow.next().await {
            if item.is_ok() {
                received += 1;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client's stream ends instead of resuming after a gap");
    assert!(received < seqs.len(), "the slow client was cut off ({received} events)");
    assert_eq!(app.app.hub.subscribers(), before + 1, "only the fast client is still attached");

    // And the fast one is still live.
    record_burst(&app, 1).await;
    let e = envelope(&next_event(&mut fast).await);
    assert_eq!(e["seq"].as_i64().unwrap(), seqs.last().unwrap() + 1);
}
