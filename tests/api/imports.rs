//! Imports: the bundled Superstore dataset lands exactly (counts, cents, idempotence) and is
//! served by the API; the generic CSV formats import good rows and report bad ones by line.

use std::path::{Path, PathBuf};

use orderly::db::Db;
use orderly::imports::{generic, superstore};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn superstore_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/superstore/superstore.csv")
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(db.pool()).await.expect(sql)
}

/// Σ over the file of `Sales` rounded half up to cents, read digit by digit (independent of
/// the importer's arithmetic), and the number of amounts with digits past the cent.
fn sales_in_cents_from_the_file() -> (i64, i64) {
    let mut reader = csv::Reader::from_path(superstore_csv()).expect("superstore.csv");
    let column = reader.headers().expect("header").iter().position(|h| h == "Sales").expect("Sales column");
    let (mut total, mut sub_cent) = (0i64, 0i64);
    for record in reader.records() {
        let sales = record.expect("row")[column].to_owned();
        let (units, decimals) = sales.split_once('.').unwrap_or((&sales, ""));
        let digit = |i: usize| decimals.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        let mut cents = units.parse::<i64>().expect("units") * 100 + digit(0) * 10 + digit(1);
        if digit(2) >= 5 {
            cents += 1;
        }
        if decimals.len() > 2 {
            sub_cent += 1;
        }
        total += cents;
    }
    (total, sub_cent)
}

const COUNTS: [(&str, i64); 6] = [
    ("SELECT COUNT(*) FROM orders", 5_009),
    ("SELECT COUNT(*) FROM order_lines", 9_994),
    ("SELECT COUNT(*) FROM users WHERE role = 'customer' AND password_hash IS NULL", 793),
    ("SELECT COUNT(*) FROM products", 1_862),
    ("SELECT COUNT(*) FROM inventory WHERE reserved = 0 AND on_hand >= 6", 1_862),
    ("SELECT COUNT(*) FROM categories", 20),
];

#[tokio::test]
async fn importing_superstore_twice_lands_every_row_once_to_the_exact_cent() {
    let app = TestApp::spawn().await;
    let db = &app.app.db;

    let report = superstore::import_file(db, &superstore_csv()).await.expect("import");
    assert_eq!(report.rows_read, 9_994);
    let l = &report.loaded;
    assert_eq!(
        (l.categories.created, l.products.created, l.customers.created, l.orders.created, l.order_lines_created),
        (20, 1_862, 793, 5_009, 9_994),
        "{report}"
    );
    assert!(l.rejected.is_empty(), "{report}");
    assert_eq!(report.merged_skus.len(), 32, "{report}");
    assert_eq!(report.duplicate_lines.len(), 8, "{report}");
    for (sql, want) in COUNTS {
        assert_eq!(count(db, sql).await, want, "{sql}");
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM users").await, 793, "every customer is a user, and no one else");

    let (cents_in_file, sub_cent) = sales_in_cents_from_the_file();
    let lines_total = count(db, "SELECT CAST(SUM(line_total_minor) AS BIGINT) FROM order_lines").await;
    assert_eq!(lines_total, cents_in_file);
    assert_eq!(sub_cent, 4_001);
    assert_eq!(report.sub_cent_lines, 4_001);
    // Each sub-cent amount moves by at most half a cent from the published Σ 2,297,200.86.
    assert!((lines_total - 229_720_086).abs() * 2 <= 4_001, "{lines_total}");
    assert_eq!(count(db, "SELECT CAST(SUM(total_minor) AS BIGINT) FROM orders").await, lines_total);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM order_lines WHERE line_total_minor <> unit_price_minor * quantity - discount_minor"
        )
        .await,
        0
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM orders WHERE status <> 'delivered' OR saga_state <> 'completed'").await,
        0
    );

    let again = superstore::import_file(db, &superstore_csv()).await.expect("second import");
    assert_eq!(again.loaded.created(), 0, "{again}");
    assert_eq!(
        (again.loaded.products.present, again.loaded.customers.present, again.loaded.orders.present),
        (1_862, 793, 5_009)
    );
    for (sql, want) in COUNTS {
        assert_eq!(count(db, sql).await, want, "after the second import: {sql}");
    }
}

