//! The staff dashboard: content, access, and a partial answer when a source is slow.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orderly::Overrides;
use orderly::dashboard::{
    DashboardSources, DayRevenue, LowStock, NewCustomers, Period, SqlSources, StatusCount, TopProduct,
};
use reqwest::StatusCode;

use crate::helpers::{GOOD_CARD, Options, TestApp, assert_problem};

#[tokio::test]
async fn the_dashboard_sums_todays_sales_and_lists_low_stock() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "DB-1", 1_000, 100).await;
    app.create_product(&staff, "DB-LOW", 500, 3).await;
    let (customer, _, _) = app.register_customer("dash@example.com").await;
    app.place_order(&customer, "DB-1", 2, Some(GOOD_CARD)).await;
    app.place_order(&customer, "DB-1", 1, Some(GOOD_CARD)).await;
    app.place_order(&customer, "DB-1", 1, None).await;

    let (status, body) = app.get("/api/v1/dashboard", Some(&customer)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, d) = app.get("/api/v1/dashboard", Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["missing"].as_array().unwrap().len(), 0, "{d}");
    let revenue = d["revenue_by_day"].as_array().unwrap();
    assert_eq!(revenue.len(), 1);
    assert_eq!((revenue[0]["revenue_minor"].as_i64(), revenue[0]["orders"].as_i64()), (Some(3_000), Some(2)));
    assert_eq!(d["top_products"][0]["sku"], "DB-1");
    assert_eq!(d["top_products"][0]["units"], 3);
    let low: Vec<&str> = d["low_stock"].as_array().unwrap().iter().map(|l| l["sku"].as_str().unwrap()).collect();
    assert_eq!(low, vec!["DB-LOW"]);
    assert_eq!(d["new_customers"]["total"], 1);
    let statuses = d["orders_by_status"].as_array().unwrap();
    assert!(statuses.iter().any(|s| s["status"] == "pending_payment" && s["orders"] == 1), "{d}");
}

/// Every source from the database, except `top_products`, which takes far too long.
struct SlowTopProducts(SqlSources);

impl DashboardSources for SlowTopProducts {
    fn revenue_by_day(&self, p: Period) -> BoxFuture<'_, orderly::Result<Vec<DayRevenue>>> {
        self.0.revenue_by_day(p)
    }
    fn orders_by_status(&self, p: Period) -> BoxFuture<'_, orderly::Result<Vec<StatusCount>>> {
        self.0.orders_by_status(p)
    }
    fn top_products(&self, p: Period, limit: i64) -> BoxFuture<'_, orderly::Result<Vec<TopProduct>>> {
        async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            self.0.top_products(p, limit).await
        }
        .boxed()
    }
    fn low_stock(&self, limit: i64) -> BoxFuture<'_, orderly::Result<Vec<LowStock>>> {
        self.0.low_stock(limit)
    }
    fn new_customers(&self, p: Period) -> BoxFuture<'_, orderly::Result<NewCustomers>> {
        self.0.new_customers(p)
    }
}

#[tokio::test]
async fn a_slow_source_yields_a_partial_answer_naming_what_is_missing() {
    let db = Arc::new(crate::helpers::TestDb::new().await);
    let sources = SlowTopProducts(SqlSources::new(TestApp::spawn_db(&db).await));
    let app = TestApp::spawn_with(Options {
        config: vec![("dashboard.deadline_ms", "500".into())],
        db: Some(db),
        overrides: Overrides { dashboard: Some(Arc::new(sources)), ..Default::default() },
    })
    .await;
    let staff = app.staff().await;
    let (status, d) = app.get("/api/v1/dashboard?from=2021-01-01&to=2029-12-31", Some(&staff)).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["missing"], serde_json::json!(["top_products"]));
    assert!(d["top_products"].is_null());
    assert!(d["revenue_by_day"].is_array());
    assert!(d["low_stock"].is_array());
    assert_eq!(d["new_customers"]["total"], 0);
}

#[tokio::test]
async fn a_reversed_period_is_rejected() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let (status, body) = app.get("/api/v1/dashboard?from=2020-02-01&to=2020-01-01", Some(&staff)).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    assert_eq!(body["errors"][0]["field"], "from");
}
