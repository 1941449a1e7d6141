//! Observability: Prometheus metrics and CPU profiles on the admin listener (never on the
//! public port), and the HTTP payment gateway end to end against a stub that speaks its
//! protocol, with W3C `traceparent` carried from the incoming request to the gateway.
//!
//! The metrics recorder is process-wide and tests run in parallel, so assertions compare a
//! series before and after this test's own requests (`>=`), never exact totals.

pub mod gateway_stub;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use self::gateway_stub::{GatewayStub, OUTAGE_CARD};
use crate::helpers::{DECLINED_CARD, GOOD_CARD, Options, TestApp, assert_problem};

/// The value of `series` (name and labels exactly as rendered) in a Prometheus scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// `GET` of an absolute URL (the admin port); status and JSON body (`Null` if not JSON).
async fn get_absolute(app: &TestApp, url: &str) -> (StatusCode, Value) {
    let res = app.client.get(url).send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn scrape(app: &TestApp) -> String {
    let res = app.client.get(format!("{}/metrics", app.admin_base)).send().await.expect("scrape");
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().expect("content type").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    res.text().await.expect("scrape body")
}

#[tokio::test]
async fn metrics_are_served_on_the_admin_port_only_and_labelled_by_route_template() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let product = app.create_product(&staff, "OBS-1", 500, 3).await;
    let id = product["id"].as_str().unwrap();
    let series = r#"http_requests_total{method="GET",route="/api/v1/products/{id}",status="200"}"#;
    let before = sample(&scrape(&app).await, series);

    let (status, _) = app.get(&format!("/api/v1/products/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "metrics must not be on the public port");

    let text = scrape(&app).await;
    assert!(sample(&text, series) >= before + 1.0, "{text}");
    assert!(!text.contains(id), "a raw path leaked into a label");
    assert!(text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#), "{text}");
    assert!(text.contains(
        r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/products/{id}",status="200",le="0.005"}"#
    ));
    assert!(
        text.contains(&format!(r#"orderly_build_info{{version="{}",profile="#, env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("# HELP http_requests_total "));
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    assert!(text.contains("db_pool_max_connections "));
    assert!(text.contains(r#"db_pool_connections{state="idle"}"#));
}

#[tokio::test]
async fn orders_placed_and_saga_outcomes_are_counted() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "OBS-2", 900, 5).await;
    let (customer, _, _) = app.register_customer("counted@example.com").await;
    let placed = r#"orderly_orders_placed_total{currency="USD"}"#;
    let paid = r#"orderly_saga_outcomes_total{outcome="paid"}"#;
    let declined = r#"orderly_saga_outcomes_total{outcome="declined"}"#;
    let charged = r#"orderly_payment_gateway_calls_total{operation="charge",result="declined"}"#;
    let before = scrape(&app).await;

    let (status, body) = app.place_order(&customer, "OBS-2", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.place_order(&customer, "OBS-2", 1, Some(DECLINED_CARD)).await;
    assert_problem(status, &body, StatusCode::PAYMENT_REQUIRED, "payment-declined");

    let after = scrape(&app).await;
    for (series, at_least) in [(placed, 2.0), (paid, 1.0), (declined, 1.0), (charged, 1.0)] {
        assert!(sample(&after, series) >= sample(&before, series) + at_least, "{series}\n{after}");
    }
    assert!(after.contains(r#"orderly_payment_gateway_call_duration_seconds_count{operation="charge"}"#));
}

#[tokio::test]
async fn a_cpu_profile_is_taken_one_at_a_time() {
    let app = TestApp::spawn().await;
    let url = |q: &str| format!("{}/debug/pprof/profile?{q}", app.admin_base);
    let first = tokio::spawn(app.client.get(url("seconds=2")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = get_absolute(&app, &url("seconds=1")).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "profile-in-progress");

    // Some work to sample while the profile runs.
    for _ in 0..50 {
        let _ = app.get("/api/v1/products?limit=5", None).await;
    }
    let res = first.await.unwrap().expect("profile");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.len() > 20 && bytes[..2] == [0x1f, 0x8b], "not a gzip-compressed profile: {} bytes", bytes.len());

    let res = app.client.get(url("seconds=1&format=flamegraph")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.text().await.unwrap().contains("<svg"));

    let (status, body) = get_absolute(&app, &url("seconds=61")).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
}

/// A test app whose payments go to `stub` over HTTP.
async fn app_with_gateway(stub: &GatewayStub, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut config = vec![("payments.url", stub.url.clone())];
    config.extend(extra);
    TestApp::spawn_with(Options { config, ..Default::default() }).await
}

async fn checkout_with_traceparent(
    app: &TestApp,
    token: &str,
    sku: &str,
    card: &str,
    traceparent: &str,
) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(token)
        .header("traceparent", traceparent)
        .json(&json!({ "line_items": [{ "sku": sku, "quantity": 1 }], "payment": { "card_number": card } }))
        .send()
        .await
        .expect("checkout");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_http_gateway_charges_declines_and_refunds_carrying_the_callers_trace() {
    let stub = GatewayStub::start().await;
    let app = app_with_gateway(&stub, vec![]).await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "GW-1", 1500, 5).await;
    let (customer, _, _) = app.register_customer("gateway@example.com").await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";

    let (status, order) =
        checkout_with_traceparent(&app, &customer, "GW-1", GOOD_CARD, &format!("00-{trace}-00f067aa0ba902b7-01")).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid");
    let charge = stub.requests().into_iter().find(|r| r.method == "POST" && r.path == "/charges").expect("a charge");
    assert_eq!(charge.idempotency_key.as_deref(), order["id"].as_str(), "the order id is the idempotency key");
    let traceparent = charge.traceparent.expect("traceparent on the charge request");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace, "the gateway call continues the caller's trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "the gateway's parent is our client span, not the caller's");
    assert_eq!(charge.card_number.as_deref(), Some(GOOD_CARD));

    let (status, problem) =
        checkout_with_traceparent(&app, &customer, "GW-1", DECLINED_CARD, &format!("00-{trace}-00f067aa0ba902b7-01"))
            .await;
    assert_problem(status, &problem, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_eq!(problem["decline_code"], "card_declined");
    let (_, declined) =
        app.get(&format!("/api/v1/orders/{}", problem["order_id"].as_str().unwrap()), Some(&customer)).await;
    assert_eq!(declined["status"], "pending_payment", "a declined order stays payable");
    assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await.2, 3, "the declined order's unit stays reserved");

    let paid_id = order["id"].as_str().unwrap();
    let (status, refunded) = app.post(&format!("/api/v1/orders/{paid_id}/refund"), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{refunded}");
    let refund = stub.requests().into_iter().find(|r| r.path.ends_with("/refund")).expect("a refund call");
    assert!(refund.path.starts_with("/charges/ch_"), "{}", refund.path);
    assert!(refund.traceparent.is_some(), "traceparent on the refund call");
}

#[tokio::test]
async fn a_gateway_outage_leaves_the_order_to_recovery_which_looks_the_charge_up() {
    let stub = GatewayStub::start().await;
    let app = app_with_gateway(
        &stub,
        vec![("payments.timeout_ms", "300".into()), ("checkout.recovery_interval_ms", "100".into())],
    )
    .await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "GW-2", 800, 2).await;
    let (customer, _, _) = app.register_customer("outage@example.com").await;

    let (status, order) = app.place_order(&customer, "GW-2", 1, Some(OUTAGE_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "pending_payment", "a 503 leaves the outcome unknown");
    let id = order["id"].as_str().unwrap();
    let settled = app.wait_for_status(&customer, id, "failed").await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert_eq!(settled["failure_reason"], "payment_interrupted");
    let lookups: Vec<_> = stub.requests().into_iter().filter(|r| r.method == "GET").collect();
    assert!(lookups.iter().any(|r| r.query.contains(id)), "recovery looked the charge up by its key");
    assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await.2, 2);

    let text = scrape(&app).await;
    assert!(text.contains(r#"orderly_payment_gateway_calls_total{operation="charge",result="unavailable"}"#), "{text}");
    assert!(text.contains(r#"orderly_payment_gateway_calls_total{operation="lookup",result="not_found"}"#));
    assert!(text.contains(r#"orderly_saga_outcomes_total{outcome="recovered_failed"}"#));
}
