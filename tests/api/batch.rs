//! Batch operations: `POST /products/batch`, `/inventory/batch`, `/orders/batch/cancel`.

use orderly::imports::generic;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

/// Imports `n` products `B-0000`… at 10.00 USD with 5 units each, through the generic
/// import (the CLI's code path): far faster than `n` POSTs.
async fn seed_products(app: &TestApp, n: usize) {
    let mut csv = String::from("sku,name,price,currency,on_hand\n");
    for i in 0..n {
        csv.push_str(&format!("B-{i:04},Batch product {i},10.00,USD,5\n"));
    }
    let path = app.db.data_dir().join(format!("batch-products-{}.csv", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, csv).unwrap();
    generic::import_file(&app.app.db, "products", &path).await.expect("import products");
}

/// The product with `sku` as staff reads it through the API (so through the read cache,
/// which a batch must invalidate).
async fn product(app: &TestApp, staff: &str, sku: &str) -> Value {
    let id: String = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_one(app.app.db.pool())
        .await
        .expect("product id");
    let (status, body) = app.get(&format!("/api/v1/products/{id}"), Some(staff)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_batch_of_1000_price_updates_answers_one_result_per_product_in_order() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    seed_products(&app, 1000).await;
    let items: Vec<Value> = (0..1000).map(|i| json!({ "sku": format!("B-{i:04}"), "price_minor": 2000 + i })).collect();
    let (status, body) =
        app.post("/api/v1/products/batch", Some(&staff), &json!({ "mode": "per_item", "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert_eq!(body["succeeded"], 1000);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["sku"], format!("B-{i:04}"));
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    assert_eq!(product(&app, &staff, "B-0999").await["price_minor"], 2999);
    assert_eq!(product(&app, &staff, "B-0000").await["price_minor"], 2000);
}

fn mixed_items() -> Value {
    json!([
        { "sku": "B-0000", "price_minor": 500 },
        { "sku": "NOPE-1", "price_minor": 500 },
        { "sku": "bad sku!", "price_minor": 500 },
        { "sku": "B-0001", "status": "archived" },
        { "sku": "B-0002", "price_minor": -1 },
        { "sku": "B-0003" },
    ])
}

#[tokio::test]
async fn a_failing_item_in_per_item_mode_changes_only_the_others() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    seed_products(&app, 4).await;
    let (status, body) =
        app.post("/api/v1/products/batch", Some(&staff), &json!({ "mode": "per_item", "items": mixed_items() })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["succeeded", "failed", "failed", "succeeded", "failed", "failed"]);
    let r = &body["results"];
    assert_problem(StatusCode::NOT_FOUND, &r[1]["problem"], StatusCode::NOT_FOUND, "not-found");
    assert_eq!(r[2]["problem"]["status"], 422, "{body}");
    assert_eq!(r[2]["problem"]["errors"][0]["field"], "sku", "{body}");
    assert_eq!(r[4]["problem"]["errors"][0]["field"], "price_minor", "{body}");
    assert_eq!(r[5]["problem"]["status"], 422, "{body}");
    assert!(r[0].get("problem").is_none());
    assert_eq!(body["succeeded"], 2);
    assert_eq!(body["failed"], 4);
    assert_eq!(product(&app, &staff, "B-0000").await["price_minor"], 500);
    assert_eq!(product(&app, &staff, "B-0001").await["status"], "archived");
    assert_eq!(product(&app, &staff, "B-0002").await["price_minor"], 1000);
}

#[tokio::test]
async fn a_failing_item_in_all_or_nothing_mode_changes_nothing_and_every_item_says_why() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    seed_products(&app, 4).await;
    let (status, body) = app
        .post("/api/v1/products/batch", Some(&staff), &json!({ "mode": "all_or_nothing", "items": mixed_items() }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["rolled_back", "failed", "failed", "rolled_back", "failed", "failed"]);
    assert_eq!(body["results"][0]["problem"]["code"], "batch-rolled-back", "{body}");
    assert_eq!(body["succeeded"], 0);
    assert_eq!(product(&app, &staff, "B-0000").await["price_minor"], 1000);
    assert_eq!(product(&app, &staff, "B-0001").await["status"], "active");
    assert_eq!(product(&app, &staff, "B-0000").await["version"], 1);

    // Without the bad items, the same batch applies whole.
    let items = json!([{ "sku": "B-0000", "price_minor": 500 }, { "sku": "B-0001", "status": "archived" }]);
    let (status, body) =
        app.post("/api/v1/products/batch", Some(&staff), &json!({ "mode": "all_or_nothing", "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["succeeded", "succeeded"]);
    assert_eq!(product(&app, &staff, "B-0000").await["price_minor"], 500);
}

#[tokio::test]
async fn batches_over_1000_items_or_empty_are_refused_with_422() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let items: Vec<Value> = (0..1001).map(|i| json!({ "sku": format!("B-{i:04}"), "price_minor": 1 })).collect();
    for (path, items) in [
        ("/api/v1/products/batch", json!(items)),
        ("/api/v1/products/batch", json!([])),
        ("/api/v1/inventory/batch", json!([])),
        ("/api/v1/orders/batch/cancel", json!([])),
    ] {
        let (status, body) = app.post(path, Some(&staff), &json!({ "mode": "per_item", "items": items })).await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
        assert_eq!(body["errors"][0]["field"], "items", "{body}");
    }
}

#[tokio::test]
async fn a_stock_batch_never_oversells_and_mixes_valid_and_invalid_skus() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    seed_products(&app, 2).await;
    let items = json!([
        { "sku": "B-0000", "delta": -3, "reason": "count" },
        { "sku": "B-0000", "delta": -3, "reason": "count" },
        { "sku": "NOPE-1", "delta": 1, "reason": "count" },
        { "sku": "B-0001", "delta": 7, "reason": "delivery" },
        { "sku": "B-0001", "delta": 0, "reason": "" },
    ]);
    let (status, body) =
        app.post("/api/v1/inventory/batch", Some(&staff), &json!({ "mode": "per_item", "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["succeeded", "failed", "failed", "succeeded", "failed"]);
    assert_eq!(body["results"][1]["problem"]["code"], "insufficient-stock", "{body}");
    assert_eq!(body["results"][4]["problem"]["errors"].as_array().unwrap().len(), 2, "{body}");
    let a = product(&app, &staff, "B-0000").await;
    let b = product(&app, &staff, "B-0001").await;
    assert_eq!(a["available"], 2);
    assert_eq!(b["available"], 12);

    // all_or_nothing: the oversold item undoes the good one.
    let items = json!([{ "id": b["id"], "delta": -1, "reason": "x" }, { "id": a["id"], "delta": -3, "reason": "x" }]);
    let (status, body) =
        app.post("/api/v1/inventory/batch", Some(&staff), &json!({ "mode": "all_or_nothing", "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["rolled_back", "failed"]);
    assert_eq!(product(&app, &staff, "B-0001").await["available"], 12);
    assert_eq!(product(&app, &staff, "B-0000").await["available"], 2);
}

#[tokio::test]
async fn customers_may_not_batch_catalog_changes_but_may_batch_cancel_their_own_orders() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "CX-1", 1000, 10).await;
    let (ann, _, _) = app.register_customer("ann-batch@example.com").await;
    let (bob, _, _) = app.register_customer("bob-batch@example.com").await;
    let batch = json!({ "mode": "per_item", "items": [{ "sku": "CX-1", "price_minor": 1 }] });
    let (status, body) = app.post("/api/v1/products/batch", Some(&ann), &batch).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let batch = json!({ "mode": "per_item", "items": [{ "sku": "CX-1", "delta": 1, "reason": "x" }] });
    let (status, body) = app.post("/api/v1/inventory/batch", Some(&ann), &batch).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let anonymous = json!({ "mode": "per_item", "items": [{ "id": uuid::Uuid::new_v4() }] });
    let (status, _) = app.post("/api/v1/orders/batch/cancel", None, &anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (_, mine) = app.place_order(&ann, "CX-1", 2, None).await;
    let (_, theirs) = app.place_order(&bob, "CX-1", 3, None).await;
    assert_eq!(mine["status"], "pending_payment", "{mine}");
    let items = json!([{ "id": mine["id"] }, { "id": theirs["id"] }, { "id": mine["id"] }]);
    let (status, body) =
        app.post("/api/v1/orders/batch/cancel", Some(&ann), &json!({ "mode": "per_item", "items": items })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["succeeded", "failed", "failed"]);
    assert_eq!(body["results"][1]["problem"]["status"], 404, "{body}");
    assert_eq!(body["results"][2]["problem"]["code"], "invalid-transition", "{body}");
    let p = product(&app, &staff, "CX-1").await;
    assert_eq!(p["available"], 7, "ann's 2 units are released, bob's 3 still held");

    let items = json!([{ "id": theirs["id"] }]);
    let (status, body) = app
        .post("/api/v1/orders/batch/cancel", Some(&staff), &json!({ "mode": "all_or_nothing", "items": items }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), ["succeeded"]);
    let (_, order) = app.get(&format!("/api/v1/orders/{}", theirs["id"].as_str().unwrap()), Some(&bob)).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(product(&app, &staff, "CX-1").await["available"], 10);
}

#[tokio::test]
async fn a_batch_retried_with_its_idempotency_key_applies_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    seed_products(&app, 1).await;
    let batch = json!({ "mode": "per_item", "items": [{ "sku": "B-0000", "delta": 4, "reason": "delivery" }] });
    let mut replayed = Vec::new();
    for _ in 0..2 {
        let res = app
            .client
            .post(app.url("/api/v1/inventory/batch"))
            .bearer_auth(&staff)
            .header("idempotency-key", "batch-once-1")
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        replayed.push(res.headers().get("idempotent-replayed").is_some());
    }
    assert_eq!(replayed, [false, true]);
    assert_eq!(product(&app, &staff, "B-0000").await["available"], 9);
}
