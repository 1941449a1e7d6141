//! Idempotency keys on checkout (draft-ietf-httpapi-idempotency-key-header, Stripe's
//! semantics): a retried `POST /orders` never creates a second order or a second charge,
//! and gets the first answer again, byte for byte (the idempotency layer, src/idempotency.rs,
//! over checkout's own key in the orders table). Other POSTs: idempotent_posts.rs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{DECLINED_CARD, GOOD_CARD, TestApp, assert_problem};

/// One answer: status, whether it was a replay, the raw body and the body as JSON.
pub struct Answer {
    pub status: StatusCode,
    pub replayed: bool,
    pub bytes: Vec<u8>,
    pub json: Value,
}

/// `POST path` as `token` with `body` and, if given, `Idempotency-Key: key`.
pub async fn send(app: &TestApp, path: &str, token: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut req = app.client.post(app.url(path)).bearer_auth(token).json(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let bytes = res.bytes().await.unwrap().to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, replayed, bytes, json }
}

async fn checkout(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let a = send(app, "/api/v1/orders", token, key, body).await;
    (a.status, a.json)
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(app.app.db.pool()).await.unwrap()
}

#[tokio::test]
async fn a_retried_checkout_with_the_same_key_creates_one_order_and_one_charge() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-1", 1_000, 10).await;
    let (ann, _, _) = app.register_customer("idem@example.com").await;
    let body = json!({ "line_items": [{ "sku": "IDEM-1", "quantity": 2 }], "payment": { "card_number": GOOD_CARD } });

    let one = send(&app, "/api/v1/orders", &ann, Some("key-0001"), &body).await;
    let two = send(&app, "/api/v1/orders", &ann, Some("key-0001"), &body).await;
    assert_eq!((one.status, two.status), (StatusCode::CREATED, StatusCode::CREATED), "{} {}", one.json, two.json);
    assert_eq!(one.bytes, two.bytes, "the same answer, byte for byte");
    assert_eq!((one.replayed, two.replayed), (false, true), "only the retry says Idempotent-Replayed");
    let (first, again) = (one.json, two.json);
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
    let one = send(&app, "/api/v1/orders", &ann, Some("declined-1"), &body).await;
    let two = send(&app, "/api/v1/orders", &ann, Some("declined-1"), &body).await;
    assert_problem(one.status, &one.json, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_problem(two.status, &two.json, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_eq!(one.bytes, two.bytes);
    assert!(two.replayed);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_payments").await, 1);
    // Paid with another card since, the checkout still replays its first answer (Stripe).
    let id = one.json["order_id"].as_str().unwrap();
    let (status, paid) =
        app.post(&format!("/api/v1/orders/{id}/pay"), Some(&ann), &json!({ "card_number": GOOD_CARD })).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    let (s3, later) = checkout(&app, &ann, Some("declined-1"), &body).await;
    assert_problem(s3, &later, StatusCode::PAYMENT_REQUIRED, "payment-declined");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_payments").await, 2);
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_create_one_order_and_one_charge() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-4", 1_000, 100).await;
    let (ann, _, _) = app.register_customer("idem5@example.com").await;
    let body = json!({ "line_items": [{ "sku": "IDEM-4", "quantity": 1 }], "payment": { "card_number": GOOD_CARD } });
    let tries = (0..20).map(|_| checkout(&app, &ann, Some("burst-1"), &body));
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

#[tokio::test]
async fn a_conflict_replays_as_the_same_conflict_even_after_the_stock_is_back() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let product = app.create_product(&staff, "IDEM-5", 1_000, 1).await;
    let (ann, _, _) = app.register_customer("idem6@example.com").await;
    let body = json!({ "line_items": [{ "sku": "IDEM-5", "quantity": 3 }] });
    let one = send(&app, "/api/v1/orders", &ann, Some("short-1"), &body).await;
    assert_problem(one.status, &one.json, StatusCode::CONFLICT, "insufficient-stock");
    let id = product["id"].as_str().unwrap();
    let restock = json!({ "delta": 10, "reason": "restock" });
    let (status, _) = app.post(&format!("/api/v1/products/{id}/inventory/adjustments"), Some(&staff), &restock).await;
    assert_eq!(status, StatusCode::OK);
    let two = send(&app, "/api/v1/orders", &ann, Some("short-1"), &body).await;
    assert_eq!((two.status, two.replayed, &two.bytes), (StatusCode::CONFLICT, true, &one.bytes), "{}", two.json);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(checkout(&app, &ann, Some("short-2"), &body).await.0, StatusCode::CREATED, "a new key is a new request");
}

#[tokio::test]
async fn a_refused_checkout_is_not_stored_so_the_corrected_retry_with_the_same_key_succeeds() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IDEM-6", 1_000, 5).await;
    let (ann, _, _) = app.register_customer("idem7@example.com").await;
    let bad = json!({ "line_items": [{ "sku": "IDEM-6", "quantity": 0 }] });
    let (status, body) = checkout(&app, &ann, Some("fix-me"), &bad).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let (status, body) = checkout(&app, &ann, Some("fix-me"), &json!({ "line_items": "not a list" })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM idempotency_keys").await, 0, "the key was released");
    let good = json!({ "line_items": [{ "sku": "IDEM-6", "quantity": 1 }] });
    let (status, order) = checkout(&app, &ann, Some("fix-me"), &good).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
}
