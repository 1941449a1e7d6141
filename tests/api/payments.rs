//! The payment client against a real HTTP provider (tests/api/payments/provider.rs):
//! success, a decline then another card, a 500 then success, a hang past the timeout, a
//! malformed reply, and a breaker that opens (503, order compensated) and recovers. Each
//! ends with the order and the stock consistent, and at most one successful charge per order.

mod provider;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use self::provider::{Provider, Step};
use crate::helpers::{DECLINED_CARD, GOOD_CARD, Options, TestApp, assert_problem};

/// An app charging through `provider`: 300 ms per attempt, two quick retries, recovery
/// every 100 ms; `extra` overrides.
async fn app_with(provider: &Provider, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut config = vec![
        ("payments.url", provider.url.clone()),
        ("payments.timeout_ms", "300".to_string()),
        ("payments.retries", "2".to_string()),
        ("payments.backoff_base_ms", "10".to_string()),
        ("payments.backoff_max_ms", "50".to_string()),
        ("checkout.recovery_interval_ms", "100".to_string()),
    ];
    config.extend(extra);
    TestApp::spawn_with(Options { config, ..Default::default() }).await
}

/// A fresh product with `stock` units, a staff token and a customer token.
async fn shop(app: &TestApp, sku: &str, stock: i64) -> (String, String, String) {
    let staff = app.staff().await;
    let p = app.create_product(&staff, sku, 1200, stock).await;
    let (customer, _, _) = app.register_customer(&format!("{}@example.com", sku.to_lowercase())).await;
    (staff, customer, p["id"].as_str().unwrap().to_owned())
}

async fn pay(app: &TestApp, token: &str, order_id: &str, card: &str) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/orders/{order_id}/pay"), Some(token), &json!({ "card_number": card })).await
}

