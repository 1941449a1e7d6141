//! Webhooks: signed deliveries seen by a real receiver, retries, dead letters and replay,
//! subscriptions by type, the SSRF guard, admin-only management, and secrets shown once.

mod receiver;

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use self::receiver::Receiver;
use crate::helpers::{GOOD_CARD, Options, TestApp, assert_problem};

const ENDPOINTS: &str = "/api/v1/webhooks/endpoints";
const DELIVERIES: &str = "/api/v1/webhooks/deliveries";

/// An app that may call the receiver on 127.0.0.1, with retries milliseconds apart.
async fn app_for_deliveries(max_attempts: u32) -> TestApp {
    TestApp::spawn_with(Options {
        config: vec![
            ("webhooks.allow_private_targets", "true".into()),
            ("webhooks.max_attempts", max_attempts.to_string()),
            ("webhooks.backoff_base_secs", "0.05".into()),
            ("webhooks.backoff_max_secs", "0.2".into()),
            ("webhooks.poll_interval_ms", "50".into()),
            ("webhooks.timeout_ms", "5000".into()),
            ("events.relay_interval_ms", "50".into()),
        ],
        ..Default::default()
    })
    .await
}

/// Creates an endpoint for `types` at `url`; hands its secret to the receiver.
async fn create_endpoint(app: &TestApp, admin: &str, url: &str, types: &[&str], receiver: &Receiver) -> Value {
    let (status, body) = app.post(ENDPOINTS, Some(admin), &json!({ "url": url, "event_types": types })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    receiver.set_secret(body["secret"].as_str().unwrap());
    body["endpoint"].clone()
}

/// The endpoint's deliveries once `done` holds for them, or a failure after 20 s.
async fn wait_for_deliveries(
    app: &TestApp,
    admin: &str,
    endpoint: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = app.get(&format!("{DELIVERIES}?endpoint_id={endpoint}&limit=100"), Some(admin)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if done(&items) {
            return items;
        }
        assert!(tokio::time::Instant::now() < deadline, "deliveries never settled: {items:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_have_status(items: &[Value], n: usize, status: &str) -> bool {
    items.len() == n && items.iter().all(|d| d["status"] == status)
}

#[tokio::test]
async fn a_receiver_verifies_every_delivery_and_sees_retries_after_answering_500() {
    let app = app_for_deliveries(5).await;
    let (receiver, url) = Receiver::start(2).await;
    let admin = app.admin().await;
    let endpoint = create_endpoint(&app, &admin, &url, &["order.placed", "order.paid"], &receiver).await;
    let staff = app.staff().await;
    app.create_product(&staff, "WH-1", 500, 10).await;
    let (customer, _, _) = app.register_customer("webhooks-retries@example.com").await;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let (status, order) = app.place_order(&customer, "WH-1", 1, Some(GOOD_CARD)).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        orders.push(order["id"].as_str().unwrap().to_owned());
    }

    let id = endpoint["id"].as_str().unwrap();
    let deliveries = wait_for_deliveries(&app, &admin, id, |d| all_have_status(d, 4, "succeeded")).await;

    let got = receiver.received();
    assert!(got.iter().all(|r| r.signature_ok), "a signature did not verify: {got:?}");
    assert!(got.iter().all(|r| r.content_type == "application/json"));
    assert!(got.iter().all(|r| r.body["id"] == r.event_id.as_str() && r.body["type"] == r.event_type.as_str()));
    assert_eq!(got.iter().filter(|r| r.answered == 500).count(), 2, "{got:?}");
    // Each event arrived at least once with a 200, for both orders.
    for order in &orders {
        for kind in ["order.placed", "order.paid"] {
            assert!(
                got.iter()
                    .any(|r| r.answered == 200 && r.event_type == kind && r.body["aggregate_id"] == order.as_str()),
                "{kind} of {order} never arrived: {got:?}"
            );
        }
    }
    // The requests answered 500 were retried: their events came again and were accepted.
    for failed in got.iter().filter(|r| r.answered == 500) {
        assert!(got.iter().any(|r| r.event_id == failed.event_id && r.answered == 200), "{failed:?} not retried");
    }
    // The log shows the failed attempt before the successful one.
    let retried = deliveries.iter().find(|d| d["event_id"] == got[0].event_id.as_str()).unwrap();
    let (status, detail) = app.get(&format!("{DELIVERIES}/{}", retried["id"].as_str().unwrap()), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["status_code"], 500, "{detail}");
    assert_eq!(attempts.last().unwrap()["status_code"], 200, "{detail}");
    assert_eq!(detail["delivery"]["status"], "succeeded");
    assert!(detail["delivery"]["delivered_at"].is_string());
}

#[tokio::test]
async fn an_endpoint_that_always_fails_goes_dead_after_max_attempts_and_replay_redelivers() {
    let app = app_for_deliveries(3).await;
    let (receiver, url) = Receiver::start(0).await;
    receiver.always_fail.store(true, Ordering::SeqCst);
    let admin = app.admin().await;
    let endpoint = create_endpoint(&app, &admin, &url, &["product.created"], &receiver).await;
    let id = endpoint["id"].as_str().unwrap();
    let staff = app.staff().await;
    app.create_product(&staff, "WH-DEAD", 100, 1).await;

    let deliveries = wait_for_deliveries(&app, &admin, id, |d| all_have_status(d, 1, "dead")).await;
    let delivery = &deliveries[0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 500);
    assert_eq!(receiver.received().len(), 3, "exactly max_attempts requests");
    let (_, dead) = app.get(&format!("{DELIVERIES}?status=dead"), Some(&admin)).await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 1, "{dead}");

    receiver.always_fail.store(false, Ordering::SeqCst);
    let delivery_id = delivery["id"].as_str().unwrap();
    let (status, replayed) = app.post(&format!("{DELIVERIES}/{delivery_id}/replay"), Some(&admin), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["status"], "pending");
    wait_for_deliveries(&app, &admin, id, |d| all_have_status(d, 1, "succeeded")).await;
    let got = receiver.received();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|r| r.event_id == got[0].event_id && r.signature_ok));
    assert_eq!(got[3].answered, 200);
    let (_, detail) = app.get(&format!("{DELIVERIES}/{delivery_id}"), Some(&admin)).await;
    let numbers: Vec<_> = detail["attempts"].as_array().unwrap().iter().map(|a| a["attempt"].clone()).collect();
    assert_eq!(numbers, vec![json!(1), json!(2), json!(3), json!(4)], "{detail}");

    let (status, body) = app.post(&format!("{DELIVERIES}/{delivery_id}/replay"), Some(&admin), &json!({})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "delivery-not-replayable");
}

