//! Cache invalidation by events: a product changed behind the service's back (no direct
//! invalidation) is served fresh once its event is published.

use reqwest::StatusCode;

use super::{eventually, fast};
use crate::helpers::{Options, TestApp};

#[tokio::test]
async fn a_product_changed_without_the_service_is_refreshed_by_its_published_event() {
    let mut config = fast();
    // Entries would live for 10 minutes: only an invalidation can refresh them in time.
    config.push(("cache.ttl_secs", "600".into()));
    config.push(("cache.local_ttl_secs", "600".into()));
    let app = TestApp::spawn_with(Options { config, ..Default::default() }).await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "INVAL-1", 100, 5).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    let (status, body) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app.get(&path, None).await;
    assert_eq!(body["price_minor"], 100);
    assert!(app.app.catalog.cache.stats().local_hits >= 1, "the product is served from the cache");

    // Another writer (a script, a replica that died before invalidating) changes the row
    // and records the event in the same transaction; no hook is called.
    let mut tx = app.app.db.begin_write().await.unwrap();
    sqlx::query("UPDATE products SET price_minor = 250 WHERE id = $1").bind(&id).execute(&mut *tx).await.unwrap();
    orderly::events::record(
        &mut tx,
        orderly::events::Event::ProductUpdated(orderly::events::ProductUpdated { product_id: id.parse().unwrap() }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    eventually("the new price", || async { app.get(&path, None).await.1["price_minor"] == 250 }).await;
    app.stop().await;
}
