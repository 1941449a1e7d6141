//! The relay against NATS JetStream: an outage delays events without losing or failing
//! anything, and a row published twice is stored once. Needs `ORDERLY_TEST_NATS_URL`; the
//! outage test also needs the `nats-server` binary (`ORDERLY_TEST_NATS_SERVER`, default
//! `/usr/sbin/nats-server`) and starts its own server, never touching the shared one.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use reqwest::StatusCode;

use super::{place_one_order, unpublished, wait_until_published};
use crate::helpers::{Options, TestApp, test_nats_url};

/// A `nats-server -js` of the test's own, on a free port, killed when dropped.
struct OwnNatsServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnNatsServer {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    async fn start(port: u16) -> OwnNatsServer {
        let bin = std::env::var("ORDERLY_TEST_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        OwnNatsServer { child, _dir: dir }
    }
}

impl Drop for OwnNatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The distinct event ids of `subject` in `stream`, read with a consumer of the test's own.
async fn distinct_ids(url: &str, stream: &str, subject: &str, want: usize) -> HashSet<String> {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let consumer = js
        .get_stream(stream)
        .await
        .unwrap()
        .create_consumer(pull::OrderedConfig { filter_subject: subject.into(), ..Default::default() })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut ids = HashSet::new();
    // Reads until `want` distinct ids came, or nothing more comes for 2 s.
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
        let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string()).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(body["id"].as_str(), Some(id.as_str()), "Nats-Msg-Id is the event id");
        ids.insert(id);
        if ids.len() > want {
            break;
        }
    }
    ids
}

async fn stream_messages(url: &str, stream: &str) -> u64 {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    js.get_stream(stream).await.unwrap().get_info().await.unwrap().state.messages
}

#[tokio::test]
async fn orders_taken_while_nats_is_down_are_published_once_it_is_up() {
    if test_nats_url().is_none() {
        eprintln!("skipped: ORDERLY_TEST_NATS_URL is not set");
        return;
    }
    let port = OwnNatsServer::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let app = TestApp::spawn_with(Options {
        config: vec![
            ("nats.url", url.clone()),
            ("nats.stream", "OUTAGE".into()),
            ("nats.subject_prefix", "outage".into()),
        ],
        ..Default::default()
    })
    .await;
    let staff = app.staff().await;
    app.create_product(&staff, "OUT-1", 500, 1000).await;
    let (customer, _, _) = app.register_customer("outage@example.com").await;
    for _ in 0..100 {
        let (status, order) = app.place_order(&customer, "OUT-1", 1, None).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
    }
    let waiting: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL AND event_type = 'order.placed'")
            .fetch_one(app.app.db.pool())
            .await
            .unwrap();
    assert_eq!(waiting, 100, "every order's event waits in the outbox");
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "NATS down does not make the replica unready: {ready}");
    let bus = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "bus").unwrap().clone();
    assert_eq!(bus["status"], "unavailable", "{ready}");

    let _server = OwnNatsServer::start(port).await;
    assert_eq!(wait_until_published(&app, Duration::from_secs(30)).await, 0, "all published within 30 s");
    let ids = distinct_ids(&url, "OUTAGE", "outage.order.placed", 100).await;
    assert_eq!(ids.len(), 100);
    let (_, ready) = app.get("/readyz", None).await;
    let bus = ready["checks"].as_array().unwrap().iter().find(|c| c["name"] == "bus").unwrap().clone();
    assert_eq!(bus["status"], "ok", "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn a_row_published_again_after_a_lost_commit_is_stored_once() {
    let Some(url) = test_nats_url() else {
        eprintln!("skipped: ORDERLY_TEST_NATS_URL is not set");
        return;
    };
    let app = TestApp::spawn().await;
    let order_id = place_one_order(&app, "DEDUP-1").await;
    assert_eq!(wait_until_published(&app, Duration::from_secs(10)).await, 0);
    let stream = app.db.bus.clone();
    let before = stream_messages(&url, &stream).await;
    assert!(before > 0);

    // As if the relay's commit after the publish had been lost.
    let reset = sqlx::query(
        "UPDATE outbox SET published_at = NULL, seq = NULL WHERE aggregate_id = $1 AND event_type = 'order.placed'",
    )
    .bind(&order_id)
    .execute(app.app.db.pool())
    .await
    .unwrap();
    assert_eq!(reset.rows_affected(), 1);
    assert_eq!(wait_until_published(&app, Duration::from_secs(10)).await, 0, "the relay publishes it again");
    assert_eq!(unpublished(&app).await, 0);
    assert_eq!(stream_messages(&url, &stream).await, before, "JetStream dropped the duplicate");
    app.stop().await;
}