#[tokio::test]
async fn an_endpoint_subscribed_to_order_paid_does_not_get_product_created() {
    let app = app_for_deliveries(5).await;
    let (receiver, url) = Receiver::start(0).await;
    let admin = app.admin().await;
    let endpoint = create_endpoint(&app, &admin, &url, &["order.paid"], &receiver).await;
    let staff = app.staff().await;
    app.create_product(&staff, "WH-PAID", 100, 5).await;
    let (customer, _, _) = app.register_customer("webhooks-types@example.com").await;
    let (status, order) = app.place_order(&customer, "WH-PAID", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");

    // Events are consumed in publish order: once order.paid's delivery exists, the earlier
    // product.created was already looked at.
    let id = endpoint["id"].as_str().unwrap();
    let deliveries = wait_for_deliveries(&app, &admin, id, |d| all_have_status(d, 1, "succeeded")).await;
    assert_eq!(deliveries[0]["event_type"], "order.paid");
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].event_type, "order.paid");
    assert_eq!(got[0].body["aggregate_id"], order["id"]);
}

#[tokio::test]
async fn endpoints_on_loopback_link_local_or_private_addresses_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://localhost/",
    ] {
        let (status, body) = app.post(ENDPOINTS, Some(&admin), &json!({ "url": url, "event_types": ["*"] })).await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
        assert_eq!(body["errors"][0]["field"], "url", "{body}");
    }
    let (status, body) =
        app.post(ENDPOINTS, Some(&admin), &json!({ "url": "ftp://example.com/", "event_types": ["*"] })).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    // A public address is fine (an IP literal: no DNS needed), and an existing endpoint
    // cannot be moved onto a private one.
    let (status, created) =
        app.post(ENDPOINTS, Some(&admin), &json!({ "url": "http://93.184.216.34/hook", "event_types": ["*"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("{ENDPOINTS}/{}", created["endpoint"]["id"].as_str().unwrap());
    let (status, body) =
        app.request(Method::PATCH, &path, Some(&admin), Some(&json!({ "url": "http://[::ffff:10.0.0.1]/" }))).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "url", "{body}");
    let (_, one) = app.get(&path, Some(&admin)).await;
    assert_eq!(one["url"], "http://93.184.216.34/hook");
}

#[tokio::test]
async fn only_admin_sessions_manage_webhooks() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let (customer, _, _) = app.register_customer("webhooks-authz@example.com").await;
    let create = json!({ "url": "https://hooks.example.com/", "event_types": ["*"] });
    for path in [ENDPOINTS, DELIVERIES] {
        let (status, _) = app.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        for token in [&staff, &customer] {
            let (status, body) = app.get(path, Some(token)).await;
            assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        }
    }
    let (status, _) = app.post(ENDPOINTS, None, &create).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app.post(ENDPOINTS, Some(&staff), &create).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn the_secret_is_answered_at_creation_and_rotation_and_never_read_back() {
    let app = app_for_deliveries(5).await;
    let admin = app.admin().await;
    let (status, created) = app
        .post(
            ENDPOINTS,
            Some(&admin),
            &json!({ "url": "http://127.0.0.1:9/hook", "description": "ERP", "event_types": ["order.paid", "order.paid"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 70, "{secret}");
    assert_eq!(created["endpoint"]["event_types"], json!(["order.paid"]), "duplicates collapse");
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();

    let (status, rotated) = app.post(&format!("{ENDPOINTS}/{id}/rotate-secret"), Some(&admin), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);

    let (_, list) = app.get(ENDPOINTS, Some(&admin)).await;
    let (_, one) = app.get(&format!("{ENDPOINTS}/{id}"), Some(&admin)).await;
    let (status, updated) = app
        .request(Method::PATCH, &format!("{ENDPOINTS}/{id}"), Some(&admin), Some(&json!({ "enabled": false })))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["enabled"], false);
    for body in [&list, &one, &updated] {
        let text = body.to_string();
        assert!(!text.contains(&secret) && !text.contains(&new_secret) && !text.contains("whsec_"), "{text}");
        assert!(!text.contains("\"secret\""), "{text}");
    }

    let (status, body) = app
        .request(
            Method::PATCH,
            &format!("{ENDPOINTS}/{id}"),
            Some(&admin),
            Some(&json!({ "event_types": ["order.nope"] })),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "event_types");
    let (status, _) = app.request(Method::DELETE, &format!("{ENDPOINTS}/{id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("{ENDPOINTS}/{id}"), Some(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shutdown_hands_claimed_deliveries_back_for_the_next_worker() {
    // Attempts may take 30 s, so a lease lasts 65 s: only a handed-back delivery can be
    // delivered by the second app within the 20 s the test waits.
    let config = || {
        vec![
            ("webhooks.allow_private_targets", "true".to_string()),
            ("webhooks.timeout_ms", "30000".to_string()),
            ("webhooks.poll_interval_ms", "50".to_string()),
            ("events.relay_interval_ms", "50".to_string()),
        ]
    };
    let first = TestApp::spawn_with(Options { config: config(), ..Default::default() }).await;
    let (receiver, url) = Receiver::start(0).await;
    receiver.hang.store(true, Ordering::SeqCst);
    let admin = first.admin().await;
    let endpoint = create_endpoint(&first, &admin, &url, &["product.created"], &receiver).await;
    let staff = first.staff().await;
    first.create_product(&staff, "WH-LEASE", 100, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while leased(&first).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the delivery was never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let db = first.db.clone();
    first.stop().await;
    receiver.hang.store(false, Ordering::SeqCst);
    let second = TestApp::spawn_with(Options { config: config(), db: Some(db), ..Default::default() }).await;
    // The same database and JWT secret: the admin's token still works.
    let id = endpoint["id"].as_str().unwrap();
    let deliveries = wait_for_deliveries(&second, &admin, id, |d| all_have_status(d, 1, "succeeded")).await;
    assert!(deliveries[0]["attempts"].as_u64().unwrap() >= 1);
}

/// Deliveries leased to a worker right now.
async fn leased(app: &TestApp) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE lease_owner IS NOT NULL")
        .fetch_one(app.app.db.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

#[tokio::test]
async fn a_delivery_never_connects_to_a_private_address_even_if_the_endpoint_row_points_there() {
    // As if the endpoint had been created while its name resolved to a public address:
    // the rows are written directly, past the create-time check.
    let app = TestApp::spawn_with(Options {
        config: vec![
            ("webhooks.poll_interval_ms", "50".to_string()),
            ("webhooks.max_attempts", "1".to_string()),
            ("events.relay_interval_ms", "50".to_string()),
        ],
        ..Default::default()
    })
    .await;
    let (receiver, url) = Receiver::start(0).await;
    let by_name = url.replace("127.0.0.1", "localhost");
    let types = vec!["product.created".to_string()];
    let mut ids = Vec::new();
    for target in [url.as_str(), by_name.as_str()] {
        let e = orderly::webhooks::store::insert_endpoint(&app.app.db, target, "", &types, "whsec_test").await.unwrap();
        ids.push(e.id.to_string());
    }
    let admin = app.admin().await;
    let staff = app.staff().await;
    app.create_product(&staff, "WH-SSRF", 100, 1).await;

    for id in &ids {
        let deliveries = wait_for_deliveries(&app, &admin, id, |d| all_have_status(d, 1, "dead")).await;
        let error = deliveries[0]["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("SSRF guard"), "{error}");
        assert!(deliveries[0]["last_status_code"].is_null());
    }
    assert!(receiver.received().is_empty(), "the receiver on loopback was called");
}
