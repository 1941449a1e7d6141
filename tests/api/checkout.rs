//! The checkout saga: pricing, reservation races, payment outcomes, compensation, crash
//! recovery and reservation expiry.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orderly::Overrides;
use orderly::payments::sandbox::SandboxGateway;
use orderly::payments::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{DECLINED_CARD, GOOD_CARD, Options, TestApp, assert_problem};

#[tokio::test]
async fn checkout_prices_from_the_catalog_and_snapshots_line_items() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let a = app.create_product(&staff, "SN-A", 250, 10).await;
    app.create_product(&staff, "SN-B", 1_000, 10).await;
    let (customer, _, _) = app.register_customer("snap@example.com").await;
    let body = json!({ "line_items": [ { "sku": "SN-A", "quantity": 1 }, { "sku": "SN-B", "quantity": 1 }, { "sku": "SN-A", "quantity": 1 } ],
                       "payment": { "card_number": GOOD_CARD } });
    let (status, order) = app.post("/api/v1/orders", Some(&customer), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total_minor"], 1_500);
    assert_eq!(order["payment_last4"], "4242");
    let lines = order["line_items"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "repeated SKUs are merged: {order}");
    assert_eq!(
        (lines[0]["sku"].as_str(), lines[0]["quantity"].as_i64(), lines[0]["line_total_minor"].as_i64()),
        (Some("SN-A"), Some(2), Some(500))
    );

    // Later catalog edits never change what was bought.
    let (status, _) = app
        .patch(
            &format!("/api/v1/products/{}", a["id"].as_str().unwrap()),
            Some(&staff),
            &json!({ "price_minor": 9_999, "name": "Renamed" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = app.get(&format!("/api/v1/orders/{}", order["id"].as_str().unwrap()), Some(&customer)).await;
    assert_eq!(again["line_items"][0]["unit_price_minor"], 250);
    assert_eq!(again["line_items"][0]["name"], "Product SN-A");
    assert_eq!(again["total_minor"], 1_500);
}

#[tokio::test]
async fn a_client_sent_total_or_price_is_rejected_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "TT-1", 5_000, 3).await;
    let (customer, _, _) = app.register_customer("cheat@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/orders",
            Some(&customer),
            &json!({ "line_items": [{ "sku": "TT-1", "quantity": 1 }], "total_minor": 1 }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "total_minor");
    let (status, body) = app
        .post(
            "/api/v1/orders",
            Some(&customer),
            &json!({ "line_items": [{ "sku": "TT-1", "quantity": 1, "unit_price_minor": 1 }] }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "line_items[0].unit_price_minor");
    let (status, body) = app
        .post(
            "/api/v1/orders",
            Some(&customer),
            &json!({ "line_items": [{ "sku": "NOPE", "quantity": 1 }, { "sku": "TT-1", "quantity": 0 }] }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["line_items[1].quantity"]);
    let (_, orders) = app.get("/api/v1/orders", Some(&customer)).await;
    assert!(orders["items"].as_array().unwrap().is_empty());
    assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await, (3, 0, 3));
}

#[tokio::test]
async fn ordering_more_than_is_available_is_a_conflict_that_changes_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let a = app.create_product(&staff, "IS-A", 100, 5).await;
    app.create_product(&staff, "IS-B", 100, 1).await;
    let (customer, _, _) = app.register_customer("greedy@example.com").await;
    let body = json!({ "line_items": [ { "sku": "IS-A", "quantity": 2 }, { "sku": "IS-B", "quantity": 2 } ] });
    let (status, problem) = app.post("/api/v1/orders", Some(&customer), &body).await;
    assert_problem(status, &problem, StatusCode::CONFLICT, "insufficient-stock");
    assert_eq!(
        (problem["sku"].as_str(), problem["requested"].as_i64(), problem["available"].as_i64()),
        (Some("IS-B"), Some(2), Some(1))
    );
    // The first line's reservation was rolled back with the rest.
    assert_eq!(app.stock(&staff, a["id"].as_str().unwrap()).await, (5, 0, 5));
}

#[tokio::test]
async fn fifty_concurrent_checkouts_of_the_last_unit_sell_it_exactly_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "LAST-1", 1_999, 1).await;
    let mut tokens = Vec::new();
    for i in 0..50 {
        tokens.push(app.register_customer(&format!("buyer{i}@example.com")).await.0);
    }
    let attempts = tokens.iter().map(|t| app.place_order(t, "LAST-1", 1, Some(GOOD_CARD)));
    let results = futures_util::future::join_all(attempts).await;
    let won: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).collect();
    let lost = results.iter().filter(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "insufficient-stock").count();
    assert_eq!(won.len(), 1, "{results:?}");
    assert_eq!(lost, 49, "{results:?}");
    assert_eq!(won[0].1["status"], "paid");
    let pid = p["id"].as_str().unwrap();
    assert_eq!(app.stock(&staff, pid).await, (1, 1, 0));
    let (status, _) =
        app.post(&format!("/api/v1/orders/{}/ship", won[0].1["id"].as_str().unwrap()), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.stock(&staff, pid).await, (0, 0, 0));
}

