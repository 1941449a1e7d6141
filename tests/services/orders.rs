//! The order service called directly: who may do what (a table over the whole cast),
//! checkout input parsed by the service, exact or refused totals across the `i64` range,
//! every status change through the one transition function, and refund as a saga step.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orderly::auth::Principal;
use orderly::db::{self, Db};
use orderly::error::Error;
use orderly::orders::cart::LineItemRequest;
use orderly::orders::partial_refund::{self, PartialRefundRequest};
use orderly::orders::shipping::{Carrier, TrackingNumber};
use orderly::orders::transition::{self, Refused, Step};
use orderly::orders::{
    self, CheckoutRequest, Order, OrderFilter, OrderStatus, Orders, PaymentRequest, SagaState, ShipRequest, checkout,
    lifecycle, recovery,
};
use orderly::payments::{ChargeRequest, PaymentGateway, PaymentRecord};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use sqlx::Row;
use uuid::Uuid;

use crate::cast::{Cast, Outcome, outcome};
use crate::counting_gateway::{self, CountingGateway};
use crate::helpers::{DECLINED_CARD, GOOD_CARD, Options, TestApp};

/// Background workers slowed down, so tests drive recovery and expiry themselves.
fn quiet_workers() -> Vec<(&'static str, String)> {
    vec![
        ("checkout.recovery_interval_ms", "3600000".to_string()),
        ("checkout.expiry_interval_ms", "3600000".to_string()),
    ]
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options { config: quiet_workers(), ..Options::default() }).await
}

/// An active USD product with `stock` units, written with plain SQL (no catalog bounds).
/// `Err` if the schema refuses it (a negative price).
async fn product(db: &Db, sku: &str, price_minor: i64, stock: i64) -> Result<Uuid, sqlx::Error> {
    let id = db::new_id();
    let now = db::now();
    sqlx::query(
        "INSERT INTO products (id, sku, name, price_minor, currency, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'USD', 'active', $5, $5)",
    )
    .bind(id.to_string())
    .bind(sku)
    .bind(format!("Product {sku}"))
    .bind(price_minor)
    .bind(&now)
    .execute(db.pool())
    .await?;
    sqlx::query("INSERT INTO inventory (product_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, $3)")
        .bind(id.to_string())
        .bind(stock)
        .bind(&now)
        .execute(db.pool())
        .await?;
    Ok(id)
}

fn request(lines: &[(&str, i64)], card: Option<&str>) -> CheckoutRequest {
    CheckoutRequest {
        line_items: lines
            .iter()
            .map(|(sku, quantity)| LineItemRequest { sku: (*sku).into(), quantity: *quantity })
            .collect(),
        payment: card.map(|c| PaymentRequest { card_number: c.into() }),
        shipping_address: None,
        idempotency_key: None,
    }
}

fn card(number: &str) -> PaymentRequest {
    PaymentRequest { card_number: number.into() }
}

async fn place(orders: &Orders, who: &Principal, sku: &str, card: Option<&str>) -> Order {
    checkout::place_order(orders, who, request(&[(sku, 1)], card)).await.unwrap()
}

