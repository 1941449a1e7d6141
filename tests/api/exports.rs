//! Streaming exports: `GET /exports/{orders,products,customers}` and the export jobs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orderly::exports::Kind;
use orderly::exports::jobs::{ExportHandler, handlers};
use orderly::files::storage::Storage;
use orderly::imports::{generic, superstore};
use orderly::jobs::{Job, JobContext, JobError, JobHandler, JobReporter, ReportFuture};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestApp;

fn superstore_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/superstore/superstore.csv")
}

/// GETs an export; returns status, content type, content disposition and the body.
async fn download(app: &TestApp, token: Option<&str>, path: &str) -> (StatusCode, String, String, String) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    let status = res.status();
    (status, ct, cd, res.text().await.expect("body"))
}

async fn export(app: &TestApp, staff: &str, what: &str) -> String {
    let (status, ct, cd, body) = download(app, Some(staff), &format!("/api/v1/exports/{what}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ct, "text/csv; charset=utf-8");
    assert!(cd.starts_with(&format!("attachment; filename=\"{what}-")) && cd.ends_with(".csv\""), "{cd}");
    body
}

#[tokio::test]
async fn all_9994_superstore_lines_export_and_round_trip_through_the_generic_import() {
    let first = TestApp::spawn().await;
    superstore::import_file(&first.app.db, &superstore_csv()).await.expect("import superstore");
    let staff = first.staff().await;
    let orders = export(&first, &staff, "orders").await;
    let products = export(&first, &staff, "products").await;
    let customers = export(&first, &staff, "customers").await;
    assert_eq!(
        orders.lines().next(),
        Some("order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity,discount")
    );
    assert_eq!(csv::Reader::from_reader(orders.as_bytes()).records().count(), 9994);
    assert_eq!(csv::Reader::from_reader(products.as_bytes()).records().count(), 1862);
    assert_eq!(csv::Reader::from_reader(customers.as_bytes()).records().count(), 793);

    // NDJSON: one object per line, every line parses.
    let (status, ct, _, ndjson) = download(&first, Some(&staff), "/api/v1/exports/orders?format=ndjson").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/x-ndjson");
    let lines: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).expect("an NDJSON line")).collect();
    assert_eq!(lines.len(), 9994);
    assert!(lines.iter().all(|l| l["quantity"].as_i64().is_some_and(|q| q > 0) && l["order_number"].is_string()));

    // Into a fresh database through the CLI's import code, then out again: identical.
    let second = TestApp::spawn().await;
    let dir = second.db.data_dir();
    for (name, body) in [("products.csv", &products), ("customers.csv", &customers), ("orders.csv", &orders)] {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let db = &second.app.db;
    let p = generic::import_file(db, "products", &dir.join("products.csv")).await.expect("products");
    let c = generic::import_file(db, "customers", &dir.join("customers.csv")).await.expect("customers");
    let o = generic::import_file(db, "orders", &dir.join("orders.csv")).await.expect("orders");
    for report in [&p, &c, &o] {
        assert!(report.errors.is_empty(), "{report}");
    }
    assert_eq!(o.rows_read, 9994);
    let staff2 = second.staff().await;
    assert_eq!(export(&second, &staff2, "products").await, products);
    assert_eq!(export(&second, &staff2, "customers").await, customers);
    assert_eq!(export(&second, &staff2, "orders").await, orders);

    // Filters: a year of orders, a status that none has.
    let (status, _, _, y2017) =
        download(&first, Some(&staff), "/api/v1/exports/orders?from=2017-01-01T00:00:00Z&to=2018-01-01T00:00:00Z")
            .await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(y2017.as_bytes()).records().map(Result::unwrap).collect();
    assert!(rows.len() > 1000 && rows.len() < 9994, "{}", rows.len());
    assert!(rows.iter().all(|r| r[2].starts_with("2017-")));
    let (_, _, _, none) = download(&first, Some(&staff), "/api/v1/exports/orders?status=cancelled").await;
    assert_eq!(none.lines().count(), 1, "the header only");

    // The export job writes the same file to storage.
    let storage = Storage::new(Arc::new(object_store::memory::InMemory::new()), "memory");
    let staff_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE role = 'staff'").fetch_one(first.app.db.pool()).await.unwrap();
    let job = job("export.orders", Some(Uuid::parse_str(&staff_id).unwrap()));
    let ctx = JobContext::new(job.id, Arc::new(Reporter), storage.clone());
    let handler = ExportHandler::new(first.app.db.clone(), Kind::Orders);
    let out = handler.run(&job, &ctx).await.expect("export job");
    let key = out.file.expect("a file");
    assert_eq!(key, format!("exports/{}.csv", job.id));
    use object_store::ObjectStoreExt;
    let stored =
        storage.store().get(&object_store::path::Path::from(key.as_str())).await.unwrap().bytes().await.unwrap();
    assert_eq!(std::str::from_utf8(&stored).unwrap(), orders);
    assert_eq!(out.result["bytes"], orders.len());
}

struct Reporter;

impl JobReporter for Reporter {
    fn progress(&self, _job: Uuid, _done: u64, _total: Option<u64>) -> ReportFuture<'_> {
        Box::pin(async { Ok(()) })
    }
    fn checkpoint(&self, _job: Uuid, _checkpoint: Value, _done: u64) -> ReportFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn job(kind: &str, created_by: Option<Uuid>) -> Job {
    Job { id: Uuid::now_v7(), kind: kind.to_owned(), params: Value::Null, created_by, attempt: 1, checkpoint: None }
}

#[tokio::test]
async fn export_jobs_run_only_for_staff_and_refuse_bad_parameters() {
    let app = TestApp::spawn().await;
    let (_, customer_id, _) = app.register_customer("export-job@example.com").await;
    let all = handlers(app.app.db.clone());
    let kinds: Vec<&str> = all.iter().map(|h| h.kind()).collect();
    assert_eq!(kinds, ["export.orders", "export.products", "export.customers"]);
    let storage = Storage::new(Arc::new(object_store::memory::InMemory::new()), "memory");
    let ctx = JobContext::new(Uuid::now_v7(), Arc::new(Reporter), storage);
    let by_customer = job("export.customers", Some(Uuid::parse_str(&customer_id).unwrap()));
    assert!(matches!(all[2].run(&by_customer, &ctx).await, Err(JobError::Permanent(_))));
    let mut bad = job("export.orders", None);
    bad.params = serde_json::json!({ "from": "yesterday" });
    assert!(matches!(all[0].run(&bad, &ctx).await, Err(JobError::Permanent(_))));
}

#[tokio::test]
async fn exports_are_for_staff_validate_their_filters_and_compress() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "EX-1", 1299, 3).await;
    let (customer, _, _) = app.register_customer("export-403@example.com").await;
    for what in ["orders", "products", "customers"] {
        let path = format!("/api/v1/exports/{what}");
        assert_eq!(download(&app, Some(&customer), &path).await.0, StatusCode::FORBIDDEN);
        assert_eq!(download(&app, None, &path).await.0, StatusCode::UNAUTHORIZED);
    }
    for path in [
        "/api/v1/exports/orders?from=yesterday",
        "/api/v1/exports/orders?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z",
        "/api/v1/exports/orders?status=lost",
        "/api/v1/exports/customers?status=active",
        "/api/v1/exports/products?format=xml",
    ] {
        let (status, _, _, body) = download(&app, Some(&staff), path).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{path}: {status} {body}"
        );
    }
    let products = export(&app, &staff, "products").await;
    assert_eq!(products, "sku,name,description,category,price,currency,on_hand\nEX-1,Product EX-1,,,12.99,USD,3\n");
    let (status, _, _, archived) = download(&app, Some(&staff), "/api/v1/exports/products?status=archived").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(archived.lines().count(), 1);
    let customers = export(&app, &staff, "customers").await;
    assert_eq!(customers, "email,name,external_ref\nexport-403@example.com,Test Customer,\n");

    let res = app
        .client
        .get(app.url("/api/v1/exports/products"))
        .bearer_auth(&staff)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some("gzip"));
}

