//! The limits shared through the real Redis at `ORDERLY_TEST_REDIS_URL` (each test prints
//! a notice and passes when it is unset), and what happens when Redis goes away.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::proxy::{NO_HANG, Proxy};
use super::{header, login, products, retry_after, spawn};
use crate::helpers::{Options, PASSWORD, TestApp, assert_problem};

fn redis_url() -> Option<String> {
    match std::env::var("ORDERLY_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: set ORDERLY_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379) to run the Redis tests");
            None
        }
    }
}

/// A key prefix of its own, so tests running in parallel on one Redis never share a bucket.
fn unique_prefix() -> String {
    format!("orderly-test-{}:", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn two_instances_on_one_redis_share_one_budget_and_one_lockout() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let config = [
        ("redis.url", url.as_str()),
        ("redis.key_prefix", prefix.as_str()),
        // Generous: this test is about sharing, not about the failure policy.
        ("redis.timeout_ms", "2000"),
        ("ratelimit.api_limit", "4"),
        ("ratelimit.lockout_account_failures", "2"),
    ];
    let a = spawn(&config).await;
    let owned = config.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let b = TestApp::spawn_with(Options { config: owned, db: Some(a.db.clone()), ..Default::default() }).await;

    for (app, remaining) in [(&a, 3), (&a, 2), (&b, 1), (&b, 0)] {
        let res = products(app, None, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        // One unit comes back every 60/4 = 15 s; `t` counts down from there as time passes.
        let field = header(&res, "ratelimit");
        let t: u64 = field.rsplit("t=").next().and_then(|t| t.parse().ok()).unwrap_or(0);
        assert!(field.starts_with(&format!("\"api\";r={remaining};t=")) && (10..=15).contains(&t), "{field}");
    }
    for app in [&b, &a] {
        let res = products(app, None, None).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=15).contains(&retry_after(&res)));
    }

    a.register_customer("shared@example.com").await;
    for _ in 0..2 {
        assert_eq!(login(&a, "shared@example.com", "wrong password", None).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body, _) = login(&b, "shared@example.com", PASSWORD, None).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

#[tokio::test]
async fn when_redis_goes_away_reads_are_served_and_login_fails_closed_without_hanging() {
    let Some(url) = redis_url() else { return };
    let proxy = Proxy::start(&url).await;
    let prefix = unique_prefix();
    let app = spawn(&[
        ("redis.url", proxy.url.as_str()),
        ("redis.key_prefix", prefix.as_str()),
        ("redis.timeout_ms", "100"),
        ("redis.backoff_ms", "300"),
    ])
    .await;
    app.register_customer("outage@example.com").await;
    assert_eq!(products(&app, None, None).await.status(), StatusCode::OK);
    let (_, ready) = app.get("/readyz", None).await;
    assert!(ready["checks"].as_array().unwrap().iter().any(|c| c["name"] == "redis" && c["status"] == "ok"), "{ready}");

    proxy.blackhole();
    for _ in 0..3 {
        let started = Instant::now();
        let res = products(&app, None, None).await;
        assert_eq!(res.status(), StatusCode::OK, "reads fail open");
        assert!(!header(&res, "ratelimit").is_empty(), "limited by this process meanwhile");
        assert!(started.elapsed() < NO_HANG, "took {:?}", started.elapsed());

        let started = Instant::now();
        let (status, body, wait) = login(&app, "outage@example.com", PASSWORD, None).await;
        assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(wait, 1);
        assert!(started.elapsed() < NO_HANG, "took {:?}", started.elapsed());
    }
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "Redis is not a reason to leave the load balancer: {ready}");
    assert!(ready["checks"].as_array().unwrap().iter().any(|c| c["name"] == "redis" && c["status"] == "unavailable"));

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    while login(&app, "outage@example.com", PASSWORD, None).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "login did not recover after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