/// (on_hand, reserved) of a product.
async fn stock(db: &Db, product: Uuid) -> (i64, i64) {
    let row = sqlx::query("SELECT on_hand, reserved FROM inventory WHERE product_id = $1")
        .bind(product.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap();
    (row.get("on_hand"), row.get("reserved"))
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(db.pool()).await.unwrap()
}

/// The event types recorded for an order, oldest first.
async fn events_of(db: &Db, order: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM outbox WHERE aggregate_id = $1 ORDER BY created_at, id")
        .bind(order.to_string())
        .fetch_all(db.pool())
        .await
        .unwrap()
}

async fn saga_of(db: &Db, order: Uuid) -> SagaState {
    let s: String = sqlx::query_scalar("SELECT saga_state FROM orders WHERE id = $1")
        .bind(order.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap();
    SagaState::parse(&s).unwrap()
}

/// Moves a saga's lease into the past, as if its process had died long ago.
async fn lapse_lease(db: &Db, order: Uuid) {
    sqlx::query("UPDATE orders SET saga_deadline = '2000-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(order.to_string())
        .execute(db.pool())
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// a. Who may do what.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Place,
    Pay,
    Cancel,
    Ship,
    Deliver,
    Refund,
    Get,
    List,
    FindByNumber,
    ListByEmail,
    RefundPart,
}

fn ship_with_tracking() -> ShipRequest {
    ShipRequest {
        carrier: Some(Carrier::parse("UPS").unwrap()),
        tracking_number: Some(TrackingNumber::parse("1Z999AA10123456784").unwrap()),
    }
}

/// What each principal may do to the customer's orders.
fn expected(op: Op, who: &str) -> Outcome {
    use Outcome::*;
    let staff_write = matches!(who, "staff" | "admin" | "staff_write_key" | "admin_key");
    match (op, who) {
        (_, "anonymous") => Unauthenticated,
        (Op::Get | Op::FindByNumber, "other_customer") => NotFound,
        (Op::Get | Op::List | Op::FindByNumber | Op::ListByEmail, _) => Allowed,
        (_, "staff_read_key") => Denied,
        (Op::Place, _) => Allowed,
        (Op::Pay | Op::Cancel, "other_customer") => NotFound,
        (Op::Pay | Op::Cancel, _) => Allowed,
        (Op::Ship | Op::Deliver | Op::Refund | Op::RefundPart, _) if staff_write => Allowed,
        (Op::Ship | Op::Deliver | Op::Refund | Op::RefundPart, _) => Denied,
    }
}

#[tokio::test]
async fn every_order_operation_admits_exactly_the_principals_it_should() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    product(db, "AUTH-1", 500, 100_000).await.unwrap();
    for (who, principal) in cast.all() {
        for op in [
            Op::Place,
            Op::Pay,
            Op::Cancel,
            Op::Ship,
            Op::Deliver,
            Op::Refund,
            Op::Get,
            Op::List,
            Op::FindByNumber,
            Op::ListByEmail,
            Op::RefundPart,
        ] {
            // A fresh order of the customer in the state the operation starts from.
            let order = match op {
                Op::Place | Op::List | Op::ListByEmail => None,
                Op::Pay | Op::Cancel | Op::Get | Op::FindByNumber => {
                    Some(place(orders, &cast.customer, "AUTH-1", None).await)
                }
                Op::Ship | Op::Refund | Op::RefundPart => {
                    Some(place(orders, &cast.customer, "AUTH-1", Some(GOOD_CARD)).await)
                }
                Op::Deliver => {
                    let o = place(orders, &cast.customer, "AUTH-1", Some(GOOD_CARD)).await;
                    Some(lifecycle::ship(orders, &cast.staff, o.id, ShipRequest::default()).await.unwrap())
                }
            };
            let number = order.as_ref().map(|o| o.number.clone()).unwrap_or_default();
            let id = order.map(|o| o.id).unwrap_or_default();
            let result = match op {
                Op::Place => {
                    checkout::place_order(orders, principal, request(&[("AUTH-1", 1)], None)).await.map(|_| ())
                }
                Op::Pay => checkout::pay(orders, principal, id, card(GOOD_CARD)).await.map(|_| ()),
                Op::Cancel => lifecycle::cancel(orders, principal, id).await.map(|_| ()),
                Op::Ship => lifecycle::ship(orders, principal, id, ship_with_tracking()).await.map(|_| ()),
                Op::Deliver => lifecycle::deliver(orders, principal, id).await.map(|_| ()),
                Op::Refund => lifecycle::refund(orders, principal, id).await.map(|_| ()),
                Op::Get => orders::get(orders, principal, id).await.map(|_| ()),
                Op::List => orders::list(orders, principal, &OrderFilter::default()).await.map(|_| ()),
                Op::FindByNumber => orders::find_by_number(orders, principal, &number).await.map(|_| ()),
                Op::ListByEmail => {
                    let f = OrderFilter {
                        customer_email: Some("cast-customer@example.com".into()),
                        ..OrderFilter::default()
                    };
                    orders::list(orders, principal, &f).await.map(|_| ())
                }
                Op::RefundPart => {
                    let req = PartialRefundRequest { amount_minor: Some(100), lines: None };
                    partial_refund::refund_part(orders, principal, id, req).await.map(|_| ())
                }
            };
            let want = expected(op, who);
            assert_eq!(outcome(&result), want, "{who} {op:?}: {result:?}");
            if want == Outcome::Allowed {
                assert!(result.is_ok(), "{who} {op:?} was allowed but failed: {result:?}");
            }
        }
    }
}

#[tokio::test]
async fn customers_see_only_their_own_orders_in_lists() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    product(db, "LIST-1", 500, 100).await.unwrap();
    let mine = place(orders, &cast.customer, "LIST-1", None).await;
    let theirs = orders::list(orders, &cast.other_customer, &OrderFilter::default()).await.unwrap();
    assert!(theirs.items.is_empty());
    let all = orders::list(orders, &cast.staff_read_key, &OrderFilter::default()).await.unwrap();
    assert_eq!(all.items.iter().map(|o| o.id).collect::<Vec<_>>(), vec![mine.id]);
    let spying = OrderFilter { customer_id: Some(mine.customer_id), ..OrderFilter::default() };
    let err = orders::list(orders, &cast.other_customer, &spying).await.unwrap_err();
    assert!(matches!(&err, Error::Forbidden(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// b. Checkout input is parsed by the service.

#[tokio::test]
async fn checkout_called_directly_with_quantity_zero_or_negative_is_a_validation_error_that_writes_nothing() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "QTY-1", 500, 10).await.unwrap();
    for quantity in [0, -1] {
        let err = checkout::place_order(orders, &cast.customer, request(&[("QTY-1", quantity)], Some(GOOD_CARD)))
            .await
            .unwrap_err();
        let Error::Validation(fields) = &err else { panic!("expected a validation error, got {err:?}") };
        assert_eq!(fields.len(), 1, "{fields:?}");
        assert_eq!(fields[0].field, "line_items[0].quantity");
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(count(db, "SELECT COUNT(*) FROM sandbox_payments").await, 0);
    assert_eq!(stock(db, p).await, (10, 0));
}

#[tokio::test]
async fn checkout_reports_every_bad_field_at_once_with_the_rest_field_names() {
    let t = spawn().await;
    let cast = Cast::new(&t.app.db).await;
    let mut req = request(&[("bad sku", 1), ("OK-1", 1_001)], Some("42"));
    req.shipping_address = Some(serde_json::json!("not an object"));
    let err = checkout::place_order(&t.app.orders, &cast.customer, req).await.unwrap_err();
    let Error::Validation(fields) = &err else { panic!("expected a validation error, got {err:?}") };
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["line_items[0].sku", "line_items[1].quantity", "payment.card_number", "shipping_address"]);
    let err = checkout::place_order(&t.app.orders, &cast.customer, request(&[], None)).await.unwrap_err();
    assert!(matches!(&err, Error::Validation(f) if f[0].field == "line_items"), "{err:?}");
}

#[tokio::test]
async fn a_checkout_retried_with_its_idempotency_key_is_answered_with_the_first_order() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "IDEM-S", 500, 10).await.unwrap();
    let keyed = |qty| {
        let mut req = request(&[("IDEM-S", qty)], Some(GOOD_CARD));
        req.idempotency_key = Some("retry-me".into());
        req
    };
    let first = checkout::place_order(orders, &cast.customer, keyed(2)).await.unwrap();
    let again = checkout::place_order(orders, &cast.customer, keyed(2)).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!((count(db, "SELECT COUNT(*) FROM orders").await, stock(db, p).await), (1, (10, 2)));
    let err = checkout::place_order(orders, &cast.customer, keyed(3)).await.unwrap_err();
    assert!(matches!(&err, Error::Validation(f) if f[0].field == "Idempotency-Key"), "{err:?}");
    let theirs = checkout::place_order(orders, &cast.other_customer, keyed(2)).await.unwrap();
    assert_ne!(theirs.id, first.id, "keys are scoped to their customer");
}

// ---------------------------------------------------------------------------------------
// c. Totals are exact or refused, across the whole i64 range.

fn price_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), 0..=10_000_i64, (i64::MAX / 1_000 - 1_000)..=i64::MAX, i64::MIN..0]
}

