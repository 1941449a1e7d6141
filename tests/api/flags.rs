//! Runtime feature flags: changed by an admin without a restart, seen by every replica.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{GOOD_CARD, Options, TestApp, assert_problem};

const FLAG: &str = "checkout.require_shipping_address";

#[tokio::test]
async fn a_flag_changes_checkout_rules_without_a_restart_on_every_replica() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_with(Options {
        db: Some(first.db.clone()),
        config: vec![("flags.refresh_interval_ms", "100".into())],
        ..Default::default()
    })
    .await;
    let admin = first.admin().await;
    let staff = first.staff().await;
    first.create_product(&staff, "FF-1", 100, 100).await;
    let (customer, _, _) = first.register_customer("flags@example.com").await;

    let (status, _) = first.place_order(&customer, "FF-1", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, flag) = first
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/admin/flags/{FLAG}"),
            Some(&admin),
            Some(&json!({ "enabled": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{flag}");
    assert_eq!(flag["enabled"], true);
    let (_, ready) = first.get("/readyz", None).await;
    assert_eq!(ready["flags"][FLAG], true);

    let (status, body) = first.place_order(&customer, "FF-1", 1, Some(GOOD_CARD)).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "shipping_address");

    // The other replica picks the change up on its next refresh.
    let mut refused = false;
    for _ in 0..100 {
        let (status, _) = second.place_order(&customer, "FF-1", 1, Some(GOOD_CARD)).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the second replica never saw the flag");
    let with_address = json!({ "line_items": [{ "sku": "FF-1", "quantity": 1 }], "payment": { "card_number": GOOD_CARD },
                                "shipping_address": { "city": "Henderson", "postal_code": "42420" } });
    let (status, order) = second.post("/api/v1/orders", Some(&customer), &with_address).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["shipping_address"]["city"], "Henderson");

    let (status, _) = first
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/admin/flags/{FLAG}"),
            Some(&admin),
            Some(&json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = first.place_order(&customer, "FF-1", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn only_admins_see_or_change_flags_and_unknown_flags_are_404() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let admin = app.admin().await;
    let (status, body) = app.get("/api/v1/admin/flags", Some(&staff)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, flags) = app.get("/api/v1/admin/flags", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flags[0]["key"], FLAG);
    assert_eq!(flags[0]["enabled"], false);
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/flags/no.such.flag",
            Some(&admin),
            Some(&json!({ "enabled": true })),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}
