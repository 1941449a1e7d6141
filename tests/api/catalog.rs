//! Categories, products, filters, pagination, ETags, inventory adjustments.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

/// Follows `next_cursor` from `first` to the end; returns every item's id in order.
async fn all_pages(app: &TestApp, first: &str, token: Option<&str>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = first.to_owned();
    for _ in 0..1000 {
        let (status, page) = app.get(&url, token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        ids.extend(page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                url = format!("{first}{sep}cursor={c}");
            }
            None => return ids,
        }
    }
    panic!("pagination did not end");
}

#[tokio::test]
async fn pagination_returns_every_product_exactly_once_in_every_sort() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let mut created = HashSet::new();
    for i in 0..47 {
        // Repeated prices and names force the id tie-breaker to do its job.
        let body = json!({ "sku": format!("PG-{i:03}"), "name": format!("Widget {}", i % 5),
                           "price_minor": 100 * (i % 7), "currency": "USD" });
        let (status, p) = app.post("/api/v1/products", Some(&staff), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        created.insert(p["id"].as_str().unwrap().to_owned());
    }
    for sort in ["created_at", "-created_at", "price", "-price", "name", "-name"] {
        let ids = all_pages(&app, &format!("/api/v1/products?limit=10&sort={sort}"), None).await;
        assert_eq!(ids.len(), 47, "sort {sort}");
        assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), created, "sort {sort}");
    }
    let ids = all_pages(&app, "/api/v1/products?limit=7&sort=price&min_price=200&max_price=400", None).await;
    // i % 7 in {2, 3, 4} for i in 0..47: six full cycles of 3, plus 42..=46 → 21.
    assert_eq!(ids.len(), 21);
}

#[tokio::test]
async fn page_size_is_bounded_and_bad_cursors_are_rejected() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/v1/products?limit=101", None).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "limit");
    let (status, body) = app.get("/api/v1/products?cursor=garbage", None).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let (status, body) = app.get("/api/v1/products?sort=popularity", None).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "sort");
}

#[tokio::test]
async fn filters_combine_category_subtree_price_and_text() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let (_, furniture) = app.post("/api/v1/categories", Some(&staff), &json!({ "name": "Furniture" })).await;
    let (status, chairs) =
        app.post("/api/v1/categories", Some(&staff), &json!({ "name": "Chairs", "parent_id": furniture["id"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{chairs}");
    assert_eq!(chairs["slug"], "furniture-chairs");
    let (_, tech) = app.post("/api/v1/categories", Some(&staff), &json!({ "name": "Technology" })).await;
    for (sku, name, price, cat) in [
        ("C-1", "Oak Chair", 5000, &chairs),
        ("C-2", "Steel chair", 9000, &chairs),
        ("F-1", "Oak Table", 20000, &furniture),
        ("T-1", "Phone", 30000, &tech),
    ] {
        let (s, b) = app
            .post(
                "/api/v1/products",
                Some(&staff),
                &json!({ "sku": sku, "name": name, "price_minor": price, "currency": "USD", "category_id": cat["id"] }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let skus = |page: &Value| -> Vec<String> {
        let mut v: Vec<String> =
            page["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let (_, page) = app.get(&format!("/api/v1/products?category_id={}", furniture["id"].as_str().unwrap()), None).await;
    assert_eq!(skus(&page), vec!["C-1", "C-2", "F-1"]);
    let (_, page) = app
        .get(&format!("/api/v1/products?category_id={}&max_price=6000", furniture["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(skus(&page), vec!["C-1"]);
    let (_, page) = app.get("/api/v1/products?q=CHAIR", None).await;
    assert_eq!(skus(&page), vec!["C-1", "C-2"]);
    let (_, page) = app.get("/api/v1/products?q=oak&min_price=10000", None).await;
    assert_eq!(skus(&page), vec!["F-1"]);
    // LIKE wildcards in the query are literal text.
    let (_, page) = app.get("/api/v1/products?q=%25", None).await;
    assert_eq!(skus(&page), Vec::<String>::new());
}

#[tokio::test]
async fn a_duplicate_sku_is_a_conflict_and_bad_fields_are_named() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "DUP-1", 100, 1).await;
    let (status, body) = app
        .post(
            "/api/v1/products",
            Some(&staff),
            &json!({ "sku": "DUP-1", "name": "Again", "price_minor": 1, "currency": "USD" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "sku-taken");
    let (status, body) = app
        .post(
            "/api/v1/products",
            Some(&staff),
            &json!({ "sku": "bad sku", "name": "X", "price_minor": -1, "currency": "ZZZ" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["sku", "price_minor", "currency"]);
    let (status, body) = app
        .post(
            "/api/v1/products",
            Some(&staff),
            &json!({ "sku": "X-1", "name": "X", "price_minor": "12.00", "currency": "USD" }),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "price_minor");
}

#[tokio::test]
async fn etags_give_304_and_if_match_prevents_lost_updates() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "ET-1", 100, 1).await;
    let url = app.url(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()));
    let res = app.client.get(&url).send().await.unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let res = app.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let res = app
        .client
        .patch(&url)
        .bearer_auth(&staff)
        .header("if-match", &etag)
        .json(&json!({ "price_minor": 150 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
    // A second writer still holding the old ETag must not overwrite.
    let res = app
        .client
        .patch(&url)
        .bearer_auth(&staff)
        .header("if-match", &etag)
        .json(&json!({ "price_minor": 999 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let (_, now) = app.get(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()), None).await;
    assert_eq!(now["price_minor"], 150);
}

#[tokio::test]
async fn archived_products_are_hidden_from_shoppers_but_not_staff() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "AR-1", 100, 1).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let (status, _) = app.patch(&path, Some(&staff), &json!({ "status": "archived" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = app.get("/api/v1/products", None).await;
    assert!(page["items"].as_array().unwrap().is_empty());
    let (status, _) = app.get(&path, Some(&staff)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app.get("/api/v1/products?status=archived", Some(&staff)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn stock_adjustments_are_relative_and_never_go_below_reserved() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let (customer, _, _) = app.register_customer("stock@example.com").await;
    let p = app.create_product(&staff, "ST-1", 100, 5).await;
    let id = p["id"].as_str().unwrap();
    let adj = format!("/api/v1/products/{id}/inventory/adjustments");
    let (status, inv) = app.post(&adj, Some(&staff), &json!({ "delta": 10, "reason": "restock" })).await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    assert_eq!((inv["on_hand"].as_i64(), inv["available"].as_i64()), (Some(15), Some(15)));
    // Reserve 12 with an unpaid order: only 3 remain available.
    let (status, order) = app.place_order(&customer, "ST-1", 12, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (status, body) = app.post(&adj, Some(&staff), &json!({ "delta": -4, "reason": "damaged" })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "insufficient-stock");
    assert_eq!(body["available"], 3);
    assert_eq!(app.stock(&staff, id).await, (15, 12, 3));
    let (status, _) = app.post(&adj, Some(&staff), &json!({ "delta": -3, "reason": "damaged" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.stock(&staff, id).await, (12, 12, 0));
    let (status, body) = app.post(&adj, Some(&staff), &json!({ "delta": 0, "reason": "noop" })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
}