#[tokio::test]
async fn a_declined_payment_leaves_the_order_payable_with_its_stock_reserved() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "DC-1", 700, 4).await;
    let (customer, _, _) = app.register_customer("declined@example.com").await;
    for (card, code) in [
        (DECLINED_CARD, "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000119", "processing_error"),
    ] {
        let (status, problem) = app.place_order(&customer, "DC-1", 3, Some(card)).await;
        assert_problem(status, &problem, StatusCode::PAYMENT_REQUIRED, "payment-declined");
        assert_eq!(problem["decline_code"], code);
        let id = problem["order_id"].as_str().unwrap();
        let (_, order) = app.get(&format!("/api/v1/orders/{id}"), Some(&customer)).await;
        assert_eq!(order["status"], "pending_payment");
        assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await, (4, 3, 1));
        let (status, _) = app.post(&format!("/api/v1/orders/{id}/cancel"), Some(&customer), &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await, (4, 0, 4));
    }
}

#[tokio::test]
async fn an_order_can_be_paid_later_but_only_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "PL-1", 300, 2).await;
    let (customer, _, _) = app.register_customer("later@example.com").await;
    let (status, order) = app.place_order(&customer, "PL-1", 2, None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(order["status"], "pending_payment");
    assert!(order["reserved_until"].is_string());
    let pay = format!("/api/v1/orders/{}/pay", order["id"].as_str().unwrap());
    let (status, paid) = app.post(&pay, Some(&customer), &json!({ "card_number": GOOD_CARD })).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "paid");
    let (status, body) = app.post(&pay, Some(&customer), &json!({ "card_number": GOOD_CARD })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "invalid-transition");
}

#[tokio::test]
async fn unpaid_reservations_expire_and_release_their_stock() {
    let app = TestApp::spawn_with(Options {
        config: vec![("checkout.reservation_ttl_secs", "1".into()), ("checkout.expiry_interval_ms", "100".into())],
        ..Default::default()
    })
    .await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "EX-1", 300, 5).await;
    let (customer, _, _) = app.register_customer("slow@example.com").await;
    let (_, unpaid) = app.place_order(&customer, "EX-1", 4, None).await;
    let (_, paid) = app.place_order(&customer, "EX-1", 1, Some(GOOD_CARD)).await;
    assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await, (5, 5, 0));

    let id = unpaid["id"].as_str().unwrap();
    let order = app.wait_for_status(&customer, id, "cancelled").await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["failure_reason"], "reservation_expired");
    assert_eq!(app.stock(&staff, p["id"].as_str().unwrap()).await, (5, 1, 4));
    // Paid orders never expire.
    let (_, still) = app.get(&format!("/api/v1/orders/{}", paid["id"].as_str().unwrap()), Some(&customer)).await;
    assert_eq!(still["status"], "paid");
    let (status, body) =
        app.post(&format!("/api/v1/orders/{id}/pay"), Some(&customer), &json!({ "card_number": GOOD_CARD })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "invalid-transition");
}

