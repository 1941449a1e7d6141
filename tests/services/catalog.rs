//! Catalog and inventory services called directly: who may do what (a table over the whole
//! cast), the same validation errors REST answers, and prices and stock staying within their
//! bounds for any `i64` a caller sends (property tests, on SQLite and PostgreSQL).

use std::cell::Cell;

use orderly::auth::Principal;
use orderly::catalog::ProductStatus;
use orderly::catalog::categories;
use orderly::catalog::products::{self, NewProduct, Product, ProductFilter, ProductPatch, ProductSort};
use orderly::catalog::{Catalog, stock};
use orderly::db::Db;
use orderly::error::{Error, ErrorKind};
use orderly::inventory::{self, MAX_DELTA, MAX_STOCK, StockLine};
use orderly::money::MAX_PRICE_MINOR;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::Row;

use crate::cast::Outcome::{Allowed, Denied, NotFound, Unauthenticated};
use crate::cast::{Cast, Outcome, outcome};
use crate::helpers::TestApp;

fn new_product(sku: &str, price_minor: i64, initial_stock: i64) -> NewProduct {
    NewProduct {
        sku: sku.to_owned(),
        name: format!("Product {sku}"),
        price_minor,
        currency: "USD".into(),
        initial_stock,
        ..NewProduct::default()
    }
}

fn price_patch(price_minor: i64) -> ProductPatch {
    ProductPatch { price_minor: Some(price_minor), ..ProductPatch::default() }
}