#[tokio::test]
async fn an_export_started_as_a_job_is_downloadable_once_it_succeeds_and_only_staff_may_start_one() {
    let app = TestApp::spawn_with(crate::helpers::Options { config: crate::jobs::fast(), ..Default::default() }).await;
    let staff = app.staff().await;
    app.create_product(&staff, "EXJ-1", 1299, 3).await;
    let (customer, _, _) = app.register_customer("export-job-403@example.com").await;
    let start = |token: String, path: &'static str| {
        let req = app.client.post(app.url(path)).bearer_auth(token);
        async move {
            let res = req.send().await.expect("start");
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(start(customer.clone(), "/api/v1/exports/products/jobs").await.0, StatusCode::FORBIDDEN);
    let (status, bad) = start(staff.clone(), "/api/v1/exports/orders/jobs?from=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, job) = start(staff.clone(), "/api/v1/exports/products/jobs").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("job id").to_owned();
    let done = crate::jobs::wait_job(&app, &staff, &id, |j| j["state"] == "succeeded" || j["state"] == "failed").await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (status, _, _, file) = download(&app, Some(&staff), &format!("/api/v1/jobs/{id}/result")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(file, export(&app, &staff, "products").await);
    let (status, _, _, _) = download(&app, Some(&customer), &format!("/api/v1/jobs/{id}/result")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