fn quantity_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![1..=1_000_i64, any::<i64>(), -2..=2_i64, 999..=1_002_i64]
}

#[test]
fn checkout_totals_are_exact_or_refused_across_the_whole_i64_range() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let t = rt.block_on(spawn());
    let cast = rt.block_on(Cast::new(&t.app.db));
    let case = AtomicUsize::new(0);
    let lines = prop::collection::vec((price_strategy(), quantity_strategy()), 1..=3);
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() });
    let result = runner.run(&(lines, any::<bool>()), |(lines, with_card)| {
        let n = case.fetch_add(1, Ordering::Relaxed);
        rt.block_on(async {
            let (orders, db) = (&t.app.orders, &t.app.db);
            let mut skus = Vec::new();
            let mut products = Vec::new();
            for (i, (price, _)) in lines.iter().enumerate() {
                let sku = format!("PT-{n}-{i}");
                match product(db, &sku, *price, 1_000_000).await {
                    Ok(p) => products.push(p),
                    // The schema refuses negative prices: the product does not exist.
                    Err(_) => prop_assert!(*price < 0, "price {price} refused by the schema"),
                }
                skus.push(sku);
            }
            let cart: Vec<(&str, i64)> = skus.iter().map(String::as_str).zip(lines.iter().map(|l| l.1)).collect();
            let orders_before = count(db, "SELECT COUNT(*) FROM orders").await;
            let charges_before = count(db, "SELECT COUNT(*) FROM sandbox_payments").await;
            let card = with_card.then_some(GOOD_CARD);
            let result = checkout::place_order(orders, &cast.customer, request(&cart, card)).await;

            let exact = lines.iter().try_fold(0_i64, |sum, (price, q)| {
                let valid = *price >= 0 && (1..=1_000).contains(q);
                valid.then(|| price.checked_mul(*q)).flatten().and_then(|t| sum.checked_add(t))
            });
            match (&result, exact) {
                (Ok(order), Some(total)) => {
                    prop_assert_eq!(order.total_minor, total);
                    prop_assert_eq!(order.subtotal_minor, total);
                    prop_assert!(order.total_minor >= 0);
                    for (line, (price, q)) in order.line_items.iter().zip(&lines) {
                        prop_assert_eq!(line.line_total_minor, price * q);
                    }
                    let want = if with_card { OrderStatus::Paid } else { OrderStatus::PendingPayment };
                    prop_assert_eq!(order.status, want);
                }
                (Err(Error::Validation(_) | Error::Conflict { .. } | Error::InsufficientStock { .. }), None) => {
                    prop_assert_eq!(count(db, "SELECT COUNT(*) FROM orders").await, orders_before);
                    prop_assert_eq!(count(db, "SELECT COUNT(*) FROM sandbox_payments").await, charges_before);
                    for p in &products {
                        prop_assert_eq!(stock(db, *p).await, (1_000_000, 0));
                    }
                }
                (r, e) => return Err(TestCaseError::fail(format!("{lines:?}: expected total {e:?}, got {r:?}"))),
            }
            Ok(())
        })
    });
    rt.block_on(async move { drop(t) });
    result.unwrap();
}