/// The fields a validation error names, in order; empty for any other result.
fn invalid_fields<T>(r: &Result<T, Error>) -> Vec<String> {
    match r {
        Err(Error::Validation(errors)) => errors.iter().map(|e| e.field.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Per principal: catalog writes (category create, product create/update, stock adjust),
/// the staff-only stock read, and the public catalog reads.
const TABLE: &[(&str, Outcome, Outcome, Outcome)] = &[
    ("anonymous", Unauthenticated, Unauthenticated, Allowed),
    ("customer", Denied, Denied, Allowed),
    ("other_customer", Denied, Denied, Allowed),
    ("staff", Allowed, Allowed, Allowed),
    ("admin", Allowed, Allowed, Allowed),
    ("staff_read_key", Denied, Allowed, Allowed),
    ("staff_write_key", Allowed, Allowed, Allowed),
    ("admin_key", Allowed, Allowed, Allowed),
    ("customer_key", Denied, Denied, Denied),
];

#[tokio::test]
async fn catalog_writes_need_staff_with_catalog_write_and_stock_reads_need_staff() {
    let t = TestApp::spawn().await;
    let db = &t.app.db;
    let cat = &t.app.catalog;
    let cast = Cast::new(db).await;
    let names: Vec<&str> = cast.all().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TABLE.iter().map(|row| row.0).collect::<Vec<_>>(), "the table covers the whole cast");
    let product = products::create(cat, &cast.staff, new_product("AUTH-0", 100, 5)).await.unwrap();
    let mut allowed_adjustments = 0;

    for ((name, p), (_, write, stock_read, public_read)) in cast.all().into_iter().zip(TABLE) {
        let calls = [
            ("categories::create", outcome(&categories::create(cat, p, &format!("Category {name}"), None).await)),
            ("products::create", outcome(&products::create(cat, p, new_product(&format!("AUTH-{name}"), 1, 1)).await)),
            ("products::update", outcome(&products::update(cat, p, product.id, price_patch(101), None).await)),
            ("inventory::adjust", outcome(&stock::adjust(cat, p, product.id, 1, "count", None).await)),
        ];
        for (op, got) in calls {
            assert_eq!(got, *write, "{op} as {name}");
        }
        if *write == Allowed {
            allowed_adjustments += 1;
        }
        assert_eq!(outcome(&inventory::get(db, p, product.id).await), *stock_read, "inventory::get as {name}");
        let reads = [
            ("categories::list", outcome(&categories::list(cat, p).await)),
            ("products::list", outcome(&products::list(cat, p, &ProductFilter::default()).await)),
            ("products::get", outcome(&products::get(cat, p, product.id).await)),
        ];
        for (op, got) in reads {
            assert_eq!(got, *public_read, "{op} as {name}");
        }
    }

    // Refused calls changed nothing: only the allowed adjustments moved the stock.
    let stock = inventory::get(db, &cast.staff, product.id).await.unwrap();
    assert_eq!(stock.on_hand, 5 + allowed_adjustments);
    let categories = categories::list(cat, &cast.anonymous).await.unwrap();
    assert_eq!(categories.len() as i64, allowed_adjustments);
}

#[tokio::test]
async fn archived_products_are_visible_to_staff_principals_only() {
    let t = TestApp::spawn().await;
    let db = &t.app.db;
    let cat = &t.app.catalog;
    let cast = Cast::new(db).await;
    let archived = NewProduct { status: Some(ProductStatus::Archived), ..new_product("ARCH-1", 100, 1) };
    let product = products::create(cat, &cast.staff, archived).await.unwrap();
    let expected = [
        ("anonymous", NotFound),
        ("customer", NotFound),
        ("other_customer", NotFound),
        ("staff", Allowed),
        ("admin", Allowed),
        ("staff_read_key", Allowed),
        ("staff_write_key", Allowed),
        ("admin_key", Allowed),
        ("customer_key", Denied),
    ];
    for ((name, p), (_, want)) in cast.all().into_iter().zip(expected) {
        assert_eq!(outcome(&products::get(cat, p, product.id).await), want, "products::get as {name}");
        let listed = products::list(cat, p, &ProductFilter::default()).await.map(|page| page.items.len());
        if want != Denied {
            assert_eq!(listed.unwrap(), usize::from(want == Allowed), "products::list as {name}");
        }
    }
}

#[tokio::test]
async fn a_direct_call_with_bad_values_gets_the_validation_errors_rest_answers() {
    let t = TestApp::spawn().await;
    let db = &t.app.db;
    let cat = &t.app.catalog;
    let cast = Cast::new(db).await;
    let staff = &cast.staff;
    let bad = NewProduct { currency: "ZZZ".into(), ..new_product("bad sku", -1, 0) };
    assert_eq!(invalid_fields(&products::create(cat, staff, bad).await), ["sku", "price_minor", "currency"]);
    let too_much = new_product("BIG-1", MAX_PRICE_MINOR + 1, MAX_STOCK + 1);
    assert_eq!(invalid_fields(&products::create(cat, staff, too_much).await), ["price_minor", "initial_stock"]);
    let blank = NewProduct { name: "  ".into(), description: "x".repeat(10_001), ..new_product("BLANK-1", 1, -1) };
    assert_eq!(invalid_fields(&products::create(cat, staff, blank).await), ["name", "description", "initial_stock"]);

    let product = products::create(cat, staff, new_product("OK-1", 100, 5)).await.unwrap();
    let patch = ProductPatch { name: Some(String::new()), currency: Some("usd!".into()), ..price_patch(i64::MIN) };
    assert_eq!(
        invalid_fields(&products::update(cat, staff, product.id, patch, None).await),
        ["name", "price_minor", "currency"]
    );
    assert_eq!(invalid_fields(&stock::adjust(cat, staff, product.id, 0, "", None).await), ["delta", "reason"]);
    for delta in [i64::MIN, -MAX_DELTA - 1, MAX_DELTA + 1, i64::MAX] {
        assert_eq!(
            invalid_fields(&stock::adjust(cat, staff, product.id, delta, "x", None).await),
            ["delta"],
            "{delta}"
        );
    }
    assert_eq!(invalid_fields(&categories::create(cat, staff, "!!!", None).await), ["name"]);
    let unchanged = products::get(cat, staff, product.id).await.unwrap();
    assert_eq!((unchanged.price_minor, unchanged.available, unchanged.version), (100, 5, 1));
}

#[tokio::test]
async fn stock_stops_at_its_bound_with_a_conflict_that_changes_nothing() {
    let t = TestApp::spawn().await;
    let db = &t.app.db;
    let cat = &t.app.catalog;
    let cast = Cast::new(db).await;
    let staff = &cast.staff;
    let product = products::create(cat, staff, new_product("MAX-1", 1, MAX_STOCK - MAX_DELTA)).await.unwrap();
    let full = stock::adjust(cat, staff, product.id, MAX_DELTA, "restock", None).await.unwrap();
    assert_eq!(full.on_hand, MAX_STOCK);
    let over = stock::adjust(cat, staff, product.id, 1, "restock", None).await;
    assert!(matches!(&over, Err(e) if e.code() == "stock-limit" && e.kind() == ErrorKind::Conflict), "{over:?}");
    assert_eq!(inventory::get(db, staff, product.id).await.unwrap().on_hand, MAX_STOCK);
    let below = stock::adjust(cat, staff, product.id, -1, "count", None).await.unwrap();
    assert_eq!(below.on_hand, MAX_STOCK - 1);
}

// ---- Property tests: the whole i64 range, one app per property run. ----

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn config() -> Config {
    Config { cases: 48, failure_persistence: None, ..Config::default() }
}

/// Any i64, weighted towards the edges of `valid` and of the type, and towards valid values.
fn wide_i64(valid: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = i64> {
    let (lo, hi) = (*valid.start(), *valid.end());
    let edges = vec![i64::MIN, i64::MIN + 1, lo - 1, lo, lo + 1, -1, 0, 1, hi - 1, hi, hi + 1, i64::MAX - 1, i64::MAX];
    prop_oneof![
        3 => any::<i64>(),
        3 => proptest::sample::select(edges),
        2 => valid,
        1 => (hi - 2 * MAX_DELTA)..=hi,
        1 => -20i64..=20,
    ]
}

/// Runs `property` for generated values on `rt`, failing the test with proptest's report.
fn check<S: Strategy>(
    rt: &tokio::runtime::Runtime,
    strategy: S,
    property: impl AsyncFn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, |v| rt.block_on(property(v))) {
        panic!("{e}");
    }
}

async fn stored_price(cat: &Catalog, staff: &Principal, id: uuid::Uuid) -> i64 {
    products::get(cat, staff, id).await.unwrap().price_minor
}

#[test]
fn prices_are_stored_exactly_or_refused_across_the_whole_i64_range() {
    let rt = runtime();
    let (t, cast, fixed) = rt.block_on(async {
        let t = TestApp::spawn().await;
        let cast = Cast::new(&t.app.db).await;
        let fixed = products::create(&t.app.catalog, &cast.staff, new_product("FIXED-1", 100, 0)).await.unwrap();
        (t, cast, fixed)
    });
    let staff = &cast.staff;
    let cat = &t.app.catalog;
    let next = Cell::new(0u32);
    let prices = || wide_i64(0..=MAX_PRICE_MINOR);
    check(&rt, (prices(), prices()), async |(create_price, update_price)| {
        let valid = |p: i64| (0..=MAX_PRICE_MINOR).contains(&p);
        next.set(next.get() + 1);
        let created =
            products::create(cat, staff, new_product(&format!("PRICE-{}", next.get()), create_price, 0)).await;
        match &created {
            Ok(p) => {
                prop_assert!(valid(create_price), "{create_price} was accepted");
                prop_assert_eq!(p.price_minor, create_price);
                prop_assert_eq!(stored_price(cat, staff, p.id).await, create_price);
            }
            Err(_) => {
                prop_assert!(!valid(create_price), "{create_price} was refused: {created:?}");
                prop_assert_eq!(invalid_fields(&created), ["price_minor"]);
            }
        }

        let before = stored_price(cat, staff, fixed.id).await;
        let updated = products::update(cat, staff, fixed.id, price_patch(update_price), None).await;
        match &updated {
            Ok(p) => {
                prop_assert!(valid(update_price), "{update_price} was accepted");
                prop_assert_eq!(p.price_minor, update_price);
                prop_assert_eq!(stored_price(cat, staff, fixed.id).await, update_price);
            }
            Err(_) => {
                prop_assert!(!valid(update_price), "{update_price} was refused: {updated:?}");
                prop_assert_eq!(invalid_fields(&updated), ["price_minor"]);
                prop_assert_eq!(stored_price(cat, staff, fixed.id).await, before);
            }
        }
        let by_price = ProductFilter { sort: Some(ProductSort::PriceDesc), ..ProductFilter::default() };
        let page = products::list(cat, &cast.anonymous, &by_price).await;
        prop_assert!(page.is_ok(), "the product list answers: {page:?}");
        Ok(())
    });
    rt.block_on(t.stop());
}

/// `(on_hand, reserved)` as stored, after checking on SQLite that both are still integers.
async fn stored_stock(t: &TestApp, id: uuid::Uuid) -> Result<(i64, i64), TestCaseError> {
    let pool = t.app.db.pool();
    if !t.db.is_postgres() {
        let types =
            sqlx::query("SELECT typeof(on_hand) AS o, typeof(reserved) AS r FROM inventory WHERE product_id = $1")
                .bind(id.to_string())
                .fetch_one(pool)
                .await
                .unwrap();
        let (o, r): (String, String) = (types.get("o"), types.get("r"));
        prop_assert_eq!((o.as_str(), r.as_str()), ("integer", "integer"));
    }
    let row = sqlx::query("SELECT on_hand, reserved FROM inventory WHERE product_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .unwrap();
    Ok((row.get("on_hand"), row.get("reserved")))
}

/// Reserves `quantity` units as an order would; false if there were not enough.
async fn reserve(db: &Db, p: &Product, quantity: i64) -> bool {
    let mut tx = db.begin_write().await.unwrap();
    let line = StockLine { product_id: p.id, sku: p.sku.clone(), quantity };
    match inventory::reserve(&mut tx, &[line]).await {
        Ok(()) => {
            tx.commit().await.unwrap();
            true
        }
        Err(Error::InsufficientStock { .. }) => false,
        Err(e) => panic!("reserve failed: {e:?}"),
    }
}

#[test]
fn stock_adjustments_are_exact_or_refused_and_stock_never_leaves_its_bounds() {
    let rt = runtime();
    let (t, cast) = rt.block_on(async {
        let t = TestApp::spawn().await;
        let cast = Cast::new(&t.app.db).await;
        (t, cast)
    });
    let (db, staff) = (&t.app.db, &cast.staff);
    let cat = &t.app.catalog;
    let next = Cell::new(0u32);
    let case =
        (wide_i64(0..=MAX_STOCK), 1i64..=1_000, proptest::collection::vec(wide_i64(-MAX_DELTA..=MAX_DELTA), 1..8));
    check(&rt, case, async |(initial, reserved, deltas)| {
        next.set(next.get() + 1);
        let sku = format!("STOCK-{}", next.get());
        let created = products::create(cat, staff, new_product(&sku, 1, initial)).await;
        let product = match created {
            Ok(p) => {
                prop_assert!((0..=MAX_STOCK).contains(&initial), "initial stock {initial} was accepted");
                p
            }
            Err(_) => {
                prop_assert!(!(0..=MAX_STOCK).contains(&initial), "{initial} was refused: {created:?}");
                prop_assert_eq!(invalid_fields(&created), ["initial_stock"]);
                let clamped = initial.clamp(0, MAX_STOCK);
                products::create(cat, staff, new_product(&sku, 1, clamped)).await.unwrap()
            }
        };
        let (on_hand, _) = stored_stock(&t, product.id).await?;
        prop_assert_eq!(reserve(db, &product, reserved).await, reserved <= on_hand);

        for delta in deltas {
            let (before, held) = stored_stock(&t, product.id).await?;
            let result = stock::adjust(cat, staff, product.id, delta, "property", None).await;
            let (after, still_held) = stored_stock(&t, product.id).await?;
            prop_assert_eq!(still_held, held);
            let wanted = i128::from(before) + i128::from(delta);
            let allowed = delta != 0
                && delta.unsigned_abs() <= MAX_DELTA.unsigned_abs()
                && (i128::from(held)..=i128::from(MAX_STOCK)).contains(&wanted);
            match &result {
                Ok(inv) => {
                    prop_assert!(allowed, "{before} + {delta} (reserved {held}) was accepted");
                    prop_assert_eq!(i128::from(after), wanted);
                    prop_assert_eq!(inv.on_hand, after);
                }
                Err(e) => {
                    prop_assert!(!allowed, "{before} + {delta} (reserved {held}) was refused: {e:?}");
                    prop_assert!(
                        matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Conflict),
                        "a refusal is a 422 or 409: {e:?}"
                    );
                    prop_assert_eq!(after, before);
                }
            }
            prop_assert!((held..=MAX_STOCK).contains(&after), "on hand {after} left [{held}, {MAX_STOCK}]");
        }
        let page = products::list(cat, &cast.anonymous, &ProductFilter::default()).await;
        prop_assert!(page.is_ok(), "the product list answers: {page:?}");
        Ok(())
    });
    rt.block_on(t.stop());
}
