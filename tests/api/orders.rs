//! Orders: ownership, listing, and every transition of the state machine through the API.

use orderly::orders::OrderStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{GOOD_CARD, TestApp, assert_problem};

async fn act(app: &TestApp, token: &str, order: &str, action: &str) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/orders/{order}/{action}"), Some(token), &json!({})).await
}

#[tokio::test]
async fn a_customer_cannot_see_or_touch_another_customers_order() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "OWN-1", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (bob, _, _) = app.register_customer("bob@example.com").await;
    let (status, order) = app.place_order(&alice, "OWN-1", 1, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().unwrap();

    let (status, body) = app.get(&format!("/api/v1/orders/{id}"), Some(&bob)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = act(&app, &bob, id, "cancel").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) =
        app.post(&format!("/api/v1/orders/{id}/pay"), Some(&bob), &json!({ "card_number": GOOD_CARD })).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (_, list) = app.get("/api/v1/orders", Some(&bob)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (status, body) =
        app.get(&format!("/api/v1/orders?customer_id={}", order["customer_id"].as_str().unwrap()), Some(&bob)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (status, mine) = app.get(&format!("/api/v1/orders/{id}"), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["status"], "pending_payment");
    let (status, _) = app.get(&format!("/api/v1/orders/{id}"), Some(&staff)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn customers_cannot_ship_deliver_or_refund() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "ROLE-1", 500, 10).await;
    let (alice, _, _) = app.register_customer("alice@example.com").await;
    let (_, order) = app.place_order(&alice, "ROLE-1", 1, Some(GOOD_CARD)).await;
    let id = order["id"].as_str().unwrap();
    for action in ["ship", "deliver", "refund"] {
        let (status, body) = act(&app, &alice, id, action).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
}

/// Drives one order into `from` through the API; returns its id.
async fn order_in(app: &TestApp, staff: &str, customer: &str, from: OrderStatus) -> String {
    use OrderStatus::*;
    let card = match from {
        PendingPayment | Cancelled | Failed => None,
        _ => Some(GOOD_CARD),
    };
    let (_, order) = app.place_order(customer, "SM-1", 1, card).await;
    let id = order["id"].as_str().unwrap().to_owned();
    if from == Failed {
        // A declined card no longer fails an order; the saga's compensation (a refused or
        // interrupted payment) does, through the transition function.
        let step = orderly::orders::transition::Step::Failed { reason: "payment_rejected" };
        let uuid = id.parse().unwrap();
        orderly::orders::transition::apply(&app.app.orders, uuid, step).await.unwrap().unwrap();
    }
    let steps: &[&str] = match from {
        PendingPayment | Paid | Failed => &[],
        Cancelled => &["cancel"],
        Shipped => &["ship"],
        Delivered => &["ship", "deliver"],
        Refunded => &["refund"],
    };
    for s in steps {
        let (status, body) = act(app, staff, &id, s).await;
        assert_eq!(status, StatusCode::OK, "{s}: {body}");
    }
    let (_, now) = app.get(&format!("/api/v1/orders/{id}"), Some(staff)).await;
    assert_eq!(now["status"], from.as_str());
    id
}

#[tokio::test]
async fn every_transition_is_allowed_exactly_when_the_state_machine_says_so() {
    use OrderStatus::*;
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "SM-1", 250, 1_000).await;
    let (customer, _, _) = app.register_customer("sm@example.com").await;
    // The API's actions and the status each one requests.
    let actions = [("cancel", Cancelled), ("ship", Shipped), ("deliver", Delivered), ("refund", Refunded)];
    for from in OrderStatus::ALL {
        for (action, to) in actions {
            let id = order_in(&app, &staff, &customer, from).await;
            let (status, body) = act(&app, &staff, &id, action).await;
            if from.can_become(to) {
                assert_eq!(status, StatusCode::OK, "{from:?} -{action}-> {body}");
                assert_eq!(body["status"], to.as_str());
            } else {
                assert_problem(status, &body, StatusCode::CONFLICT, "invalid-transition");
                assert_eq!(body["current_status"], from.as_str(), "{body}");
            }
        }
    }
    // Paying is a transition too: only a pending order can be paid.
    for from in [Paid, Cancelled, Failed, Shipped] {
        let id = order_in(&app, &staff, &customer, from).await;
        let (status, body) =
            app.post(&format!("/api/v1/orders/{id}/pay"), Some(&customer), &json!({ "card_number": GOOD_CARD })).await;
        assert_problem(status, &body, StatusCode::CONFLICT, "invalid-transition");
    }
    // Reserved stock is exactly what pending and paid orders (one unit each) still hold, and
    // on-hand stock dropped by exactly what shipped.
    let count = |status: &'static str| {
        let app = &app;
        let staff = &staff;
        async move {
            let (_, page) = app.get(&format!("/api/v1/orders?status={status}&limit=100"), Some(staff)).await;
            page["items"].as_array().unwrap().len() as i64
        }
    };
    let holding = count("pending_payment").await + count("paid").await;
    let shipped = count("shipped").await + count("delivered").await;
    assert_eq!(
        app.stock(&staff, p["id"].as_str().unwrap()).await,
        (1_000 - shipped, holding, 1_000 - shipped - holding)
    );
}

#[tokio::test]
async fn shipping_moves_reserved_stock_out_and_refunding_releases_it() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "SM-1", 250, 10).await;
    let pid = p["id"].as_str().unwrap();
    let (customer, _, _) = app.register_customer("ship@example.com").await;
    let (_, a) = app.place_order(&customer, "SM-1", 3, Some(GOOD_CARD)).await;
    let (_, b) = app.place_order(&customer, "SM-1", 2, Some(GOOD_CARD)).await;
    assert_eq!(app.stock(&staff, pid).await, (10, 5, 5));
    act(&app, &staff, a["id"].as_str().unwrap(), "ship").await;
    assert_eq!(app.stock(&staff, pid).await, (7, 2, 5));
    act(&app, &staff, b["id"].as_str().unwrap(), "refund").await;
    assert_eq!(app.stock(&staff, pid).await, (7, 0, 7));
}

#[tokio::test]
async fn staff_list_all_orders_with_filters_and_customers_only_their_own() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "LS-1", 100, 100).await;
    let (alice, alice_id, _) = app.register_customer("alice@example.com").await;
    let (bob, _, _) = app.register_customer("bob@example.com").await;
    for _ in 0..3 {
        app.place_order(&alice, "LS-1", 1, Some(GOOD_CARD)).await;
    }
    app.place_order(&bob, "LS-1", 1, None).await;
    let (_, mine) = app.get("/api/v1/orders", Some(&alice)).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
    assert_eq!(mine["items"][0]["line_items"][0]["sku"], "LS-1");
    let (_, all) = app.get("/api/v1/orders?limit=2", Some(&staff)).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert!(all["next_cursor"].is_string());
    let (_, pending) = app.get("/api/v1/orders?status=pending_payment", Some(&staff)).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    let (_, by_alice) = app.get(&format!("/api/v1/orders?customer_id={alice_id}&status=paid"), Some(&staff)).await;
    assert_eq!(by_alice["items"].as_array().unwrap().len(), 3);
}