#[tokio::test]
async fn a_successful_charge_pays_the_order_with_one_charge() {
    let provider = Provider::start().await;
    let app = app_with(&provider, vec![]).await;
    let (staff, customer, product) = shop(&app, "PAY-OK", 3).await;
    let (status, order) = app.place_order(&customer, "PAY-OK", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid");
    let id = order["id"].as_str().unwrap();
    assert_eq!(provider.successful_charges(id), 1);
    assert_eq!(provider.charges_of(id)[0].idempotency_key, id, "the first attempt's key is the order id");
    assert_eq!(app.stock(&staff, &product).await, (3, 1, 2));
}

#[tokio::test]
async fn a_declined_card_leaves_the_order_payable_and_another_card_pays_it() {
    let provider = Provider::start().await;
    let app = app_with(&provider, vec![]).await;
    let (staff, customer, product) = shop(&app, "PAY-DECLINE", 3).await;
    let (status, problem) = app.place_order(&customer, "PAY-DECLINE", 1, Some(DECLINED_CARD)).await;
    assert_problem(status, &problem, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_eq!(problem["decline_code"], "card_declined");
    let id = problem["order_id"].as_str().expect("the 402 names the order").to_owned();
    let (_, order) = app.get(&format!("/api/v1/orders/{id}"), Some(&customer)).await;
    assert_eq!(order["status"], "pending_payment", "{order}");
    assert_eq!(app.stock(&staff, &product).await, (3, 1, 2), "the reservation holds while the order is payable");

    let (status, again) = pay(&app, &customer, &id, DECLINED_CARD).await;
    assert_problem(status, &again, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    let (status, paid) = pay(&app, &customer, &id, GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["payment_last4"], "4242");

    let keys: Vec<String> = provider.charges_of(&id).into_iter().map(|c| c.idempotency_key).collect();
    assert_eq!(keys, [id.clone(), format!("{id}:2"), format!("{id}:3")], "one key per attempt");
    assert_eq!(provider.successful_charges(&id), 1);
    assert_eq!(app.stock(&staff, &product).await, (3, 1, 2));
    let (status, problem) = pay(&app, &customer, &id, GOOD_CARD).await;
    assert_problem(status, &problem, StatusCode::CONFLICT, "invalid-transition");
    assert_eq!(provider.successful_charges(&id), 1);
}

#[tokio::test]
async fn a_declined_order_still_expires_and_releases_its_stock() {
    let provider = Provider::start().await;
    let extra =
        vec![("checkout.reservation_ttl_secs", "1".to_string()), ("checkout.expiry_interval_ms", "100".to_string())];
    let app = app_with(&provider, extra).await;
    let (staff, customer, product) = shop(&app, "PAY-EXPIRE", 2).await;
    let (status, problem) = app.place_order(&customer, "PAY-EXPIRE", 2, Some(DECLINED_CARD)).await;
    assert_problem(status, &problem, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    let id = problem["order_id"].as_str().unwrap();
    let order = app.wait_for_status(&customer, id, "cancelled").await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["failure_reason"], "reservation_expired");
    assert_eq!(app.stock(&staff, &product).await, (2, 0, 2));
    let (status, problem) = pay(&app, &customer, id, GOOD_CARD).await;
    assert_problem(status, &problem, StatusCode::CONFLICT, "invalid-transition");
    assert_eq!(provider.successful_charges(id), 0);
}

#[tokio::test]
async fn a_500_then_success_is_retried_under_the_same_key() {
    let provider = Provider::start().await;
    let app = app_with(&provider, vec![]).await;
    let (staff, customer, product) = shop(&app, "PAY-500", 2).await;
    provider.script(&[Step::Fail(500)]);
    let (status, order) = app.place_order(&customer, "PAY-500", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid");
    assert_eq!(provider.charge_requests(), 2, "one failed attempt, one retry");
    assert_eq!(provider.successful_charges(order["id"].as_str().unwrap()), 1);
    assert_eq!(app.stock(&staff, &product).await, (2, 1, 1));
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_abandoned_and_retried() {
    let provider = Provider::start().await;
    let app = app_with(&provider, vec![]).await;
    let (staff, customer, product) = shop(&app, "PAY-HANG", 2).await;
    provider.script(&[Step::Hang]);
    let (status, order) = app.place_order(&customer, "PAY-HANG", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid");
    assert_eq!(provider.charge_requests(), 2);
    assert_eq!(provider.successful_charges(order["id"].as_str().unwrap()), 1);
    assert_eq!(app.stock(&staff, &product).await, (2, 1, 1));
}

#[tokio::test]
async fn a_malformed_reply_is_not_retried_and_recovery_settles_it_by_lookup() {
    let provider = Provider::start().await;
    let app = app_with(&provider, vec![]).await;
    let (staff, customer, product) = shop(&app, "PAY-MALFORMED", 2).await;
    provider.script(&[Step::Malformed]);
    let (status, order) = app.place_order(&customer, "PAY-MALFORMED", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "pending_payment", "an unreadable reply leaves the outcome unknown");
    let id = order["id"].as_str().unwrap();
    let settled = app.wait_for_status(&customer, id, "paid").await;
    assert_eq!(settled["status"], "paid", "{settled}");
    assert_eq!(provider.charge_requests(), 1, "an unreadable answer is not retried");
    assert!(provider.lookups() >= 1);
    assert_eq!(provider.successful_charges(id), 1);
    assert_eq!(app.stock(&staff, &product).await, (2, 1, 1));
}

/// The payments check of `/readyz`: the breaker's state; readiness itself stays 200.
async fn breaker_in_readyz(app: &TestApp) -> String {
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "an open payment breaker does not make the replica unready: {ready}");
    let checks = ready["checks"].as_array().expect("checks");
    let payments = checks.iter().find(|c| c["name"] == "payments").expect("a payments check");
    payments["breaker"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn failures_open_the_breaker_then_checkout_fails_fast_and_compensates_until_it_recovers() {
    let provider = Provider::start().await;
    let extra = vec![
        ("payments.retries", "0".to_string()),
        ("payments.breaker_min_calls", "3".to_string()),
        ("payments.breaker_window_ms", "60000".to_string()),
        ("payments.breaker_failure_ratio", "0.6".to_string()),
        ("payments.breaker_open_ms", "1500".to_string()),
        ("payments.breaker_half_open_probes", "3".to_string()),
        ("checkout.recovery_interval_ms", "200".to_string()),
    ];
    let app = app_with(&provider, extra).await;
    let (staff, customer, product) = shop(&app, "PAY-BREAKER", 10).await;
    assert_eq!(breaker_in_readyz(&app).await, "closed");
    // A declined order waits for another card (a decline is a healthy answer for the breaker).
    let (status, problem) = app.place_order(&customer, "PAY-BREAKER", 1, Some(DECLINED_CARD)).await;
    assert_problem(status, &problem, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    let payable = problem["order_id"].as_str().unwrap().to_owned();

    provider.script(&[Step::Fail(500), Step::Fail(500)]);
    let mut unknown = Vec::new();
    for _ in 0..2 {
        let (status, order) = app.place_order(&customer, "PAY-BREAKER", 1, Some(GOOD_CARD)).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(order["status"], "pending_payment", "a 500 leaves the outcome to recovery");
        unknown.push(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(breaker_in_readyz(&app).await, "open");

    let sent = provider.charge_requests();
    let res = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&customer)
        .json(&json!({ "line_items": [{ "sku": "PAY-BREAKER", "quantity": 1 }], "payment": { "card_number": GOOD_CARD } }))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("retry-after").is_some(), "a 503 says when to retry");
    let status = res.status();
    let problem: Value = res.json().await.unwrap();
    assert_problem(status, &problem, StatusCode::SERVICE_UNAVAILABLE, "payments-unavailable");
    assert_eq!(provider.charge_requests(), sent, "an open breaker sends nothing");
    let shed = problem["order_id"].as_str().expect("the 503 names the compensated order");
    let (_, order) = app.get(&format!("/api/v1/orders/{shed}"), Some(&customer)).await;
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure_reason"], "payments_unavailable");
    let (status, problem) = pay(&app, &customer, &payable, GOOD_CARD).await;
    assert_problem(status, &problem, StatusCode::SERVICE_UNAVAILABLE, "payments-unavailable");
    let (_, order) = app.get(&format!("/api/v1/orders/{payable}"), Some(&customer)).await;
    assert_eq!(order["status"], "pending_payment", "paying an existing order leaves it payable: {order}");
    assert_eq!(provider.charge_requests(), sent, "an open breaker sends nothing");

    // The provider is healthy again; once the breaker lets probes through, checkout works.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, order) = app.place_order(&customer, "PAY-BREAKER", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(provider.successful_charges(order["id"].as_str().unwrap()), 1);

    // Recovery settles the two unknown charges by lookup: the provider never recorded them.
    for id in &unknown {
        let settled = app.wait_for_status(&customer, id, "failed").await;
        assert_eq!(settled["failure_reason"], "payment_interrupted", "{settled}");
        assert_eq!(provider.successful_charges(id), 0);
    }
    // Three good probes (the checkout and the two lookups) close the breaker again.
    let mut state = breaker_in_readyz(&app).await;
    for _ in 0..100 {
        if state == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = breaker_in_readyz(&app).await;
    }
    assert_eq!(state, "closed");
    let (status, paid) = pay(&app, &customer, &payable, GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(provider.successful_charges(&payable), 1);
    assert_eq!(provider.successful_charges(shed), 0);
    assert_eq!(app.stock(&staff, &product).await, (10, 2, 8), "only the two paid orders hold stock");
}