/// A gateway whose charge never returns, as when the process dies mid-payment. With
/// `reach_gateway`, the charge first reaches the real sandbox (money moved, answer lost).
struct DyingGateway {
    sandbox: SandboxGateway,
    reach_gateway: bool,
}

impl PaymentGateway for DyingGateway {
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        async move {
            if self.reach_gateway {
                let _ = self.sandbox.charge(req).await;
            }
            std::future::pending().await
        }
        .boxed()
    }
    fn lookup(&self, key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        async move {
            std::future::pending::<()>().await;
            self.sandbox.lookup(key).await
        }
        .boxed()
    }
    fn void(&self, id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        self.sandbox.void(id)
    }
    fn refund(&self, id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        self.sandbox.refund(id)
    }
}

/// Places an order on an app whose gateway dies, crashes that app mid-payment, restarts on
/// the same database; returns the restarted app, a customer token, the order id, product id.
async fn crash_during_payment(reach_gateway: bool) -> (TestApp, String, String, String) {
    let db = Arc::new(crate::helpers::TestDb::new().await);
    let config =
        || vec![("payments.timeout_ms", "1000".to_string()), ("checkout.recovery_interval_ms", "100".to_string())];
    let first = TestApp::spawn_with(Options {
        config: config(),
        db: Some(db.clone()),
        overrides: Overrides {
            payments: Some(Arc::new(DyingGateway {
                sandbox: SandboxGateway::new(TestApp::spawn_db(&db).await),
                reach_gateway,
            })),
            ..Default::default()
        },
    })
    .await;
    let staff = first.staff().await;
    let p = first.create_product(&staff, "CR-1", 4_200, 3).await;
    let (customer, _, _) = first.register_customer("crash@example.com").await;
    let in_flight = {
        let client = first.client.clone();
        let url = first.url("/api/v1/orders");
        let token = customer.clone();
        tokio::spawn(async move {
            let body =
                json!({ "line_items": [{ "sku": "CR-1", "quantity": 2 }], "payment": { "card_number": GOOD_CARD } });
            let _ = client.post(url).bearer_auth(token).json(&body).timeout(Duration::from_millis(300)).send().await;
        })
    };
    // Wait until the reservation is committed and the saga is charging, then crash.
    let mut order_id = None;
    for _ in 0..200 {
        let (_, page) = first.get("/api/v1/orders", Some(&customer)).await;
        if let Some(id) = page["items"][0]["id"].as_str() {
            order_id = Some(id.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let order_id = order_id.expect("the order was created");
    assert_eq!(first.stock(&staff, p["id"].as_str().unwrap()).await, (3, 2, 1));
    first.crash();
    let _ = in_flight.await;

    let second = TestApp::spawn_with(Options { config: config(), db: Some(db), ..Default::default() }).await;
    (second, customer, order_id, p["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_crash_before_the_gateway_saw_the_charge_is_compensated_on_restart() {
    let (app, customer, order_id, product_id) = crash_during_payment(false).await;
    let order = app.wait_for_status(&customer, &order_id, "failed").await;
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure_reason"], "payment_interrupted");
    let staff = app.staff().await;
    assert_eq!(app.stock(&staff, &product_id).await, (3, 0, 3));
}

#[tokio::test]
async fn a_crash_after_the_gateway_charged_is_completed_on_restart() {
    let (app, customer, order_id, product_id) = crash_during_payment(true).await;
    let order = app.wait_for_status(&customer, &order_id, "paid").await;
    assert_eq!(order["status"], "paid", "{order}");
    let staff = app.staff().await;
    assert_eq!(app.stock(&staff, &product_id).await, (3, 2, 1));
}
