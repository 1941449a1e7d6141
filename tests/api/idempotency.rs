//! Idempotency keys on checkout (draft-ietf-httpapi-idempotency-key-header, Stripe's
//! semantics): a retried `POST /orders` never creates a second order or a second charge.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{DECLINED_CARD, GOOD_CARD, TestApp, assert_problem};

async fn checkout(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url("/api/v1/orders")).bearer_auth(token).json(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(app.app.db.pool()).await.unwrap()
}

#[tokio::test]
async fn a_retried_checkout_with_the_same_key_creates_one_order_and_one_charge() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-1", 1_000, 10).await;
    let (ann, _, _) = app.register_customer("idem@example.com").await;
    let body = json!({ "line_items": [{ "sku": "IDEM-1", "quantity": 2 }], "payment": { "card_number": GOOD_CARD } });

    let (s1, first) = checkout(&app, &ann, Some("key-0001"), &body).await;
    let (s2, again) = checkout(&app, &ann, Some("key-0001"), &body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED), "{first} {again}");
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["status"], "paid");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_payments").await, 1, "charged once");
    let (_, reserved, _) = app.stock(&staff, first["line_items"][0]["product_id"].as_str().unwrap()).await;
    assert_eq!(reserved, 2, "stock reserved once");

    // Without a key, or with another one, it is a new order.
    assert_eq!(checkout(&app, &ann, Some("key-0002"), &body).await.0, StatusCode::CREATED);
    assert_eq!(checkout(&app, &ann, None, &body).await.0, StatusCode::CREATED);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 3);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_keys_belong_to_their_customer() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-2", 1_000, 10).await;
    let (ann, _, _) = app.register_customer("idem2@example.com").await;
    let (bob, _, _) = app.register_customer("idem3@example.com").await;
    let one = json!({ "line_items": [{ "sku": "IDEM-2", "quantity": 1 }] });
    let two = json!({ "line_items": [{ "sku": "IDEM-2", "quantity": 2 }] });
    assert_eq!(checkout(&app, &ann, Some("shared"), &one).await.0, StatusCode::CREATED);
    let (status, body) = checkout(&app, &ann, Some("shared"), &two).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1, "nothing written");
    let (status, theirs) = checkout(&app, &bob, Some("shared"), &one).await;
    assert_eq!(status, StatusCode::CREATED, "another customer's key space: {theirs}");
    let (status, body) = checkout(&app, &ann, Some("has space"), &one).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
}

#[tokio::test]
async fn a_declined_checkout_replays_its_402_without_charging_again() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-3", 1_000, 10).await;
    let (ann, _, _) = app.register_customer("idem4@example.com").await;
    let body =
        json!({ "line_items": [{ "sku": "IDEM-3", "quantity": 1 }], "payment": { "card_number": DECLINED_CARD } });
    let (s1, first) = checkout(&app, &ann, Some("declined-1"), &body).await;
    let (s2, again) = checkout(&app, &ann, Some("declined-1"), &body).await;
    assert_problem(s1, &first, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_problem(s2, &again, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_eq!(first["order_id"], again["order_id"]);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_payments").await, 1);
    // Paid with another card since, the checkout still replays its first answer (Stripe).
    let id = first["order_id"].as_str().unwrap();
    let (status, paid) =
        app.post(&format!("/api/v1/orders/{id}/pay"), Some(&ann), &json!({ "card_number": GOOD_CARD })).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    let (s3, later) = checkout(&app, &ann, Some("declined-1"), &body).await;
    assert_problem(s3, &later, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_payments").await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_order() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-4", 1_000, 100).await;
    let (ann, _, _) = app.register_customer("idem5@example.com").await;
    let body = json!({ "line_items": [{ "sku": "IDEM-4", "quantity": 1 }], "payment": { "card_number": GOOD_CARD } });
    let tries = (0..8).map(|_| checkout(&app, &ann, Some("burst-1"), &body));
    let answers = futures_util::future::join_all(tries).await;
    let mut ids = std::collections::HashSet::new();
    for (status, body) in &answers {
        match *status {
            StatusCode::CREATED => {
                ids.insert(body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(body["code"], "idempotency-key-in-use", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_payments").await, 1);
}