#[tokio::test]
async fn an_imported_order_customer_and_product_are_served_by_the_api() {
    let app = TestApp::spawn().await;
    superstore::import_file(&app.app.db, &superstore_csv()).await.expect("import");
    let staff = app.staff().await;

    let claire: String = sqlx::query_scalar("SELECT id FROM users WHERE external_ref = $1")
        .bind("CG-12520")
        .fetch_one(app.app.db.pool())
        .await
        .expect("Claire Gute was imported");
    let (status, page) = app.get(&format!("/api/v1/orders?customer_id={claire}&limit=100"), Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let orders = page["items"].as_array().expect("items");
    let order = orders.iter().find(|o| o["number"] == "CA-2016-152156").expect("CA-2016-152156 is listed");
    assert_eq!(order["status"], "delivered");
    assert!(order["placed_at"].as_str().is_some_and(|t| t.starts_with("2016-11-08T00:00:00")), "{order}");
    assert!(order["shipped_at"].as_str().is_some_and(|t| t.starts_with("2016-11-11")), "{order}");
    assert_eq!(order["ship_mode"], "Second Class");
    assert_eq!(order["shipping_address"]["city"], "Henderson");
    assert_eq!(order["total_minor"], 26_196 + 73_194);
    let lines = order["line_items"].as_array().expect("line_items");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sku"], "FUR-BO-10001798");
    assert_eq!((lines[0]["unit_price_minor"].as_i64(), lines[0]["quantity"].as_i64()), (Some(13_098), Some(2)));

    let (status, direct) =
        app.get(&format!("/api/v1/orders/{}", order["id"].as_str().expect("id")), Some(&staff)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(direct["customer_id"], claire.as_str());

    let admin = app.admin().await;
    let (_, user) = app.get(&format!("/api/v1/users/{claire}"), Some(&admin)).await;
    assert_eq!(
        (&user["name"], &user["role"], &user["can_log_in"]),
        (&json!("Claire Gute"), &json!("customer"), &json!(false))
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": "cg-12520@customers.superstore.example", "password": "anything at all" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an imported customer has no password");

    let (status, products) = app.get("/api/v1/products?q=bush%20somerset", None).await;
    assert_eq!(status, StatusCode::OK, "{products}");
    let bookcase = products["items"]
        .as_array()
        .and_then(|items| items.iter().find(|p| p["sku"] == "FUR-BO-10001798"))
        .expect("the bookcase is listed");
    assert_eq!(bookcase["price_minor"], 13_098);
    assert_eq!(bookcase["currency"], "USD");
    assert!(bookcase["available"].as_i64().is_some_and(|a| a > 5), "{bookcase}");
}

#[tokio::test]
async fn a_damaged_superstore_file_is_refused_before_anything_is_written() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let original = std::fs::read_to_string(superstore_csv()).expect("superstore.csv");
    let damaged: String = original.lines().take(4).collect::<Vec<_>>().join("\n").replace("731.94", "7e2");
    let path = dir.path().join("damaged.csv");
    std::fs::write(&path, damaged).expect("write");

    let err = superstore::import_file(&app.app.db, &path).await.expect_err("a bad Sales amount is refused");
    assert!(err.to_string().contains("line 3"), "{err}");
    assert_eq!(count(&app.app.db, "SELECT COUNT(*) FROM orders").await, 0);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

fn reasons_at(errors: &[orderly::imports::report::RowError], line: u64) -> String {
    errors.iter().filter(|e| e.line == Some(line)).map(|e| e.reason.clone()).collect::<Vec<_>>().join(" | ")
}

#[tokio::test]
async fn generic_csv_imports_report_bad_rows_by_line_and_import_the_good_ones() {
    let app = TestApp::spawn().await;
    let db = &app.app.db;
    let dir = tempfile::tempdir().expect("temp dir");
    let products = write(
        dir.path(),
        "products.csv",
        "sku,name,description,category,price,currency,on_hand\n\
         CH-1,Oak chair,Solid oak,Furniture/Chairs,129.90,USD,12\n\
         CH-2,Pine chair,,Furniture/Chairs,\"12,50\",USD,3\n\
         DK-1,Standing desk,,Furniture/Desks,499,USD,\n",
    );
    let customers = write(
        dir.path(),
        "customers.csv",
        "email,name,external_ref\nann@example.com,Ann Lee,SHOP-1\nnot-an-email,Bob,\nbob@example.com,Bob Day,\n",
    );
    let orders = write(
        dir.path(),
        "orders.csv",
        "order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity,discount\n\
         1001,ann@example.com,2024-03-01,delivered,USD,CH-1,Oak chair,129.90,2,10\n\
         1001,ann@example.com,2024-03-01,delivered,USD,OLD-9,Retired lamp,20,1,\n\
         1002,nobody@example.com,2024-03-02,shipped,USD,CH-1,Oak chair,129.90,1,\n\
         1003,bob@example.com,2024-03-03T10:00:00Z,paid,USD,DK-1,Standing desk,499,1,\n\
         1004,bob@example.com,2024-03-04,delivered,USD,DK-1,Standing desk,499,zero,\n",
    );

    let report = generic::import_file(db, "products", &products).await.expect("products");
    assert_eq!(
        (report.rows_read, report.loaded.products.created, report.loaded.categories.created),
        (3, 2, 3),
        "{report}"
    );
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(reasons_at(&report.errors, 3).contains("price:"), "{report}");

    let report = generic::import_file(db, "customers", &customers).await.expect("customers");
    assert_eq!(report.loaded.customers.created, 2, "{report}");
    assert!(reasons_at(&report.errors, 3).contains("email:"), "{report}");

    let report = generic::import_file(db, "orders", &orders).await.expect("orders");
    assert_eq!((report.loaded.orders.created, report.loaded.order_lines_created), (1, 2), "{report}");
    assert!(reasons_at(&report.errors, 4).contains("no customer with email nobody@example.com"), "{report}");
    assert!(reasons_at(&report.errors, 5).contains("status paid would hold stock"), "{report}");
    assert!(reasons_at(&report.errors, 6).contains("quantity:"), "{report}");
    assert_eq!(report.errors.len(), 4, "the bad row and its skipped order 1004: {report}");

    let order: (i64, i64, i64) =
        sqlx::query_as("SELECT subtotal_minor, discount_minor, total_minor FROM orders WHERE number = '1001'")
            .fetch_one(db.pool())
            .await
            .expect("order 1001");
    assert_eq!(order, (27_980, 1_000, 26_980));
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM order_lines WHERE product_id IS NULL").await,
        1,
        "OLD-9 is not in the catalog"
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM inventory WHERE on_hand = 12").await, 1);

    for again in [
        generic::import_file(db, "products", &products).await,
        generic::import_file(db, "customers", &customers).await,
        generic::import_file(db, "orders", &orders).await,
    ] {
        let again = again.expect("second import");
        assert_eq!(again.loaded.created(), 0, "{again}");
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM orders").await, 1);
    let (status, body): (StatusCode, Value) = app.get("/api/v1/products?q=oak", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["price_minor"], 12_990);
}
