//! HTTP caching: strong ETags that move with any change of the body (stock included),
//! `If-None-Match` → 304, `If-Match` → 412 / `*` / 428, `Cache-Control` per resource, and
//! the catalog read cache never serving a stale or another caller's view.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, assert_problem};

async fn etag_of(app: &TestApp, path: &str, token: Option<&str>) -> (String, Value) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    (tag, res.json().await.unwrap())
}

async fn status_if_none_match(app: &TestApp, path: &str, token: Option<&str>, tag: &str) -> StatusCode {
    let mut req = app.client.get(app.url(path)).header("if-none-match", tag);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status()
}

async fn patch_if_match(app: &TestApp, staff: &str, id: &str, tag: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = app.client.patch(app.url(&format!("/api/v1/products/{id}"))).bearer_auth(staff).json(&body);
    if let Some(t) = tag {
        req = req.header("if-match", t);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn adjust_if_match(app: &TestApp, staff: &str, id: &str, tag: &str, delta: i64) -> StatusCode {
    let url = app.url(&format!("/api/v1/products/{id}/inventory/adjustments"));
    let body = json!({ "delta": delta, "reason": "count" });
    app.client.post(url).bearer_auth(staff).header("if-match", tag).json(&body).send().await.unwrap().status()
}

#[tokio::test]
async fn a_stock_change_changes_the_product_etag_and_the_old_tag_no_longer_answers_304() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ETS-1", 100, 5).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let (before, body) = etag_of(&app, &path, None).await;
    assert_eq!(body["available"], 5);
    assert_eq!(status_if_none_match(&app, &path, None, &before).await, StatusCode::NOT_MODIFIED);

    let (status, _) = app
        .post(&format!("{path}/inventory/adjustments"), Some(&staff), &json!({ "delta": 2, "reason": "restock" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (after, body) = etag_of(&app, &path, None).await;
    assert_eq!(body["available"], 7, "the cached product was invalidated");
    assert_ne!(before, after);
    assert_eq!(status_if_none_match(&app, &path, None, &before).await, StatusCode::OK);
    assert_eq!(status_if_none_match(&app, &path, None, &format!("\"x\", W/{after}")).await, StatusCode::NOT_MODIFIED);
    assert_eq!(status_if_none_match(&app, &path, None, "*").await, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_checkout_and_its_cancellation_change_the_cached_product_available_and_etag() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ETC-1", 100, 5).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let (first, body) = etag_of(&app, &path, None).await;
    assert_eq!(body["available"], 5);
    let (customer, _, _) = app.register_customer("etag-buyer@example.com").await;
    let (status, order) = app.place_order(&customer, "ETC-1", 2, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (second, body) = etag_of(&app, &path, None).await;
    assert_eq!(body["available"], 3);
    assert_ne!(first, second);

    let cancel = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    let (status, body) = app.post(&cancel, Some(&customer), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (third, body) = etag_of(&app, &path, None).await;
    assert_eq!(body["available"], 5, "the release reached the cache");
    assert_ne!(third, second);
}

#[tokio::test]
async fn if_match_star_updates_an_existing_product_and_a_stale_tag_is_412() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ETM-1", 100, 5).await;
    let id = p["id"].as_str().unwrap();
    let path = format!("/api/v1/products/{id}");
    let (stale, _) = etag_of(&app, &path, None).await;

    let (status, body) = patch_if_match(&app, &staff, id, Some("*"), json!({ "price_minor": 120 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = patch_if_match(&app, &staff, id, Some(&stale), json!({ "price_minor": 999 })).await;
    assert_problem(status, &body, StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(adjust_if_match(&app, &staff, id, &stale, 1).await, StatusCode::PRECONDITION_FAILED);
    let (status, _) = patch_if_match(&app, &staff, id, Some(r#"W/"anything""#), json!({ "price_minor": 999 })).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "a weak tag never matches for a write");

    let (current, body) = etag_of(&app, &path, None).await;
    assert_eq!(body["price_minor"], 120);
    assert_eq!(adjust_if_match(&app, &staff, id, &current, 1).await, StatusCode::OK);
    // The adjustment moved `available`, so the tag read before it is stale now.
    let (status, _) = patch_if_match(&app, &staff, id, Some(&current), json!({ "price_minor": 130 })).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (current, _) = etag_of(&app, &path, None).await;
    let (status, _) =
        patch_if_match(&app, &staff, id, Some(&format!("\"other\", {current}")), json!({ "price_minor": 130 })).await;
    assert_eq!(status, StatusCode::OK);

    let missing = uuid::Uuid::now_v7().to_string();
    let (status, _) = patch_if_match(&app, &staff, &missing, Some("*"), json!({ "price_minor": 1 })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = patch_if_match(&app, &staff, id, Some("not a tag"), json!({ "price_minor": 1 })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
}

#[tokio::test]
async fn a_product_update_without_if_match_is_428_when_the_setting_requires_it() {
    let app = TestApp::spawn_with(Options {
        config: vec![("catalog.require_if_match", "true".into())],
        ..Default::default()
    })
    .await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ETR-1", 100, 5).await;
    let id = p["id"].as_str().unwrap();
    let (status, body) = patch_if_match(&app, &staff, id, None, json!({ "price_minor": 150 })).await;
    assert_problem(status, &body, StatusCode::PRECONDITION_REQUIRED, "precondition-required");
    let (tag, _) = etag_of(&app, &format!("/api/v1/products/{id}"), None).await;
    let (status, body) = patch_if_match(&app, &staff, id, Some(&tag), json!({ "price_minor": 150 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["price_minor"], 150);
}

#[tokio::test]
async fn product_lists_categories_and_orders_send_etags_that_answer_304() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "ETL-1", 100, 5).await;

    let (list, body) = etag_of(&app, "/api/v1/products", None).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(status_if_none_match(&app, "/api/v1/products", None, &list).await, StatusCode::NOT_MODIFIED);
    app.create_product(&staff, "ETL-2", 100, 5).await;
    let (list2, body) = etag_of(&app, "/api/v1/products", None).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2, "a new product drops the cached pages");
    assert_ne!(list, list2);

    let (cats, _) = etag_of(&app, "/api/v1/categories", None).await;
    assert_eq!(status_if_none_match(&app, "/api/v1/categories", None, &cats).await, StatusCode::NOT_MODIFIED);
    let (status, _) = app.post("/api/v1/categories", Some(&staff), &json!({ "name": "Lamps" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (cats2, body) = etag_of(&app, "/api/v1/categories", None).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_ne!(cats, cats2);

    let (customer, _, _) = app.register_customer("etag-orders@example.com").await;
    let (_, order) = app.place_order(&customer, "ETL-1", 1, None).await;
    let path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    let res = app.client.get(app.url(&path)).bearer_auth(&customer).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(status_if_none_match(&app, &path, Some(&customer), &tag).await, StatusCode::NOT_MODIFIED);
    let (tags, _) = etag_of(&app, "/api/v1/orders", Some(&customer)).await;
    assert_eq!(status_if_none_match(&app, "/api/v1/orders", Some(&customer), &tags).await, StatusCode::NOT_MODIFIED);
    let (status, _) = app.post(&format!("{path}/cancel"), Some(&customer), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_if_none_match(&app, &path, Some(&customer), &tag).await, StatusCode::OK);
}

#[tokio::test]
async fn an_archived_product_cached_for_staff_is_never_served_to_others() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ETA-1", 100, 5).await;
    let id = p["id"].as_str().unwrap();
    let (status, _) = patch_if_match(&app, &staff, id, None, json!({ "status": "archived" })).await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/v1/products/{id}");
    for _ in 0..2 {
        assert_eq!(app.get(&path, Some(&staff)).await.0, StatusCode::OK);
        assert_eq!(app.get(&path, None).await.0, StatusCode::NOT_FOUND);
    }
    let (_, staff_page) = app.get("/api/v1/products", Some(&staff)).await;
    let (_, public_page) = app.get("/api/v1/products", None).await;
    assert_eq!(staff_page["items"].as_array().unwrap().len(), 1);
    assert_eq!(public_page["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn concurrent_first_reads_of_a_product_load_it_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ETP-1", 100, 5).await;
    let path = app.url(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()));
    let before = app.app.catalog.cache.stats().loads;
    let reads = (0..16).map(|_| app.client.get(&path).send());
    for res in futures_util::future::join_all(reads).await {
        assert_eq!(res.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(app.app.catalog.cache.stats().loads - before, 1);
}
