//! The cache's contract with a fake loader: one load per key under a stampede, hits
//! without loads, invalidation (also racing a load), list generations, errors not kept.

use std::sync::atomic::AtomicUsize;

use bytes::Bytes;

use super::*;

fn cache() -> CatalogCache {
    CatalogCache::new(&Config::default()).expect("cache")
}

fn entry(body: &'static str) -> Entry {
    Entry { rep: Representation::new(Bytes::from_static(body.as_bytes())), restricted: false }
}

#[tokio::test]
async fn concurrent_misses_of_one_key_run_one_load() {
    let cache = cache();
    let loads = Arc::new(AtomicUsize::new(0));
    let id = Uuid::now_v7();
    let readers = (0..32).map(|_| {
        let (cache, loads) = (cache.clone(), loads.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(Key::Product(id), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(entry("{}"))
                })
                .await
        })
    });
    for r in futures_util::future::join_all(readers).await {
        assert_eq!(r.expect("joined").expect("loaded").rep.body, Bytes::from_static(b"{}"));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
}

#[tokio::test]
async fn a_change_drops_the_entry_and_a_hit_costs_no_load() {
    let cache = cache();
    let id = Uuid::now_v7();
    let load = |body| move || async move { Ok(entry(body)) };
    assert_eq!(cache.get_or_load(Key::Product(id), load("1")).await.unwrap().rep.body, "1");
    assert_eq!(cache.get_or_load(Key::Product(id), load("2")).await.unwrap().rep.body, "1");
    cache.products_changed(&[id]).await;
    assert_eq!(cache.get_or_load(Key::Product(id), load("3")).await.unwrap().rep.body, "3");
    assert_eq!(cache.stats(), CacheStats { local_hits: 1, shared_hits: 0, loads: 2 });
}

#[tokio::test]
async fn a_row_read_before_a_change_is_not_kept_after_it() {
    let cache = cache();
    let id = Uuid::now_v7();
    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(Key::Product(id), || async move {
                    // The old row is read, then the writer commits and invalidates.
                    let _ = loaded_tx.send(());
                    let _ = go_rx.await;
                    Ok(entry("old"))
                })
                .await
        })
    };
    loaded_rx.await.unwrap();
    cache.products_changed(&[id]).await;
    go_tx.send(()).unwrap();
    assert_eq!(slow.await.unwrap().unwrap().rep.body, "old");
    let next = cache.get_or_load(Key::Product(id), || async { Ok(entry("new")) }).await.unwrap();
    assert_eq!(next.rep.body, "new");
}

#[tokio::test]
async fn list_pages_are_dropped_on_any_product_change() {
    let cache = cache();
    let key = cache.list_key(false, "limit=20".into());
    cache.get_or_load(key, || async { Ok(entry("page1")) }).await.unwrap();
    cache.products_changed(&[Uuid::now_v7()]).await;
    let key = cache.list_key(false, "limit=20".into());
    assert_eq!(cache.get_or_load(key, || async { Ok(entry("page2")) }).await.unwrap().rep.body, "page2");
}

#[tokio::test]
async fn errors_are_not_cached() {
    let cache = cache();
    let id = Uuid::now_v7();
    let missing = cache.get_or_load(Key::Product(id), || async { Err(Error::NotFound("product")) }).await;
    assert!(matches!(missing, Err(Error::NotFound("product"))));
    let found = cache.get_or_load(Key::Product(id), || async { Ok(entry("{}")) }).await;
    assert!(found.is_ok());
}

#[tokio::test]
async fn every_waiter_gets_the_loaders_error_with_its_kind() {
    let cache = cache();
    let id = Uuid::now_v7();
    let readers = (0..8).map(|_| {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(Key::Product(id), || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(Error::Database(sqlx::Error::PoolTimedOut))
                })
                .await
        })
    });
    for r in futures_util::future::join_all(readers).await {
        let e = r.expect("joined").expect_err("the load failed");
        assert!(e.is_database_unreachable(), "{e:?}");
    }
}
