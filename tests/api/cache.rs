//! The catalog cache shared through Redis: a second instance sees the first one's changes
//! (against `ORDERLY_TEST_REDIS_URL`; skipped with a note when unset), and reads survive a
//! Redis outage and use Redis again when it returns (against a redis-server of its own).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};

fn redis_url() -> Option<String> {
    match std::env::var("ORDERLY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: set ORDERLY_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379) to run the Redis cache tests");
            None
        }
    }
}

fn config(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("redis.url", url.to_owned()),
        ("redis.key_prefix", format!("orderly-test-{}:", uuid::Uuid::new_v4().simple())),
        ("redis.timeout_ms", "500".into()),
        ("redis.backoff_ms", "300".into()),
        ("cache.local_ttl_secs", "1".into()),
    ]
}

async fn price_of(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["price_minor"].clone()
}

#[tokio::test]
async fn a_second_instance_sees_a_change_made_by_the_first() {
    let Some(url) = redis_url() else { return };
    let cfg = config(&url);
    let a = TestApp::spawn_with(Options { config: cfg.clone(), ..Default::default() }).await;
    let b = TestApp::spawn_with(Options { config: cfg, db: Some(a.db.clone()), ..Default::default() }).await;
    let staff = a.staff().await;
    let p = a.create_product(&staff, "SHR-1", 100, 5).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    // Let both subscribers connect (each drops its local tier when it does).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(price_of(&b, &path).await, 100);
    assert_eq!(price_of(&a, &path).await, 100);
    assert_eq!(price_of(&b, &path).await, 100);
    let hits = b.app.catalog.cache.stats();
    assert!(hits.local_hits + hits.shared_hits >= 1, "{hits:?}");

    let (status, body) = a.patch(&path, Some(&staff), &json!({ "price_minor": 150 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The pub/sub message arrives within milliseconds; well under the 1 s local TTL.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    loop {
        if price_of(&b, &path).await == 150 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "B still serves the old price");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A checkout on B reaches A the same way.
    let (customer, _, _) = b.register_customer("shared-cache@example.com").await;
    assert_eq!(b.place_order(&customer, "SHR-1", 2, None).await.0, StatusCode::CREATED);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    loop {
        let (_, body) = a.get(&path, None).await;
        if body["available"] == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "A still serves the old stock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A redis-server of this test's own on a free port (the machine's Redis is never stopped).
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(OwnRedis { port, child })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_for_port(port: u16, up: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() != up {
        assert!(tokio::time::Instant::now() < deadline, "redis-server on {port} did not turn up={up}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cache_check(app: &TestApp) -> Value {
    let (_, body) = app.get("/readyz", None).await;
    body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "cache").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn reads_survive_a_redis_outage_and_hits_resume_when_it_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let Some(mut redis) = OwnRedis::start(port) else {
        eprintln!("skipped: no redis-server on PATH");
        return;
    };
    wait_for_port(port, true).await;
    let app =
        TestApp::spawn_with(Options { config: config(&format!("redis://127.0.0.1:{port}")), ..Default::default() })
            .await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "OUT-1", 100, 5).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    assert_eq!(price_of(&app, &path).await, 100);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(price_of(&app, &path).await, 100);
    assert!(app.app.catalog.cache.stats().shared_hits >= 1, "read from Redis after the local copy expired");

    redis.stop();
    wait_for_port(port, false).await;
    for _ in 0..10 {
        assert_eq!(price_of(&app, &path).await, 100);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (status, _) = app.patch(&path, Some(&staff), &json!({ "price_minor": 120 })).await;
    assert_eq!(status, StatusCode::OK, "a write succeeds without Redis");
    assert_eq!(price_of(&app, &path).await, 120);
    assert_eq!(cache_check(&app).await["status"], "degraded");
    let (status, _) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "a dead Redis does not make the process unready");

    let _redis = OwnRedis::start(redis.port).unwrap();
    wait_for_port(port, true).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let before = app.app.catalog.cache.stats().shared_hits;
    loop {
        assert_eq!(price_of(&app, &path).await, 120);
        if app.app.catalog.cache.stats().shared_hits > before {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "Redis hits did not resume");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(cache_check(&app).await["status"], "ok");
}
