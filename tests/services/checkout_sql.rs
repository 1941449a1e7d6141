//! Checkout's own SQL (one statement per step on PostgreSQL, one transaction per step on
//! SQLite): what the steps write, and that a short line writes nothing at all.

use orderly::db::{self, Db};
use orderly::error::Error;
use orderly::events::StockLow;
use orderly::orders::cart::LineItemRequest;
use orderly::orders::{self, CheckoutRequest, OrderStatus, PaymentRequest, checkout};
use sqlx::Row;
use uuid::Uuid;

use crate::cast::Cast;
use crate::helpers::{GOOD_CARD, Options, TestApp};

async fn spawn() -> TestApp {
    let quiet = vec![
        ("checkout.recovery_interval_ms", "3600000".to_string()),
        ("checkout.expiry_interval_ms", "3600000".to_string()),
    ];
    TestApp::spawn_with(Options { config: quiet, ..Options::default() }).await
}

/// An active USD product with `stock` units and the default low-stock threshold (10).
async fn product(db: &Db, sku: &str, price_minor: i64, stock: i64) -> Uuid {
    let id = db::new_id();
    let now = db::now();
    sqlx::query(
        "INSERT INTO products (id, sku, name, price_minor, currency, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'USD', 'active', $5, $5)",
    )
    .bind(id.to_string())
    .bind(sku)
    .bind(format!("Product \"{sku}\" ü"))
    .bind(price_minor)
    .bind(&now)
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query("INSERT INTO inventory (product_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, $3)")
        .bind(id.to_string())
        .bind(stock)
        .bind(&now)
        .execute(db.pool())
        .await
        .unwrap();
    id
}

fn request(lines: &[(&str, i64)], card: Option<&str>) -> CheckoutRequest {
    CheckoutRequest {
        line_items: lines.iter().map(|(sku, q)| LineItemRequest { sku: (*sku).into(), quantity: *q }).collect(),
        payment: card.map(|c| PaymentRequest { card_number: c.into() }),
        shipping_address: None,
        idempotency_key: None,
    }
}

async fn reserved(db: &Db, product: Uuid) -> i64 {
    sqlx::query_scalar("SELECT reserved FROM inventory WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(db.pool()).await.unwrap()
}

#[tokio::test]
async fn a_paid_checkout_returns_the_order_exactly_as_it_is_stored() {
    let t = spawn().await;
    let cast = Cast::new(&t.app.db).await;
    product(&t.app.db, "SQL-A", 1250, 100).await;
    product(&t.app.db, "SQL-B", 99, 100).await;
    let cart = request(&[("SQL-B", 3), ("SQL-A", 2), ("SQL-B", 1)], Some(GOOD_CARD));
    let placed = checkout::place_order(&t.app.orders, &cast.customer, cart).await.unwrap();
    assert_eq!(placed.status, OrderStatus::Paid);
    assert_eq!(placed.total_minor, 4 * 99 + 2 * 1250);
    let stored = orders::get(&t.app.orders, &cast.customer, placed.id).await.unwrap();
    assert_eq!(serde_json::to_value(&placed).unwrap(), serde_json::to_value(&stored).unwrap());
    assert_eq!(stored.line_items.len(), 2);
    assert_eq!(stored.line_items[0].sku, "SQL-B");
    assert_eq!(stored.line_items[0].quantity, 4);
    assert_eq!(stored.line_items[0].name, "Product \"SQL-B\" ü");
}

#[tokio::test]
async fn a_checkout_with_one_short_line_reserves_nothing_and_writes_nothing() {
    let t = spawn().await;
    let db = &t.app.db;
    let cast = Cast::new(db).await;
    let plenty = product(db, "SQL-PLENTY", 500, 100).await;
    let scarce = product(db, "SQL-SCARCE", 500, 2).await;
    let cart = request(&[("SQL-PLENTY", 5), ("SQL-SCARCE", 3)], Some(GOOD_CARD));
    let err = checkout::place_order(&t.app.orders, &cast.customer, cart).await.unwrap_err();
    match err {
        Error::InsufficientStock { sku, requested, available } => {
            assert_eq!((sku.as_str(), requested, available), ("SQL-SCARCE", 3, 2));
        }
        other => panic!("expected insufficient stock, got {other:?}"),
    }
    assert_eq!((reserved(db, plenty).await, reserved(db, scarce).await), (0, 0));
    assert_eq!(count(db, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(count(db, "SELECT COUNT(*) FROM order_lines").await, 0);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE event_type LIKE 'order.%'").await, 0);
}

#[tokio::test]
async fn a_checkout_that_leaves_stock_low_records_inventory_low_as_its_typed_event_would() {
    let t = spawn().await;
    let db = &t.app.db;
    let cast = Cast::new(db).await;
    let low = product(db, "SQL-LOW", 700, 12).await;
    product(db, "SQL-HIGH", 700, 1000).await;
    let cart = request(&[("SQL-HIGH", 1), ("SQL-LOW", 3)], Some(GOOD_CARD));
    let order = checkout::place_order(&t.app.orders, &cast.customer, cart).await.unwrap();
    let rows = sqlx::query("SELECT event_type, aggregate_id, payload FROM outbox ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let events: Vec<(String, String, String)> =
        rows.iter().map(|r| (r.get("event_type"), r.get("aggregate_id"), r.get("payload"))).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds, ["order.placed", "inventory.low", "order.paid"], "{events:?}");
    assert_eq!(events[0].1, order.id.to_string());
    assert_eq!(events[1].1, low.to_string());
    let typed = serde_json::to_string(&StockLow { product_id: low, available: 9 }).unwrap();
    assert_eq!(events[1].2, typed);
}
