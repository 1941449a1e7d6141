//! `Idempotency-Key` on every state-changing POST besides checkout (idempotency.rs has
//! checkout): replays, per-caller key spaces, what is never stored, the lease of a request
//! whose replica died, pruning after the retention, and the OpenAPI contract.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{GOOD_CARD, Options, TestApp, assert_problem};
use crate::idempotency::{count, send};

fn product(sku: &str) -> Value {
    json!({ "sku": sku, "name": format!("Product {sku}"), "price_minor": 500, "currency": "USD", "initial_stock": 5 })
}

#[tokio::test]
async fn a_retried_product_create_replays_the_201_instead_of_a_duplicate_sku_conflict() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let one = send(&app, "/api/v1/products", &staff, Some("p-1"), &product("IP-1")).await;
    let two = send(&app, "/api/v1/products", &staff, Some("p-1"), &product("IP-1")).await;
    assert_eq!((one.status, two.status), (StatusCode::CREATED, StatusCode::CREATED), "{}", two.json);
    assert_eq!((one.replayed, two.replayed), (false, true));
    assert_eq!(one.bytes, two.bytes);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM products").await, 1);

    let other = send(&app, "/api/v1/products", &staff, Some("p-1"), &product("IP-2")).await;
    assert_problem(other.status, &other.json, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(other.json["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM products").await, 1, "nothing written");
}

#[tokio::test]
async fn another_caller_using_the_same_key_string_is_independent() {
    let app = TestApp::spawn().await;
    let (ann, bob) = (app.staff().await, app.staff().await);
    let a = send(&app, "/api/v1/products", &ann, Some("shared"), &product("IP-3")).await;
    let b = send(&app, "/api/v1/products", &bob, Some("shared"), &product("IP-4")).await;
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED), "{}", b.json);
    assert!(!b.replayed, "Bob never sees Ann's answer");
    assert_ne!(a.json["id"], b.json["id"]);
}

#[tokio::test]
async fn a_refused_create_stores_nothing_and_bad_keys_are_refused_naming_the_header() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let mut bad = product("IP-5");
    bad["price_minor"] = json!(-1);
    let refused = send(&app, "/api/v1/products", &staff, Some("retry-me"), &bad).await;
    assert_problem(refused.status, &refused.json, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let fixed = send(&app, "/api/v1/products", &staff, Some("retry-me"), &product("IP-5")).await;
    assert_eq!((fixed.status, fixed.replayed), (StatusCode::CREATED, false), "{}", fixed.json);

    for key in ["", "with space", &"k".repeat(256)] {
        let a = send(&app, "/api/v1/products", &staff, Some(key), &product("IP-6")).await;
        assert_problem(a.status, &a.json, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
        assert_eq!(a.json["errors"][0]["field"], "Idempotency-Key", "{key:?}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM products").await, 1);
}

#[tokio::test]
async fn refunds_and_transitions_replay_instead_of_running_twice() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "IP-7", 1_000, 10).await;
    let (ann, _, _) = app.register_customer("ip7@example.com").await;
    let (_, paid) = app.place_order(&ann, "IP-7", 2, Some(GOOD_CARD)).await;
    let refunds = format!("/api/v1/orders/{}/refunds", paid["id"].as_str().unwrap());
    let one = send(&app, &refunds, &staff, Some("refund-1"), &json!({ "amount_minor": 300 })).await;
    let two = send(&app, &refunds, &staff, Some("refund-1"), &json!({ "amount_minor": 300 })).await;
    assert_eq!((one.status, two.status, two.replayed), (StatusCode::CREATED, StatusCode::CREATED, true));
    assert_eq!(one.bytes, two.bytes);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM order_refunds").await, 1, "refunded once");

    let (_, unpaid) = app.place_order(&ann, "IP-7", 1, None).await;
    let cancel = format!("/api/v1/orders/{}/cancel", unpaid["id"].as_str().unwrap());
    let one = send(&app, &cancel, &ann, Some("cancel-1"), &json!(null)).await;
    let two = send(&app, &cancel, &ann, Some("cancel-1"), &json!(null)).await;
    assert_eq!((one.status, two.status, two.replayed), (StatusCode::OK, StatusCode::OK, true), "{}", two.json);
    let again = send(&app, &cancel, &ann, Some("cancel-2"), &json!(null)).await;
    assert_problem(again.status, &again.json, StatusCode::CONFLICT, "invalid-transition");
}

