//! Rate limits: headers and 429s, route classes, identities, trusted proxies, the login
//! lockout — in-process, and shared through the real Redis when `ORDERLY_TEST_REDIS_URL`
//! is set (those tests print a notice and pass without it) — and the Redis failure policy.

mod proxy;
mod redis;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{GOOD_CARD, Options, PASSWORD, TestApp, assert_problem};

async fn spawn(config: &[(&'static str, &str)]) -> TestApp {
    let config = config.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    TestApp::spawn_with(Options { config, ..Default::default() }).await
}

fn header(res: &Response, name: &str) -> String {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// GET /products from `forwarded_for` (as a proxy would report it), if given.
async fn products(app: &TestApp, token: Option<&str>, forwarded_for: Option<&str>) -> Response {
    let mut req = app.client.get(app.url("/api/v1/products"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.expect("request")
}

/// POST /auth/login; returns status, body and `Retry-After` (0 when absent).
async fn login(app: &TestApp, email: &str, password: &str, forwarded_for: Option<&str>) -> (StatusCode, Value, u64) {
    let mut req = app.client.post(app.url("/api/v1/auth/login")).json(&json!({ "email": email, "password": password }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let res = req.send().await.expect("request");
    let (status, wait) = (res.status(), retry_after(&res));
    (status, res.json().await.unwrap_or(Value::Null), wait)
}

fn retry_after(res: &Response) -> u64 {
    header(res, "retry-after").parse().unwrap_or(0)
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_ratelimit_headers_on_every_response() {
    let app = spawn(&[("ratelimit.api_limit", "3"), ("ratelimit.api_window_secs", "60")]).await;
    for remaining in [2, 1, 0] {
        let res = products(&app, None, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        // draft-ietf-httpapi-ratelimit-headers-10: one unit comes back every 60/3 = 20 s.
        assert_eq!(header(&res, "ratelimit-policy"), "\"api\";q=3;w=60");
        assert_eq!(header(&res, "ratelimit"), format!("\"api\";r={remaining};t=20"));
    }
    let res = products(&app, None, None).await;
    let wait = retry_after(&res);
    assert!((19..=20).contains(&wait), "Retry-After {wait}");
    assert_eq!(header(&res, "ratelimit"), format!("\"api\";r=0;t={wait}"));
    assert_eq!(header(&res, "ratelimit-policy"), "\"api\";q=3;w=60");
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["api"]));
    // Probes are never limited.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn login_has_its_own_stricter_budget() {
    let app = spawn(&[
        ("ratelimit.login_limit", "2"),
        ("ratelimit.lockout_account_failures", "0"),
        ("ratelimit.lockout_ip_failures", "0"),
    ])
    .await;
    for _ in 0..2 {
        let (status, body, _) = login(&app, "nobody@example.com", "wrong password", None).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    let (status, body, wait) = login(&app, "nobody@example.com", "wrong password", None).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["login"]));
    assert!(wait >= 1);
    assert_eq!(products(&app, None, None).await.status(), StatusCode::OK, "other routes keep their own budget");
}

#[tokio::test]
async fn checkout_is_limited_per_user() {
    let app = spawn(&[("ratelimit.checkout_limit", "1")]).await;
    let staff = app.staff().await;
    app.create_product(&staff, "RL-1", 100, 10).await;
    let (ann, _, _) = app.register_customer("ann@example.com").await;
    let (bob, _, _) = app.register_customer("bob@example.com").await;

    let (status, order) = app.place_order(&ann, "RL-1", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (status, body) = app.place_order(&ann, "RL-1", 1, Some(GOOD_CARD)).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["checkout"]));
    let pay = format!("/api/v1/orders/{}/pay", order["id"].as_str().unwrap());
    let (status, _) = app.post(&pay, Some(&ann), &json!({ "card_number": GOOD_CARD })).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "paying draws from the checkout budget too");
    assert_eq!(app.get("/api/v1/orders", Some(&ann)).await.0, StatusCode::OK);
    assert_eq!(app.place_order(&bob, "RL-1", 1, Some(GOOD_CARD)).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn callers_are_counted_by_api_key_else_user_else_address() {
    let app = spawn(&[("ratelimit.api_limit", "2")]).await;
    let admin = app.admin().await;
    let (status, created) =
        app.post("/api/v1/api-keys", Some(&admin), &json!({ "name": "k", "scopes": ["catalog:read"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let (customer, _, _) = app.register_customer("counted@example.com").await;

    for token in [None, Some(customer.as_str()), Some(key.as_str())] {
        for _ in 0..2 {
            assert_eq!(products(&app, token, None).await.status(), StatusCode::OK);
        }
        assert_eq!(products(&app, token, None).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy_and_only_its_right_most_untrusted_hop() {
    let direct = spawn(&[("ratelimit.api_limit", "1")]).await;
    assert_eq!(products(&direct, None, Some("198.51.100.1")).await.status(), StatusCode::OK);
    assert_eq!(products(&direct, None, Some("198.51.100.2")).await.status(), StatusCode::TOO_MANY_REQUESTS);

    let proxied =
        spawn(&[("ratelimit.api_limit", "1"), ("ratelimit.trusted_proxies", "127.0.0.1/32, 10.0.0.0/8")]).await;
    assert_eq!(products(&proxied, None, Some("198.51.100.1")).await.status(), StatusCode::OK);
    assert_eq!(products(&proxied, None, Some("198.51.100.2, 10.1.2.3")).await.status(), StatusCode::OK);
    assert_eq!(products(&proxied, None, Some("198.51.100.2")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // A client that writes its own header does not escape: the proxy appended the real one.
    let spoofed = products(&proxied, None, Some("203.0.113.66, 198.51.100.1")).await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn failed_logins_lock_the_account_even_for_the_right_password() {
    let app = spawn(&[("ratelimit.lockout_account_failures", "3"), ("ratelimit.lockout_ip_failures", "0")]).await;
    app.register_customer("locked@example.com").await;
    app.register_customer("other@example.com").await;
    for _ in 0..3 {
        let (status, _, _) = login(&app, "Locked@Example.com", "wrong password", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, wait) = login(&app, "locked@example.com", PASSWORD, None).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["login-account"]));
    assert!((850..=900).contains(&wait), "the 15-minute window: {wait}");
    assert_eq!(
        login(&app, "other@example.com", PASSWORD, None).await.0,
        StatusCode::OK,
        "other accounts are untouched"
    );

    // A successful login clears the account's count.
    for _ in 0..2 {
        assert_eq!(login(&app, "other@example.com", "wrong password", None).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&app, "other@example.com", PASSWORD, None).await.0, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(login(&app, "other@example.com", "wrong password", None).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&app, "other@example.com", PASSWORD, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn failed_logins_from_one_address_lock_that_address() {
    let app = spawn(&[
        ("ratelimit.lockout_account_failures", "0"),
        ("ratelimit.lockout_ip_failures", "3"),
        ("ratelimit.trusted_proxies", "127.0.0.1"),
    ])
    .await;
    app.register_customer("dan@example.com").await;
    for i in 0..3 {
        let (status, _, _) =
            login(&app, &format!("guess{i}@example.com"), "wrong password", Some("198.51.100.7")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, _) = login(&app, "dan@example.com", PASSWORD, Some("198.51.100.7")).await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(body["violated-policies"], json!(["login-ip"]));
    assert_eq!(login(&app, "dan@example.com", PASSWORD, Some("198.51.100.8")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_redis_at_start_up_degrades_the_same_way() {
    // A port nobody listens on: connections are refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let app = spawn(&[("redis.url", url.as_str())]).await;
    assert_eq!(products(&app, None, None).await.status(), StatusCode::OK);
    let (status, body) = app
        .post("/api/v1/auth/register", None, &json!({ "email": "x@example.com", "password": PASSWORD, "name": "X" }))
        .await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}
