//! Low-stock alerts: the `stock-alerts` consumer opens one alert per product from
//! `inventory.low`, staff acknowledge it, and redelivery never duplicates or reopens it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use super::{caught_up, eventually, reset_offset, spawn};
use crate::helpers::{GOOD_CARD, TestApp, assert_problem};

const ALERTS: &str = "/api/v1/inventory/alerts";

async fn open_alert(app: &TestApp, staff: &str, product_id: &str) -> Option<Value> {
    let (status, page) = app.get(ALERTS, Some(staff)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().iter().find(|a| a["product_id"] == product_id).cloned()
}

async fn alert_rows(app: &TestApp, product_id: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM stock_alerts WHERE product_id = $1")
        .bind(product_id)
        .fetch_one(app.app.db.pool())
        .await
        .unwrap()
        .get("n")
}

#[tokio::test]
async fn a_checkout_under_the_threshold_raises_one_alert_that_survives_redelivery() {
    let app = spawn(Vec::new(), None).await;
    let staff = app.staff().await;
    let (customer, _, _) = app.register_customer("alerts@example.com").await;
    // The default low-stock threshold is 10 units: 12 on hand is not low, 9 is.
    let product = app.create_product(&staff, "LOW-1", 500, 12).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let (status, order) = app.place_order(&customer, "LOW-1", 3, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");

    eventually("the low-stock alert", || async { open_alert(&app, &staff, &id).await.is_some() }).await;
    let alert = open_alert(&app, &staff, &id).await.unwrap();
    assert_eq!(alert["sku"], "LOW-1");
    assert_eq!(alert["available"], 9);
    assert_eq!(alert["available_now"], 9);
    assert_eq!(alert["low_stock_threshold"], 10);
    assert!(alert["acknowledged_at"].is_null());

    // Redelivered from the start, with the processed-event records gone too, so the
    // handler itself runs again: still one alert, unchanged.
    sqlx::query("DELETE FROM processed_events WHERE consumer = 'stock-alerts'")
        .execute(app.app.db.pool())
        .await
        .unwrap();
    reset_offset(&app, "stock-alerts").await;
    caught_up(&app, "stock-alerts").await;
    assert_eq!(alert_rows(&app, &id).await, 1);
    assert_eq!(open_alert(&app, &staff, &id).await.unwrap(), alert);

    // Acknowledged, it leaves the open list, and a redelivery of the old event does not
    // bring it back.
    let ack = format!("{ALERTS}/{id}/acknowledge");
    let (status, acked) = app.post(&ack, Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert!(acked["acknowledged_at"].is_string(), "{acked}");
    assert!(acked["acknowledged_by"].is_string(), "{acked}");
    let (status, again) = app.post(&ack, Some(&staff), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["acknowledged_at"], acked["acknowledged_at"], "acknowledging twice changes nothing");
    assert!(open_alert(&app, &staff, &id).await.is_none());
    sqlx::query("DELETE FROM processed_events WHERE consumer = 'stock-alerts'")
        .execute(app.app.db.pool())
        .await
        .unwrap();
    reset_offset(&app, "stock-alerts").await;
    caught_up(&app, "stock-alerts").await;
    assert!(open_alert(&app, &staff, &id).await.is_none(), "an event from before the acknowledgement reopened it");

    // Stock going low again after the acknowledgement reopens the same alert.
    let (status, order) = app.place_order(&customer, "LOW-1", 1, Some(GOOD_CARD)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    eventually("the reopened alert", || async { open_alert(&app, &staff, &id).await.is_some() }).await;
    let reopened = open_alert(&app, &staff, &id).await.unwrap();
    assert_eq!(reopened["available"], 8);
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v["raised_at"].as_str().unwrap()).unwrap();
    assert!(at(&reopened) > at(&alert), "{reopened} {alert}");
    assert_eq!(alert_rows(&app, &id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn only_staff_see_and_acknowledge_stock_alerts() {
    let app = spawn(Vec::new(), None).await;
    let staff = app.staff().await;
    let (customer, _, _) = app.register_customer("alerts-customer@example.com").await;
    let ack = format!("{ALERTS}/{}/acknowledge", uuid::Uuid::new_v4());

    let (status, body) = app.get(ALERTS, None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, body) = app.get(ALERTS, Some(&customer)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.post(&ack, Some(&customer), &json!({})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.post(&ack, Some(&staff), &json!({})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    app.stop().await;
}