// ---------------------------------------------------------------------------------------
// d. Every status change goes through the transition function.

#[tokio::test]
async fn a_paid_checkout_is_marked_paid_through_the_transition_function() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "SAGA-1", 700, 5).await.unwrap();
    let order = place(orders, &cast.customer, "SAGA-1", Some(GOOD_CARD)).await;
    assert_eq!(order.status, OrderStatus::Paid);
    assert!(order.paid_at.is_some() && order.closed_at.is_none() && order.reserved_until.is_none());
    assert_eq!(saga_of(db, order.id).await, SagaState::Completed);
    assert_eq!(events_of(db, order.id).await, ["order.placed", "order.paid"]);
    assert_eq!(stock(db, p).await, (5, 1));
}

#[tokio::test]
async fn a_declined_checkout_leaves_the_order_payable_with_its_stock_reserved_until_another_card_pays() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "SAGA-2", 700, 5).await.unwrap();
    let err = checkout::place_order(orders, &cast.customer, request(&[("SAGA-2", 2)], Some(DECLINED_CARD)))
        .await
        .unwrap_err();
    let Error::PaymentDeclined { order_id, decline_code } = err else { panic!("expected a decline, got {err:?}") };
    assert_eq!(decline_code, "card_declined");
    let order = orders::get(orders, &cast.customer, order_id).await.unwrap();
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert!(order.failure_reason.is_none() && order.closed_at.is_none() && order.paid_at.is_none());
    assert_eq!(saga_of(db, order_id).await, SagaState::AwaitingPayment);
    assert_eq!(events_of(db, order_id).await, ["order.placed"], "a decline is not a failure of the order");
    assert_eq!(stock(db, p).await, (5, 2));

    let paid = checkout::pay(orders, &cast.customer, order_id, card(GOOD_CARD)).await.unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(events_of(db, order_id).await, ["order.placed", "order.paid"]);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM sandbox_payments WHERE idempotency_key LIKE $1 ORDER BY 1")
            .bind(format!("{order_id}%"))
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(keys, [order_id.to_string(), format!("{order_id}:2")], "each attempt has its own key");
    assert_eq!(stock(db, p).await, (5, 2));
}

#[tokio::test]
async fn an_expired_reservation_is_cancelled_through_the_transition_function() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "SAGA-3", 700, 5).await.unwrap();
    let order = place(orders, &cast.customer, "SAGA-3", None).await;
    let fresh = place(orders, &cast.customer, "SAGA-3", None).await;
    sqlx::query("UPDATE orders SET reserved_until = '2000-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(order.id.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(recovery::expire_reservations(orders).await.unwrap(), 1);
    let expired = orders::get(orders, &cast.customer, order.id).await.unwrap();
    assert_eq!(expired.status, OrderStatus::Cancelled);
    assert_eq!(expired.failure_reason.as_deref(), Some("reservation_expired"));
    assert!(expired.closed_at.is_some() && expired.reserved_until.is_none());
    assert_eq!(saga_of(db, order.id).await, SagaState::Compensated);
    assert_eq!(events_of(db, order.id).await, ["order.placed", "order.cancelled"]);
    assert_eq!(orders::get(orders, &cast.customer, fresh.id).await.unwrap().status, OrderStatus::PendingPayment);
    assert_eq!(stock(db, p).await, (5, 1));
}

