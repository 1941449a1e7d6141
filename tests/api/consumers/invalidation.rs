//! Cache invalidation by events: a product changed behind the service's back (no direct
//! invalidation) is served fresh once its event is published.

use reqwest::StatusCode;

use sqlx::Row;

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
    // Its own product.created event drops the first cached copy when it arrives; from
    // then on the product is served from the cache.
    eventually("the product to be served from the cache", || async {
        let before = app.app.catalog.cache.stats().local_hits;
        let (status, body) = app.get(&path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["price_minor"], 100);
        app.app.catalog.cache.stats().local_hits > before
    })
    .await;
    caught_up_relay(&app).await;
    let (_, body) = app.get(&path, None).await;
    assert_eq!(body["price_minor"], 100);

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

/// Waits until the relay has published every outbox row.
async fn caught_up_relay(app: &TestApp) {
    let pool = app.app.db.pool().clone();
    eventually("the relay to publish everything", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get("n");
            n == 0
        }
    })
    .await;
}
