//! Support tooling for orders through the API: lookup by number, staff filters, carrier and
//! tracking number on ship, and partial refunds that never pay back more than was paid.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::counting_gateway::{self, CountingGateway};
use crate::helpers::{GOOD_CARD, Options, TestApp, assert_problem};
use crate::observability::gateway_stub::GatewayStub;

async fn spawn_counting() -> (TestApp, Arc<CountingGateway>) {
    counting_gateway::spawn_counting(Vec::new(), Duration::from_millis(100)).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_order_is_found_by_its_number_by_its_customer_and_staff_but_not_by_another_customer() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "NUM-1", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (bob, _, _) = app.register_customer("bob@example.com").await;
    let (_, order) = app.place_order(&alice, "NUM-1", 1, None).await;
    let number = order["number"].as_str().unwrap();
    assert!(number.starts_with("OL-"), "{number}");

    for token in [&alice, &staff] {
        let (status, found) = app.get(&format!("/api/v1/orders/by-number/{number}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["id"], order["id"]);
        let (_, page) = app.get(&format!("/api/v1/orders?number={number}"), Some(token)).await;
        assert_eq!(ids(&page), [order["id"].as_str().unwrap()]);
    }
    let (status, body) = app.get(&format!("/api/v1/orders/by-number/{number}"), Some(&bob)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (_, page) = app.get(&format!("/api/v1/orders?number={number}"), Some(&bob)).await;
    assert!(ids(&page).is_empty());
    let (status, body) = app.get("/api/v1/orders/by-number/OL-000000000000", Some(&staff)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = app.get("/api/v1/orders/by-number/OL%20%3C1%3E", Some(&staff)).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "number", "{body}");
}

#[tokio::test]
async fn staff_filter_orders_by_customer_email_status_and_placement_window() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "FIL-1", 500, 20).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (bob, _, _) = app.register_customer("bob@example.com").await;
    let (_, a_unpaid) = app.place_order(&alice, "FIL-1", 1, None).await;
    let (_, a_paid) = app.place_order(&alice, "FIL-1", 1, Some(GOOD_CARD)).await;
    let (_, b_paid) = app.place_order(&bob, "FIL-1", 1, Some(GOOD_CARD)).await;
    let id = |o: &Value| o["id"].as_str().unwrap().to_owned();
    // An old order of Alice's, placed in 2020.
    sqlx::query("UPDATE orders SET placed_at = '2020-06-01T12:00:00.000000Z' WHERE id = $1")
        .bind(id(&a_unpaid))
        .execute(app.app.db.pool())
        .await
        .unwrap();

    let (status, page) = app.get("/api/v1/orders?customer_email=ALICE@example.com", Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), [id(&a_paid), id(&a_unpaid)]);
    let (_, page) = app.get("/api/v1/orders?customer_email=alice@example.com&status=paid", Some(&staff)).await;
    assert_eq!(ids(&page), [id(&a_paid)]);
    let (_, page) = app.get("/api/v1/orders?status=paid", Some(&staff)).await;
    assert_eq!(ids(&page), [id(&b_paid), id(&a_paid)]);
    let (_, page) = app.get("/api/v1/orders?placed_to=2021-01-01T00:00:00Z", Some(&staff)).await;
    assert_eq!(ids(&page), [id(&a_unpaid)]);
    let (_, page) =
        app.get("/api/v1/orders?placed_from=2021-01-01T00:00:00Z&customer_email=alice@example.com", Some(&staff)).await;
    assert_eq!(ids(&page), [id(&a_paid)]);
    // Keyset-paged as before.
    let (_, first) = app.get("/api/v1/orders?status=paid&limit=1", Some(&staff)).await;
    assert_eq!(ids(&first), [id(&b_paid)]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app.get(&format!("/api/v1/orders?status=paid&limit=1&cursor={cursor}"), Some(&staff)).await;
    assert_eq!(ids(&second), [id(&a_paid)]);

    let (_, page) = app.get("/api/v1/orders?customer_email=alice@example.com", Some(&bob)).await;
    assert!(ids(&page).is_empty(), "a customer's email filter only narrows their own orders");
    let (status, body) = app.get("/api/v1/orders?customer_email=not-an-email", Some(&staff)).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "customer_email", "{body}");
}