#[tokio::test]
async fn recovery_settles_interrupted_charges_through_the_transition_function() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "SAGA-4", 700, 5).await.unwrap();
    // Two sagas whose process died while charging: one charge reached the gateway, one not.
    let charged = place(orders, &cast.customer, "SAGA-4", None).await;
    let lost = place(orders, &cast.customer, "SAGA-4", None).await;
    for o in [&charged, &lost] {
        sqlx::query("UPDATE orders SET saga_state = 'charging' WHERE id = $1")
            .bind(o.id.to_string())
            .execute(db.pool())
            .await
            .unwrap();
        lapse_lease(db, o.id).await;
    }
    let req = ChargeRequest {
        idempotency_key: charged.id.to_string(),
        amount_minor: charged.total_minor,
        currency: "USD".into(),
        card: orderly::payments::CardNumber::parse(GOOD_CARD).unwrap(),
    };
    t.app.payments.charge(req).await.unwrap();
    assert_eq!(recovery::recover_interrupted_sagas(orders).await.unwrap(), 2);

    let paid = orders::get(orders, &cast.customer, charged.id).await.unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    assert!(paid.paid_at.is_some());
    assert_eq!(events_of(db, charged.id).await, ["order.placed", "order.paid"]);
    let failed = orders::get(orders, &cast.customer, lost.id).await.unwrap();
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("payment_interrupted"));
    assert_eq!(events_of(db, lost.id).await, ["order.placed", "order.failed"]);
    assert_eq!(stock(db, p).await, (5, 1));
}

#[tokio::test]
async fn the_transition_function_refuses_illegal_moves_and_writes_nothing() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "SAGA-5", 700, 5).await.unwrap();
    let order_id = place(orders, &cast.customer, "SAGA-5", None).await.id;
    // The saga's compensation (a refused or interrupted payment).
    transition::apply(orders, order_id, Step::Failed { reason: "payment_rejected" }).await.unwrap().unwrap();

    let refused = transition::apply(&t.app.orders, order_id, Step::Paid { payment_id: "pay_late" }).await.unwrap();
    assert_eq!(
        refused,
        Err(Refused { current: OrderStatus::Failed, saga: SagaState::Compensated, to: OrderStatus::Paid })
    );
    let err = Error::from(refused.unwrap_err());
    assert!(matches!(err, Error::InvalidTransition { from: "failed", to: "paid" }), "{err:?}");
    for step in [
        Step::Shipped { carrier: None, tracking_number: None },
        Step::Delivered,
        Step::Refunded,
        Step::Cancelled { reason: "x" },
        Step::Expired,
    ] {
        assert!(transition::apply(&t.app.orders, order_id, step).await.unwrap().is_err(), "{step:?}");
    }
    let order = orders::get(orders, &cast.customer, order_id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Failed);
    assert!(order.paid_at.is_none());
    assert_eq!(events_of(db, order_id).await, ["order.placed", "order.failed"]);
    assert_eq!(stock(db, p).await, (5, 0));
    assert!(matches!(
        transition::apply(&t.app.orders, Uuid::now_v7(), Step::Shipped { carrier: None, tracking_number: None }).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn a_charge_that_succeeds_after_the_order_was_cancelled_is_voided() {
    let t = spawn().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "SAGA-6", 700, 5).await.unwrap();
    let order = place(orders, &cast.customer, "SAGA-6", None).await;
    // A payment is in flight (its process then dies), and the customer cancels meanwhile.
    sqlx::query("UPDATE orders SET saga_state = 'charging' WHERE id = $1")
        .bind(order.id.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    let cancelled = lifecycle::cancel(orders, &cast.customer, order.id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(saga_of(db, order.id).await, SagaState::Charging, "the charge in flight still has to be settled");
    let req = ChargeRequest {
        idempotency_key: order.id.to_string(),
        amount_minor: order.total_minor,
        currency: "USD".into(),
        card: orderly::payments::CardNumber::parse(GOOD_CARD).unwrap(),
    };
    t.app.payments.charge(req).await.unwrap();
    lapse_lease(db, order.id).await;
    recovery::recover_interrupted_sagas(orders).await.unwrap();

    let after = orders::get(orders, &cast.customer, order.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Cancelled);
    assert_eq!(saga_of(db, order.id).await, SagaState::Compensated);
    let charge = t.app.payments.lookup(order.id.to_string()).await.unwrap();
    assert!(matches!(charge, Some(PaymentRecord::Reversed { .. })), "{charge:?}");
    assert_eq!(events_of(db, order.id).await, ["order.placed", "order.cancelled"]);
    assert_eq!(stock(db, p).await, (5, 0));
}

// ---------------------------------------------------------------------------------------
// e. Refund is a saga step.

async fn spawn_counting() -> (TestApp, Arc<CountingGateway>) {
    counting_gateway::spawn_counting(quiet_workers(), Duration::ZERO).await
}

#[tokio::test]
async fn a_refund_that_loses_the_race_to_shipping_never_calls_the_gateway() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let (staff, customer) = (&cast.staff, &cast.customer);
    product(db, "RACE-1", 900, 5).await.unwrap();
    let order = place(orders, customer, "RACE-1", Some(GOOD_CARD)).await;
    lifecycle::ship(orders, staff, order.id, ShipRequest::default()).await.unwrap();

    let err = lifecycle::refund(orders, staff, order.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { from: "shipped", to: "refunded" }), "{err:?}");
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 0);
    let charge = gateway.lookup(order.id.to_string()).await.unwrap();
    assert!(matches!(charge, Some(PaymentRecord::Succeeded { .. })), "{charge:?}");
}