#[tokio::test]
async fn anonymous_calls_and_answers_carrying_a_secret_are_never_stored() {
    let app = TestApp::spawn().await;
    for email in ["ip8a@example.com", "ip8b@example.com"] {
        let body = json!({ "email": email, "password": crate::helpers::PASSWORD, "name": "N" });
        let res = app.client.post(app.url("/api/v1/auth/register")).header("idempotency-key", "anon").json(&body);
        assert_eq!(res.send().await.unwrap().status(), StatusCode::CREATED, "anonymous: not replayed");
    }
    let admin = app.admin().await;
    let key = json!({ "name": "bot", "scopes": ["catalog:read"] });
    let one = send(&app, "/api/v1/api-keys", &admin, Some("key-1"), &key).await;
    let two = send(&app, "/api/v1/api-keys", &admin, Some("key-1"), &key).await;
    assert_eq!((one.status, two.status, two.replayed), (StatusCode::CREATED, StatusCode::CREATED, false));
    assert_ne!(one.json["key"], two.json["key"], "a new key each time; the first is never kept");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn a_key_held_by_a_replica_that_died_is_in_use_until_its_lease_ends_then_taken_over() {
    let app = TestApp::spawn_with(Options {
        config: vec![("http.request_timeout_ms", "500".to_string())], // lease: 0.5 s + 1 s
        ..Options::default()
    })
    .await;
    let staff = app.staff().await;
    app.create_product(&staff, "IP-9", 1_000, 10).await;
    let (ann, ann_id, _) = app.register_customer("ip9@example.com").await;
    let body = json!({ "line_items": [{ "sku": "IP-9", "quantity": 1 }] });
    // Another replica claimed the key for this very request, then died.
    let idem = &app.app.idempotency;
    let owner = orderly::idempotency::Owner::of(&orderly::auth::Actor::session(
        ann_id.parse().unwrap(),
        orderly::auth::Role::Customer,
    ));
    let key = orderly::idempotency::IdempotencyKey::parse(b"orphan").unwrap();
    let fingerprint = idem.fingerprint("POST", "/api/v1/orders", "", &serde_json::to_vec(&body).unwrap());
    let claimed = idem.begin(&owner, &key, &fingerprint).await.unwrap();
    assert!(matches!(claimed, orderly::idempotency::Begin::Started(_)), "{claimed:?}");

    let busy = send(&app, "/api/v1/orders", &ann, Some("orphan"), &body).await;
    assert_problem(busy.status, &busy.json, StatusCode::CONFLICT, "idempotency-key-in-use");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let taken = send(&app, "/api/v1/orders", &ann, Some("orphan"), &body).await;
    assert_eq!((taken.status, taken.replayed), (StatusCode::CREATED, false), "{}", taken.json);
    let again = send(&app, "/api/v1/orders", &ann, Some("orphan"), &body).await;
    assert_eq!((again.status, again.replayed, &again.bytes), (StatusCode::CREATED, true, &taken.bytes));
}

#[tokio::test]
async fn keys_are_pruned_after_the_retention_and_may_then_be_used_again() {
    let app = TestApp::spawn_with(Options {
        config: vec![("idempotency.retention_secs", "1".to_string())],
        ..Options::default()
    })
    .await;
    let staff = app.staff().await;
    let created = app.create_product(&staff, "IP-10", 1_000, 10).await;
    let path = format!("/api/v1/products/{}/inventory/adjustments", created["id"].as_str().unwrap());
    let body = json!({ "delta": 5, "reason": "restock" });
    let one = send(&app, &path, &staff, Some("adjust-1"), &body).await;
    let two = send(&app, &path, &staff, Some("adjust-1"), &body).await;
    assert_eq!((one.json["on_hand"].as_i64(), two.replayed), (Some(15), true), "{}", one.json);

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(app.app.idempotency.prune().await.unwrap() >= 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM idempotency_keys").await, 0);
    let three = send(&app, &path, &staff, Some("adjust-1"), &body).await;
    assert_eq!((three.json["on_hand"].as_i64(), three.replayed), (Some(20), false), "a new request after pruning");
}

#[tokio::test]
async fn the_contract_documents_the_key_on_every_covered_post_and_only_there() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json", None).await;
    let mut uncovered = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("post") else { continue };
        if path.starts_with("/api/v1/imports/") {
            // Imports keep their own key (one job per key; a repeat answers 200 with that
            // job), documented on the route: the stored-answer middleware does not cover them.
            continue;
        }
        let has_key = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
        if !has_key {
            uncovered.push(path.clone());
            continue;
        }
        let r = &op["responses"];
        assert!(r["409"].is_object() && r["422"].is_object(), "{path}: {r}");
        for (code, resp) in r.as_object().unwrap() {
            assert!(resp["headers"]["Idempotent-Replayed"].is_object(), "{path} {code}");
        }
    }
    uncovered.sort();
    assert_eq!(
        uncovered,
        [
            "/api/v1/api-keys",
            "/api/v1/api-keys/{id}/rotate",
            "/api/v1/auth/login",
            "/api/v1/auth/logout",
            "/api/v1/auth/password-reset",
            "/api/v1/auth/refresh",
            "/api/v1/auth/register",
            "/api/v1/products/{id}/images",
            "/api/v1/users/{id}/password-reset",
            "/api/v1/webhooks/endpoints",
            "/api/v1/webhooks/endpoints/{id}/rotate-secret",
        ],
        "a new POST is covered unless excluded in src/http/idempotency.rs (and docs/API.md)"
    );
}
