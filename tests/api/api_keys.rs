//! API keys: created by admins, shown once, scoped, revocable, rotatable with an overlap,
//! last use recorded; and which endpoints a key may never use.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{GOOD_CARD, TestApp, assert_problem};

/// Creates a key as `admin`; returns the body (`key`, `api_key`).
async fn create_key(app: &TestApp, admin: &str, body: Value) -> Value {
    let (status, created) = app.post("/api/v1/api-keys", Some(admin), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// A request authenticated with `X-Api-Key` (the other form, `Authorization: Bearer ok_…`,
/// is what `app.get(path, Some(key))` sends).
async fn with_key_header(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn my_id(app: &TestApp, token: &str) -> String {
    let (_, me) = app.get("/api/v1/me", Some(token)).await;
    me["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_catalog_read_key_lists_products_but_cannot_place_orders_or_change_the_catalog() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let staff = app.staff().await;
    let product = app.create_product(&staff, "KEY-1", 500, 10).await;
    let owner = my_id(&app, &staff).await;
    let created =
        create_key(&app, &admin, json!({ "name": "feed", "scopes": ["catalog:read"], "owner_id": owner })).await;
    let key = created["key"].as_str().unwrap();

    let (status, page) = with_key_header(&app, Method::GET, "/api/v1/products", key, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["sku"], "KEY-1");
    let (status, _) =
        app.get(&format!("/api/v1/products/{}/inventory", product["id"].as_str().unwrap()), Some(key)).await;
    assert_eq!(status, StatusCode::OK, "the staff owner's role plus catalog:read allows stock reads");

    let (status, body) = app.place_order(key, "KEY-1", 1, Some(GOOD_CARD)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
    assert_eq!(body["required_scope"], "orders:write");
    let new_product = json!({ "sku": "KEY-2", "name": "Nope", "price_minor": 1, "currency": "USD" });
    let (status, body) = with_key_header(&app, Method::POST, "/api/v1/products", key, Some(&new_product)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
    assert_eq!(body["required_scope"], "catalog:write");
    assert_eq!(app.stock(&staff, product["id"].as_str().unwrap()).await, (10, 0, 10), "nothing was reserved");
}

#[tokio::test]
async fn an_orders_write_key_checks_out_as_its_owner_and_may_read_orders() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let staff = app.staff().await;
    app.create_product(&staff, "KEY-3", 700, 5).await;
    let (_, customer_id, _) = app.register_customer("machine@example.com").await;
    let created =
        create_key(&app, &admin, json!({ "name": "pos", "scopes": ["orders:write"], "owner_id": customer_id })).await;
    let key = created["key"].as_str().unwrap();

    let (status, order) = app.place_order(key, "KEY-3", 2, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["customer_id"], customer_id.as_str());
    let (status, page) = app.get("/api/v1/orders", Some(key)).await;
    assert_eq!(status, StatusCode::OK, "orders:write includes orders:read: {page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (status, body) = app.get("/api/v1/dashboard", Some(key)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
}

#[tokio::test]
async fn scopes_never_widen_the_owners_role() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, customer_id, _) = app.register_customer("narrow@example.com").await;
    let created =
        create_key(&app, &admin, json!({ "name": "x", "scopes": ["catalog:write"], "owner_id": customer_id })).await;
    let new_product = json!({ "sku": "KEY-4", "name": "Nope", "price_minor": 1, "currency": "USD" });
    let (status, body) = app.post("/api/v1/products", created["key"].as_str(), &new_product).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn the_secret_is_shown_once_and_never_listed() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let created = create_key(&app, &admin, json!({ "name": "ci", "scopes": ["orders:read", "catalog:read"] })).await;
    let key = created["key"].as_str().unwrap();
    let prefix = created["api_key"]["prefix"].as_str().unwrap();
    assert!(key.starts_with(&format!("ok_{prefix}_")) && key.len() == 84, "{key}");
    assert_eq!(
        created["api_key"]["owner_id"].as_str(),
        Some(my_id(&app, &admin).await.as_str()),
        "defaults to the admin"
    );
    assert_eq!(created["api_key"]["scopes"], json!(["catalog:read", "orders:read"]));
    let secret = &key[key.len() - 64..];

    let (status, list) = app.get("/api/v1/api-keys", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, one) =
        app.get(&format!("/api/v1/api-keys/{}", created["api_key"]["id"].as_str().unwrap()), Some(&admin)).await;
    for shown in [list.to_string(), one.to_string()] {
        assert!(!shown.contains(secret) && !shown.contains("key_hash"), "{shown}");
    }
    assert_eq!(one["active"], true);
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let created = create_key(&app, &admin, json!({ "name": "old", "scopes": ["catalog:read"] })).await;
    let key = created["key"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{}", created["api_key"]["id"].as_str().unwrap());
    assert_eq!(app.get("/api/v1/products", Some(key)).await.0, StatusCode::OK);

    for _ in 0..2 {
        let (status, _) = app.request(Method::DELETE, &path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "revoking is idempotent");
    }
    let (status, body) = app.get("/api/v1/products", Some(key)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    let (_, shown) = app.get(&path, Some(&admin)).await;
    assert_eq!(shown["active"], false);
    assert!(shown["revoked_at"].is_string());
    let (status, body) = app.post(&format!("{path}/rotate"), Some(&admin), &json!({ "overlap_secs": 60 })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "api-key-inactive");
}

#[tokio::test]
async fn rotation_keeps_the_old_key_working_for_the_overlap_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let created = create_key(&app, &admin, json!({ "name": "rotating", "scopes": ["catalog:read"] })).await;
    let old = created["key"].as_str().unwrap();
    let old_path = format!("/api/v1/api-keys/{}", created["api_key"]["id"].as_str().unwrap());

    let (status, rotated) = app.post(&format!("{old_path}/rotate"), Some(&admin), &json!({ "overlap_secs": 2 })).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = rotated["key"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(rotated["api_key"]["name"], "rotating");
    for key in [old, new] {
        assert_eq!(app.get("/api/v1/products", Some(key)).await.0, StatusCode::OK, "both work during the overlap");
    }
    let (_, shown) = app.get(&old_path, Some(&admin)).await;
    assert_eq!(shown["replaced_by"], rotated["api_key"]["id"]);
    let (status, body) = app.post(&format!("{old_path}/rotate"), Some(&admin), &json!({ "overlap_secs": 2 })).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "api-key-inactive");

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let (status, body) = app.get("/api/v1/products", Some(old)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    assert_eq!(app.get("/api/v1/products", Some(new)).await.0, StatusCode::OK);

    // No overlap: the replaced key dies at once.
    let new_path = format!("/api/v1/api-keys/{}/rotate", rotated["api_key"]["id"].as_str().unwrap());
    let (status, newest) = app.post(&new_path, Some(&admin), &json!({ "overlap_secs": 0 })).await;
    assert_eq!(status, StatusCode::CREATED, "{newest}");
    assert_eq!(app.get("/api/v1/products", Some(new)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/v1/products", newest["key"].as_str()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn last_used_at_is_recorded_when_a_key_is_used() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let created = create_key(&app, &admin, json!({ "name": "used", "scopes": ["catalog:read"] })).await;
    let path = format!("/api/v1/api-keys/{}", created["api_key"]["id"].as_str().unwrap());
    assert!(created["api_key"]["last_used_at"].is_null());

    let key = created["key"].as_str().unwrap();
    assert_eq!(with_key_header(&app, Method::GET, "/api/v1/products", key, None).await.0, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, shown) = app.get(&path, Some(&admin)).await;
        if shown["last_used_at"].is_string() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "last_used_at never set: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_admins_in_a_user_session_manage_keys_and_users() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let staff = app.staff().await;
    let body = json!({ "name": "k", "scopes": ["catalog:read"] });
    let (status, problem) = app.post("/api/v1/api-keys", Some(&staff), &body).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");

    // Even an admin's key with every scope cannot mint keys or manage users.
    let every = json!({ "name": "all", "scopes": ["catalog:read", "catalog:write", "orders:read", "orders:write", "dashboard:read"] });
    let created = create_key(&app, &admin, every).await;
    let key = created["key"].as_str().unwrap();
    let (status, problem) = app.post("/api/v1/api-keys", Some(key), &body).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "insufficient-scope");
    assert_eq!(problem["required_scope"], "session");
    for path in ["/api/v1/api-keys", "/api/v1/users"] {
        let (status, problem) = app.get(path, Some(key)).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, "insufficient-scope");
    }
    let (status, problem) = app.patch("/api/v1/me", Some(key), &json!({ "name": "Renamed" })).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "insufficient-scope");
    assert_eq!(app.get("/api/v1/dashboard", Some(key)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn malformed_key_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (body, field) in [
        (json!({ "name": "k", "scopes": [] }), "scopes"),
        (json!({ "name": "k", "scopes": ["orders:delete"] }), "scopes[0]"),
        (
            json!({ "name": "k", "scopes": ["orders:read"], "owner_id": "0190f000-0000-7000-8000-000000000000" }),
            "owner_id",
        ),
    ] {
        let (status, problem) = app.post("/api/v1/api-keys", Some(&admin), &body).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = app.get("/api/v1/products", Some("ok_0000000000000000_nope")).await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "invalid-token");
    let (status, problem) = with_key_header(&app, Method::GET, "/api/v1/products", "not-a-key", None).await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED, "invalid-token");
}

#[tokio::test]
async fn the_openapi_document_declares_the_api_key_scheme_and_each_routes_scope() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["in"].as_str(), scheme["name"].as_str()),
        (Some("apiKey"), Some("header"), Some("X-Api-Key"))
    );
    let security = doc["paths"]["/api/v1/orders"]["post"]["security"].as_array().unwrap();
    assert!(security.contains(&json!({ "api_key": ["orders:write"] })), "{security:?}");
}