#[tokio::test]
async fn while_a_refund_is_claimed_neither_shipping_nor_a_second_refund_wins() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "RACE-2", 900, 5).await.unwrap();
    let order = place(orders, &cast.customer, "RACE-2", Some(GOOD_CARD)).await;
    // Another process claimed the refund and is talking to the gateway.
    sqlx::query(
        "UPDATE orders SET saga_state = 'refunding', saga_deadline = '2999-01-01T00:00:00.000000Z' WHERE id = $1",
    )
    .bind(order.id.to_string())
    .execute(db.pool())
    .await
    .unwrap();
    for err in [
        lifecycle::ship(orders, &cast.staff, order.id, ShipRequest::default()).await.unwrap_err(),
        lifecycle::refund(orders, &cast.staff, order.id).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Conflict { code: "refund-in-progress", .. }), "{err:?}");
    }
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 0);
    assert_eq!(orders::get(orders, &cast.staff, order.id).await.unwrap().status, OrderStatus::Paid);
    assert_eq!(stock(db, p).await, (5, 1));
}

#[tokio::test]
async fn a_refund_interrupted_between_claim_and_settle_is_finished_by_recovery() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "CRASH-1", 900, 5).await.unwrap();
    let order = place(orders, &cast.customer, "CRASH-1", Some(GOOD_CARD)).await;
    gateway.fail_next_refund.store(true, Ordering::SeqCst);

    let err = lifecycle::refund(orders, &cast.staff, order.id).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(orders::get(orders, &cast.staff, order.id).await.unwrap().status, OrderStatus::Paid);
    assert_eq!(saga_of(db, order.id).await, SagaState::Refunding);
    let err = lifecycle::ship(orders, &cast.staff, order.id, ShipRequest::default()).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { code: "refund-in-progress", .. }), "{err:?}");

    lapse_lease(db, order.id).await;
    assert_eq!(recovery::recover_interrupted_sagas(orders).await.unwrap(), 1);
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 2, "recovery refunds again with the same payment id");
    let refunded = orders::get(orders, &cast.staff, order.id).await.unwrap();
    assert_eq!(refunded.status, OrderStatus::Refunded);
    assert!(refunded.closed_at.is_some());
    assert_eq!(saga_of(db, order.id).await, SagaState::Completed);
    assert_eq!(events_of(db, order.id).await, ["order.placed", "order.paid", "order.refunded"]);
    let charge = gateway.lookup(order.id.to_string()).await.unwrap();
    assert!(matches!(charge, Some(PaymentRecord::Reversed { .. })), "{charge:?}");
    assert_eq!(stock(db, p).await, (5, 0));
}

#[tokio::test]
async fn recovery_settles_a_refund_the_gateway_already_made_without_refunding_twice() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "CRASH-2", 900, 5).await.unwrap();
    let order = place(orders, &cast.customer, "CRASH-2", Some(GOOD_CARD)).await;
    // The process claimed, the gateway refunded, and the process died before settling.
    sqlx::query("UPDATE orders SET saga_state = 'refunding' WHERE id = $1")
        .bind(order.id.to_string())
        .execute(db.pool())
        .await
        .unwrap();
    lapse_lease(db, order.id).await;
    let Some(PaymentRecord::Succeeded { payment_id }) = gateway.lookup(order.id.to_string()).await.unwrap() else {
        panic!("expected a succeeded charge");
    };
    gateway.sandbox.refund(payment_id).await.unwrap();

    assert_eq!(recovery::recover_interrupted_sagas(orders).await.unwrap(), 1);
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 0);
    assert_eq!(orders::get(orders, &cast.staff, order.id).await.unwrap().status, OrderStatus::Refunded);
    assert_eq!(stock(db, p).await, (5, 0));
}