#[tokio::test]
async fn carrier_and_tracking_number_given_at_shipping_are_shown_to_the_customer() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "SHIP-1", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "SHIP-1", 1, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();

    let bad = json!({ "carrier": "UPS", "tracking_number": "<script>" });
    let (status, body) = app.post(&format!("/api/v1/orders/{id}/ship"), Some(&staff), &bad).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "tracking_number", "{body}");

    let ship = json!({ "carrier": " UPS ", "tracking_number": "1Z999AA10123456784" });
    let (status, shipped) = app.post(&format!("/api/v1/orders/{id}/ship"), Some(&staff), &ship).await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    let (_, seen) = app.get(&format!("/api/v1/orders/{id}"), Some(&alice)).await;
    assert_eq!(seen["status"], "shipped");
    assert_eq!(seen["carrier"], "UPS");
    assert_eq!(seen["tracking_number"], "1Z999AA10123456784");
    let payload: String =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'order.shipped'")
            .bind(id)
            .fetch_one(app.app.db.pool())
            .await
            .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        (payload["carrier"].as_str(), payload["tracking_number"].as_str()),
        (Some("UPS"), Some("1Z999AA10123456784"))
    );
}

#[tokio::test]
async fn a_ship_request_without_a_body_still_ships() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "SHIP-2", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "SHIP-2", 1, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();
    let res = app.client.post(app.url(&format!("/api/v1/orders/{id}/ship"))).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let shipped: Value = res.json().await.unwrap();
    assert_eq!(shipped["status"], "shipped");
    assert!(shipped["carrier"].is_null() && shipped["tracking_number"].is_null(), "{shipped}");
}

#[tokio::test]
async fn staff_refund_part_of_an_order_by_amount_and_by_lines() {
    let (app, gateway) = spawn_counting().await;
    let staff = app.staff().await;
    let product = app.create_product(&staff, "PR-1", 250, 10).await;
    let product = product["id"].as_str().unwrap();
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "PR-1", 4, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();
    let refunds = format!("/api/v1/orders/{id}/refunds");

    let (status, body) = app.post(&refunds, Some(&alice), &json!({ "amount_minor": 100 })).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.post(&refunds, Some(&staff), &json!({ "amount_minor": 0 })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "amount_minor", "{body}");

    let (status, by_amount) = app.post(&refunds, Some(&staff), &json!({ "amount_minor": 100 })).await;
    assert_eq!(status, StatusCode::CREATED, "{by_amount}");
    assert_eq!((by_amount["amount_minor"].as_i64(), by_amount["state"].as_str()), (Some(100), Some("settled")));
    let lines = json!({ "lines": [{ "line_no": 1, "quantity": 2 }] });
    let (status, by_lines) = app.post(&refunds, Some(&staff), &lines).await;
    assert_eq!(status, StatusCode::CREATED, "{by_lines}");
    assert_eq!(by_lines["amount_minor"], 500);
    assert_eq!(by_lines["lines"], json!([{ "line_no": 1, "quantity": 2 }]));
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 2);

    let (_, seen) = app.get(&format!("/api/v1/orders/{id}"), Some(&alice)).await;
    assert_eq!((seen["status"].as_str(), seen["refunded_minor"].as_i64()), (Some("paid"), Some(600)));
    assert_eq!(app.stock(&staff, product).await, (10, 2, 8), "the two refunded units went back to stock");
}

