//! Imports over the API: upload → job → progress → result, the per-row error report, keys,
//! limits, content checks and who may do what.

use reqwest::StatusCode;
use serde_json::json;

use super::{count, fast, finished, upload};
use crate::helpers::{Options, TestApp, assert_problem};

async fn spawn(extra: Vec<(&'static str, String)>) -> TestApp {
    let mut config = fast();
    config.extend(extra);
    TestApp::spawn_with(Options { config, ..Default::default() }).await
}

fn products_csv(n: usize) -> String {
    let mut csv = String::from("sku,name,category,price,currency,on_hand\n");
    for i in 0..n {
        csv.push_str(&format!("SKU-{i},Product {i},Furniture/Chairs,{}.99,USD,{}\n", i % 50, i % 7));
    }
    csv
}

#[tokio::test]
async fn an_uploaded_csv_is_imported_in_batches_and_its_bad_rows_are_reported_as_csv() {
    let app = spawn(vec![]).await;
    let staff = app.staff().await;
    let mut csv = products_csv(120);
    csv.push_str("bad sku,,Furniture,12.x,USD,-1\n");
    csv.push_str("OK-1,Fine,,1,XXX,1\n");
    let (status, job) = upload(&app, &staff, "products", "text/csv", csv, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "import.products");
    let id = job["id"].as_str().unwrap();

    let job = finished(&app, &staff, id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["done"], 122);
    assert_eq!(job["result"]["rows"], 122);
    assert_eq!(job["result"]["created"]["products"], 120);
    assert_eq!(job["result"]["rejected"], 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM products").await, 120);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM inventory").await, 120);
    let done = count(&app, "SELECT COUNT(*) FROM outbox WHERE event_type = 'job.succeeded'").await;
    assert_eq!(done, 1);
    assert!(count(&app, "SELECT COUNT(*) FROM outbox WHERE event_type = 'job.progress'").await >= 1);

    let res = app.client.get(app.url(&format!("/api/v1/jobs/{id}/errors"))).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let report = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(report.as_bytes());
    assert_eq!(reader.headers().unwrap(), vec!["line", "field", "message"]);
    let rows: Vec<(String, String)> =
        reader.records().map(|r| r.unwrap()).map(|r| (r[0].to_owned(), r[1].to_owned())).collect();
    for field in ["sku", "name", "price", "on_hand"] {
        assert!(rows.contains(&("122".to_owned(), field.to_owned())), "{report}");
    }
    assert!(rows.contains(&("123".to_owned(), "currency".to_owned())), "{report}");
    assert!(rows.iter().all(|(line, _)| line == "122" || line == "123"), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn ndjson_customers_and_then_their_orders_are_imported() {
    let app = spawn(vec![]).await;
    let staff = app.staff().await;
    let customers = "{\"email\":\"ann@example.com\",\"name\":\"Ann\"}\n{\"email\":\"bob@example.com\",\"name\":\"Bob\",\"external_ref\":\"B-1\"}\n{\"email\":\"nope\",\"name\":\"X\"}\n";
    let (status, job) = upload(&app, &staff, "customers", "application/x-ndjson", customers, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = finished(&app, &staff, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        (job["result"]["created"]["customers"].as_i64(), job["result"]["rejected"].as_i64()),
        (Some(2), Some(1))
    );

    let mut orders =
        String::from("order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity\n");
    for n in 0..60 {
        // Two lines per order: batches of 50 rows must never split an order.
        for sku in ["A", "B"] {
            orders.push_str(&format!("N-{n},ann@example.com,2016-01-02,delivered,USD,{sku},Thing,1.50,2\n"));
        }
    }
    let (status, job) = upload(&app, &staff, "orders", "text/csv; charset=utf-8", orders, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = finished(&app, &staff, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["created"]["orders"], 60);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM order_lines").await, 120);
    app.stop().await;
}

#[tokio::test]
async fn the_same_key_twice_gives_one_job() {
    let app = spawn(vec![]).await;
    let staff = app.staff().await;
    let (first, a) = upload(&app, &staff, "products", "text/csv", products_csv(3), Some("price-list-7")).await;
    assert_eq!(first, StatusCode::ACCEPTED, "{a}");
    let (second, b) = upload(&app, &staff, "products", "text/csv", products_csv(5), Some("price-list-7")).await;
    assert_eq!(second, StatusCode::OK, "{b}");
    assert_eq!(a["id"], b["id"]);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM jobs").await, 1);
    let job = finished(&app, &staff, a["id"].as_str().unwrap()).await;
    assert_eq!(job["result"]["created"]["products"], 3, "the first upload is the one imported");
    app.stop().await;
}

#[tokio::test]
async fn uploads_over_the_limit_or_not_what_they_claim_are_refused_and_create_no_job() {
    let app = spawn(vec![("imports.max_upload_bytes", "1000".into())]).await;
    let staff = app.staff().await;
    let (status, body) = upload(&app, &staff, "products", "text/csv", products_csv(100), None).await;
    assert_problem(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    let elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00".to_vec();
    let (status, _) = upload(&app, &staff, "products", "text/csv", elf, None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = upload(&app, &staff, "products", "application/json", "{}", None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = upload(&app, &staff, "products", "application/x-ndjson", "sku,name\n", None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = upload(&app, &staff, "planets", "text/csv", "a\n", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = upload(&app, &staff, "products?format=superstore", "text/csv", "a\n", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM jobs").await, 0);
    let files = std::fs::read_dir(app.db.data_dir().join("files").join("imports")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0, "refused uploads leave no file behind");
    app.stop().await;
}

#[tokio::test]
async fn a_file_with_a_wrong_header_fails_its_job_with_the_reason() {
    let app = spawn(vec![]).await;
    let staff = app.staff().await;
    let (_, job) = upload(&app, &staff, "products", "text/csv", "sku,pirce\nA,1\n", None).await;
    let job = finished(&app, &staff, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("pirce"), "{job}");
    assert_eq!(job["attempts"], 1, "a refused file is not retried");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM outbox WHERE event_type = 'job.failed'").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn customers_cannot_import_and_nobody_sees_another_users_job() {
    let app = spawn(vec![]).await;
    let staff = app.staff().await;
    let (customer, _, _) = app.register_customer("jobs-customer@example.com").await;
    let (status, body) = upload(&app, &customer, "products", "text/csv", products_csv(2), None).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (_, job) = upload(&app, &staff, "products", "text/csv", products_csv(2), None).await;
    let id = job["id"].as_str().unwrap();
    let (status, _) = app.get(&format!("/api/v1/jobs/{id}"), Some(&customer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/jobs/{id}/errors"), Some(&customer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&customer), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = app.get("/api/v1/jobs", Some(&customer)).await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let (status, _) = app.get(&format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let other_staff = app.staff().await;
    let (status, _) = app.get(&format!("/api/v1/jobs/{id}"), Some(&other_staff)).await;
    assert_eq!(status, StatusCode::OK, "staff see every job");
    let (_, page) = app.get("/api/v1/jobs?limit=1", Some(&staff)).await;
    assert_eq!(page["items"][0]["id"], id);
    app.stop().await;
}

#[tokio::test]
async fn a_stock_count_sets_on_hand_keeps_reservations_and_is_idempotent() {
    let app = spawn(vec![]).await;
    let staff = app.staff().await;
    let a = app.create_product(&staff, "CNT-A", 1000, 10).await;
    let b = app.create_product(&staff, "CNT-B", 1000, 5).await;
    let c = app.create_product(&staff, "CNT-C", 1000, 5).await;
    let d = app.create_product(&staff, "CNT-D", 1000, 2).await;
    let id = |p: &serde_json::Value| p["id"].as_str().unwrap().to_owned();
    let (customer, _, _) = app.register_customer("counted@example.com").await;
    let (status, order) = app.place_order(&customer, "CNT-C", 3, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (_, cached) = app.get(&format!("/api/v1/products/{}", id(&a)), None).await;
    assert_eq!(cached["available"], 10, "{cached}");

    let csv = "sku,on_hand\nCNT-A,40\nCNT-B,5\nCNT-C,1\nNOPE-1,4\nCNT-D,abc\nCNT-A,7\nCNT-D,0\n";
    let (status, job) = upload(&app, &staff, "stock", "text/csv", csv, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "import.stock");
    let job = finished(&app, &staff, job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let r = &job["result"];
    assert_eq!((r["rows"].as_i64(), r["rejected"].as_i64()), (Some(7), Some(4)), "{job}");
    assert_eq!((r["created"]["stock_levels"].as_i64(), r["present"]["stock_levels"].as_i64()), (Some(2), Some(1)));

    assert_eq!(app.stock(&staff, &id(&a)).await, (40, 0, 40));
    assert_eq!(app.stock(&staff, &id(&b)).await, (5, 0, 5));
    assert_eq!(app.stock(&staff, &id(&c)).await, (5, 3, 2), "a count below the reservations changes nothing");
    assert_eq!(app.stock(&staff, &id(&d)).await, (0, 0, 0));
    let (_, fresh) = app.get(&format!("/api/v1/products/{}", id(&a)), None).await;
    assert_eq!(fresh["available"], 40, "the cached product was dropped after the batch: {fresh}");
    let counted =
        "SELECT COUNT(*) FROM outbox WHERE event_type = 'inventory.adjusted' AND payload LIKE '%stock count%'";
    assert_eq!(count(&app, counted).await, 2);
    let low = format!("SELECT COUNT(*) FROM outbox WHERE event_type = 'inventory.low' AND aggregate_id = '{}'", id(&d));
    assert_eq!(count(&app, &low).await, 1);

    let res = app.client.get(app.url(&format!("/api/v1/jobs/{}/errors", job["id"].as_str().unwrap())));
    let report = res.bearer_auth(&staff).send().await.unwrap().text().await.unwrap();
    let mut reader = csv::Reader::from_reader(report.as_bytes());
    let rows: Vec<(String, String, String)> =
        reader.records().map(|r| r.unwrap()).map(|r| (r[0].to_owned(), r[1].to_owned(), r[2].to_owned())).collect();
    let lines: Vec<&str> = rows.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(lines, vec!["4", "5", "6", "7"], "{report}");
    assert!(rows[0].2.contains("3 reserved"), "{report}");
    assert!(rows[1].2.contains("no product with SKU NOPE-1"), "{report}");
    assert_eq!(rows[2].1, "on_hand", "{report}");
    assert!(rows[3].2.contains("appears earlier (line 2)"), "{report}");

    let (_, again) = upload(&app, &staff, "stock", "text/csv", csv, None).await;
    let again = finished(&app, &staff, again["id"].as_str().unwrap()).await;
    let r = &again["result"];
    assert_eq!((r["created"]["stock_levels"].as_i64(), r["present"]["stock_levels"].as_i64()), (Some(0), Some(3)));
    assert_eq!(count(&app, counted).await, 2, "a second run of the same count records nothing");
    assert_eq!(app.stock(&staff, &id(&a)).await, (40, 0, 40));
    app.stop().await;
}