#[tokio::test]
async fn a_refund_pays_back_and_releases_the_stock_once() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "REF-1", 900, 5).await.unwrap();
    let order = place(orders, &cast.customer, "REF-1", Some(GOOD_CARD)).await;
    let refunded = lifecycle::refund(orders, &cast.staff_write_key, order.id).await.unwrap();
    assert_eq!(refunded.status, OrderStatus::Refunded);
    let again = lifecycle::refund(orders, &cast.staff, order.id).await.unwrap_err();
    assert!(matches!(again, Error::InvalidTransition { from: "refunded", .. }), "{again:?}");
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 1);
    assert_eq!(stock(db, p).await, (5, 0));
}

// ---------------------------------------------------------------------------------------
// f. Partial refunds: a saga step of their own, never more than was paid.

fn by_amount(amount_minor: i64) -> PartialRefundRequest {
    PartialRefundRequest { amount_minor: Some(amount_minor), lines: None }
}

fn by_lines(lines: &[(i64, i64)]) -> PartialRefundRequest {
    let lines = lines.iter().map(|&(line_no, quantity)| partial_refund::RefundLine { line_no, quantity }).collect();
    PartialRefundRequest { amount_minor: None, lines: Some(lines) }
}

async fn refunded_minor(db: &Db, order: Uuid) -> (i64, i64) {
    let row = sqlx::query("SELECT refund_claimed_minor, refunded_minor FROM orders WHERE id = $1")
        .bind(order.to_string())
        .fetch_one(db.pool())
        .await
        .unwrap();
    (row.get("refund_claimed_minor"), row.get("refunded_minor"))
}

#[tokio::test]
async fn refunding_lines_before_shipping_releases_their_units_and_the_last_one_ends_the_order_refunded() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "PART-1", 250, 10).await.unwrap();
    let order =
        checkout::place_order(orders, &cast.customer, request(&[("PART-1", 4)], Some(GOOD_CARD))).await.unwrap();
    assert_eq!(stock(db, p).await, (10, 4));

    let first = partial_refund::refund_part(orders, &cast.staff, order.id, by_lines(&[(1, 1)])).await.unwrap();
    assert_eq!((first.amount_minor, first.state.as_str()), (250, "settled"));
    assert!(first.gateway_refund_id.is_some());
    assert_eq!(stock(db, p).await, (10, 3), "the refunded unit is released");
    let after = orders::get(orders, &cast.customer, order.id).await.unwrap();
    assert_eq!((after.status, after.refunded_minor), (OrderStatus::Paid, 250));

    partial_refund::refund_part(orders, &cast.staff, order.id, by_amount(500)).await.unwrap();
    assert_eq!(stock(db, p).await, (10, 3), "a refund by amount keeps the stock reserved");
    partial_refund::refund_part(orders, &cast.staff, order.id, by_lines(&[(1, 1)])).await.unwrap();
    let done = orders::get(orders, &cast.customer, order.id).await.unwrap();
    assert_eq!((done.status, done.refunded_minor), (OrderStatus::Refunded, 1_000));
    assert_eq!(stock(db, p).await, (10, 0), "the order refunded in full releases what it still held");
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 3);
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 0);
    let charge = gateway.lookup(order.id.to_string()).await.unwrap();
    assert!(matches!(charge, Some(PaymentRecord::Reversed { .. })), "{charge:?}");
    assert_eq!(
        events_of(db, order.id).await,
        [
            "order.placed",
            "order.paid",
            "order.partially_refunded",
            "order.partially_refunded",
            "order.partially_refunded",
            "order.refunded"
        ]
    );
}

#[tokio::test]
async fn a_partial_refund_beyond_what_was_paid_is_refused_changes_nothing_and_never_calls_the_gateway() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "PART-2", 300, 10).await.unwrap();
    let order =
        checkout::place_order(orders, &cast.customer, request(&[("PART-2", 2)], Some(GOOD_CARD))).await.unwrap();
    partial_refund::refund_part(orders, &cast.staff, order.id, by_amount(400)).await.unwrap();

    for (req, code) in [
        (by_amount(201), "refund-exceeds-payment"),
        (by_lines(&[(1, 3)]), "refund-exceeds-quantity"),
        (by_lines(&[(1, 1)]), "refund-exceeds-payment"),
    ] {
        let err = partial_refund::refund_part(orders, &cast.staff, order.id, req).await.unwrap_err();
        assert!(matches!(&err, Error::Conflict { code: c, .. } if *c == code), "{err:?}");
    }
    let err = partial_refund::refund_part(orders, &cast.staff, order.id, by_lines(&[(2, 1)])).await.unwrap_err();
    assert!(matches!(&err, Error::Validation(f) if f[0].field == "lines[0].line_no"), "{err:?}");
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 1);
    assert_eq!(refunded_minor(db, order.id).await, (400, 400));
    assert_eq!(count(db, "SELECT COUNT(*) FROM order_refunds").await, 1);
    assert_eq!(stock(db, p).await, (10, 2));
    let unpaid = place(orders, &cast.customer, "PART-2", None).await;
    let err = partial_refund::refund_part(orders, &cast.staff, unpaid.id, by_amount(1)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { code: "not-refundable", .. }), "{err:?}");
}