#[tokio::test]
async fn a_partial_refund_beyond_what_was_paid_is_a_conflict_that_changes_nothing() {
    let (app, gateway) = spawn_counting().await;
    let staff = app.staff().await;
    app.create_product(&staff, "PR-2", 250, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "PR-2", 2, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();
    let refunds = format!("/api/v1/orders/{id}/refunds");

    let (status, body) = app.post(&refunds, Some(&staff), &json!({ "amount_minor": 501 })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "refund-exceeds-payment");
    let (status, body) = app.post(&refunds, Some(&staff), &json!({ "lines": [{ "line_no": 1, "quantity": 3 }] })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "refund-exceeds-quantity");
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 0, "the gateway is never called");
    let (_, seen) = app.get(&format!("/api/v1/orders/{id}"), Some(&staff)).await;
    assert_eq!((seen["status"].as_str(), seen["refunded_minor"].as_i64()), (Some("paid"), Some(0)));
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM order_refunds").fetch_one(app.app.db.pool()).await.unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn two_concurrent_partial_refunds_that_together_exceed_the_total_leave_exactly_one_and_one_gateway_call() {
    let (app, gateway) = spawn_counting().await;
    let staff = app.staff().await;
    app.create_product(&staff, "PR-3", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "PR-3", 2, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();
    let refunds = format!("/api/v1/orders/{id}/refunds");
    let body = json!({ "amount_minor": 600 });

    let (a, b) = tokio::join!(app.post(&refunds, Some(&staff), &body), app.post(&refunds, Some(&staff), &body));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{} / {}", a.1, b.1);
    let refused = if a.0 == StatusCode::CONFLICT { &a.1 } else { &b.1 };
    assert_problem(StatusCode::CONFLICT, refused, StatusCode::CONFLICT, "refund-exceeds-payment");
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 1);
    let (_, seen) = app.get(&format!("/api/v1/orders/{id}"), Some(&staff)).await;
    assert_eq!(seen["refunded_minor"], 600);
    let refunded: i64 =
        sqlx::query_scalar("SELECT refunded_minor FROM sandbox_payments").fetch_one(app.app.db.pool()).await.unwrap();
    assert_eq!(refunded, 600);
}

#[tokio::test]
async fn a_full_refund_after_a_partial_one_pays_back_the_rest_and_ends_the_order_refunded() {
    let (app, _gateway) = spawn_counting().await;
    let staff = app.staff().await;
    app.create_product(&staff, "PR-4", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "PR-4", 2, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();
    let (status, _) =
        app.post(&format!("/api/v1/orders/{id}/refunds"), Some(&staff), &json!({ "amount_minor": 300 })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refunded) = app.post(&format!("/api/v1/orders/{id}/refund"), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{refunded}");
    assert_eq!((refunded["status"].as_str(), refunded["refunded_minor"].as_i64()), (Some("refunded"), Some(1_000)));
    let refunded: i64 =
        sqlx::query_scalar("SELECT refunded_minor FROM sandbox_payments").fetch_one(app.app.db.pool()).await.unwrap();
    assert_eq!(refunded, 1_000, "never more than the charge");
}

#[tokio::test]
async fn the_http_gateway_refunds_part_of_a_charge_under_the_refunds_id_and_never_beyond_it() {
    let stub = GatewayStub::start().await;
    let config = vec![("payments.url", stub.url.clone())];
    let app = TestApp::spawn_with(Options { config, ..Options::default() }).await;
    let staff = app.staff().await;
    app.create_product(&staff, "HGW-1", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (status, order) = app.place_order(&alice, "HGW-1", 2, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().unwrap();
    let refunds = format!("/api/v1/orders/{id}/refunds");

    let (status, refund) = app.post(&refunds, Some(&staff), &json!({ "amount_minor": 700 })).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert!(refund["gateway_refund_id"].as_str().is_some_and(|r| r.starts_with("re_")), "{refund}");
    let calls: Vec<_> = stub.requests().into_iter().filter(|r| r.path.ends_with("/refunds")).collect();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].path.starts_with("/charges/ch_"), "{}", calls[0].path);
    assert_eq!(calls[0].idempotency_key.as_deref(), refund["id"].as_str(), "the refund's id is the key");
    assert!(calls[0].traceparent.is_some());

    let (status, body) = app.post(&refunds, Some(&staff), &json!({ "amount_minor": 301 })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "refund-exceeds-payment");
    let (status, rest) = app.post(&format!("/api/v1/orders/{id}/refund"), Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!((rest["status"].as_str(), rest["refunded_minor"].as_i64()), (Some("refunded"), Some(1_000)));
    assert_eq!(stub.requests().iter().filter(|r| r.path.ends_with("/refunds")).count(), 2, "the rest, by amount");
}