#[tokio::test]
async fn after_shipping_a_line_refund_leaves_stock_alone_and_the_order_shipped() {
    let (t, _gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "PART-3", 300, 10).await.unwrap();
    let order =
        checkout::place_order(orders, &cast.customer, request(&[("PART-3", 2)], Some(GOOD_CARD))).await.unwrap();
    lifecycle::ship(orders, &cast.staff, order.id, ShipRequest::default()).await.unwrap();
    assert_eq!(stock(db, p).await, (8, 0));
    partial_refund::refund_part(orders, &cast.staff, order.id, by_lines(&[(1, 2)])).await.unwrap();
    assert_eq!(stock(db, p).await, (8, 0));
    let after = orders::get(orders, &cast.customer, order.id).await.unwrap();
    assert_eq!((after.status, after.refunded_minor), (OrderStatus::Shipped, 600));
}

#[tokio::test]
async fn a_full_refund_after_partial_ones_refunds_only_the_remainder() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    let p = product(db, "PART-4", 300, 10).await.unwrap();
    let order =
        checkout::place_order(orders, &cast.customer, request(&[("PART-4", 2)], Some(GOOD_CARD))).await.unwrap();
    partial_refund::refund_part(orders, &cast.staff, order.id, by_lines(&[(1, 1)])).await.unwrap();
    let refunded = lifecycle::refund(orders, &cast.staff, order.id).await.unwrap();
    assert_eq!((refunded.status, refunded.refunded_minor), (OrderStatus::Refunded, 600));
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 2, "the remainder is refunded by amount");
    assert_eq!(gateway.refunds.load(Ordering::SeqCst), 0);
    let amounts: Vec<i64> = sqlx::query_scalar("SELECT amount_minor FROM sandbox_refunds ORDER BY created_at, id")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(amounts, [300, 300]);
    assert_eq!(stock(db, p).await, (10, 0));
    let err = partial_refund::refund_part(orders, &cast.staff, order.id, by_amount(1)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { code: "not-refundable", .. }), "{err:?}");
}

#[tokio::test]
async fn a_partial_refund_whose_gateway_answer_was_lost_is_finished_by_recovery_once() {
    let (t, gateway) = spawn_counting().await;
    let (orders, db) = (&t.app.orders, &t.app.db);
    let cast = Cast::new(db).await;
    product(db, "PART-5", 300, 10).await.unwrap();
    let order =
        checkout::place_order(orders, &cast.customer, request(&[("PART-5", 2)], Some(GOOD_CARD))).await.unwrap();
    gateway.fail_next_refund.store(true, Ordering::SeqCst);
    let err = partial_refund::refund_part(orders, &cast.staff, order.id, by_amount(100)).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(refunded_minor(db, order.id).await, (100, 0), "the amount stays claimed");
    sqlx::query("UPDATE order_refunds SET deadline = '2000-01-01T00:00:00.000000Z'").execute(db.pool()).await.unwrap();
    assert_eq!(recovery::recover_interrupted_sagas(orders).await.unwrap(), 1);
    assert_eq!(recovery::recover_interrupted_sagas(orders).await.unwrap(), 0);
    assert_eq!(refunded_minor(db, order.id).await, (100, 100));
    assert_eq!(gateway.partial_refunds.load(Ordering::SeqCst), 2);
    assert_eq!(count(db, "SELECT COUNT(*) FROM sandbox_refunds").await, 1);
}

#[tokio::test]
async fn the_openapi_document_keeps_the_checkout_schemas_names() {
    let t = spawn().await;
    let (status, doc) = t.get("/openapi.json", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in ["PlaceOrderRequest", "LineItemRequest", "PaymentRequest", "Order", "OrderStatus"] {
        assert!(schemas.contains_key(name), "{name} missing from {:?}", schemas.keys().collect::<Vec<_>>());
    }
    assert!(!schemas.contains_key("CheckoutRequest"));
    let body = &doc["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/PlaceOrderRequest");
    let line = &schemas["PlaceOrderRequest"]["properties"]["line_items"]["items"]["$ref"];
    assert_eq!(line, "#/components/schemas/LineItemRequest");
}
