//! Catalog cache invalidation by events: a per-replica subscriber of the [`Hub`] (not a
//! durable consumer: every replica must drop its own entries, so each sees every event it
//! receives, and nothing is kept across restarts, when the cache starts empty anyway).
//!
//! The writers' direct invalidation (`CatalogCache::*_changed` right after their commit)
//! stays: it is synchronous, so a client reads its own write, and it clears the shared
//! Redis tier and tells the other replicas. This subscriber drops this replica's own
//! entries only (`CatalogCache::forget`, what a Redis pub/sub message does): the event
//! arrives after the writer's invalidation, so clearing Redis again would only turn the
//! next read of every changed product into a second miss. It covers what the hooks cannot:
//! a writer that died between its commit and its invalidation, writes that bypass the
//! hooks, and, with NATS feeding every hub, replicas without Redis pub/sub. (The Redis tier
//! itself is bounded by `cache.ttl_secs` in those cases.) Which events, and why:
//!
//! - `product.created`: the list pages only (nothing can have cached the new product
//!   itself; dropping its first cached copy would make the reads racing the event load it
//!   twice).
//! - `product.updated` and `inventory.*`: the product named by the event (its aggregate),
//!   and the list pages.
//! - order events that move stock (`order.placed` reserves; `order.cancelled` and
//!   `order.failed` release; `order.shipped` takes on-hand; `order.refunded`, and
//!   `order.partially_refunded` with `stock_released`, may release): their payloads name
//!   no products, so the order's line products are looked up in `order_lines` (one
//!   indexed query; lines never change after checkout, so the lookup is sound whenever it
//!   runs). `order.paid` and `order.delivered` move no stock.
//! - `import.completed`: everything this replica cached (one summary stands for many rows).
//! - a subscriber that lagged behind the hub lost events: everything this replica cached.

use sqlx::Row;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use uuid::Uuid;

use super::runner::stopped;
use crate::cache::{CatalogCache, Change};
use crate::db::{self, Db};
use crate::events::bus::{Envelope, Hub};

/// What an event means for the catalog cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing cached changes.
    None,
    /// Only list pages change (a new product).
    Lists,
    /// The product with this id changed.
    Product(Uuid),
    /// The products on this order's lines changed stock.
    OrderLines(Uuid),
    /// Too much changed to name: drop everything.
    All,
}

/// Classifies `event` (see the module docs for the rules).
pub fn effect(event: &Envelope) -> Effect {
    let t = event.event_type.as_str();
    match t {
        "product.created" => Effect::Lists,
        _ if t.starts_with("product.") || t.starts_with("inventory.") => Effect::Product(event.aggregate_id),
        "order.placed" | "order.cancelled" | "order.failed" | "order.shipped" | "order.refunded" => {
            Effect::OrderLines(event.aggregate_id)
        }
        "order.partially_refunded" if event.data.get("stock_released").and_then(|v| v.as_bool()) != Some(false) => {
            Effect::OrderLines(event.aggregate_id)
        }
        "import.completed" => Effect::All,
        _ => Effect::None,
    }
}

/// Invalidates `cache` for every event on `hub` until `stop` turns true.
pub async fn run(hub: Hub, cache: CatalogCache, db: Db, mut stop: watch::Receiver<bool>) {
    let mut events = hub.subscribe();
    loop {
        let next = tokio::select! {
            r = events.recv() => r,
            () = stopped(&mut stop) => return,
        };
        match next {
            Ok(event) => apply(&cache, &db, &event).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "cache invalidation fell behind the event hub; dropping the local catalog cache"
                );
                cache.forget_all();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn apply(cache: &CatalogCache, db: &Db, event: &Envelope) {
    match effect(event) {
        Effect::None => {}
        // No key to drop: forgetting no products still moves the list generation on.
        Effect::Lists => cache.forget(&Change::Products(Vec::new())).await,
        Effect::Product(id) => cache.forget(&Change::Products(vec![id])).await,
        Effect::OrderLines(order) => match line_products(db, order).await {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => cache.forget(&Change::Products(ids)).await,
            Err(e) => {
                tracing::warn!(order.id = %order, error = %e, "cannot look up an order's products; dropping the local catalog cache");
                cache.forget_all();
            }
        },
        Effect::All => cache.forget_all(),
    }
}

/// The products on `order`'s lines.
async fn line_products(db: &Db, order: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT DISTINCT product_id FROM order_lines WHERE order_id = $1 AND product_id IS NOT NULL")
            .bind(order.to_string())
            .fetch_all(db.pool())
            .await?;
    rows.iter().map(|r| db::parse_id(&r.try_get::<String, _>("product_id")?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: &str, data: serde_json::Value) -> Envelope {
        Envelope {
            seq: 1,
            id: Uuid::nil(),
            event_type: t.into(),
            version: 1,
            aggregate_id: Uuid::from_u128(7),
            occurred_at: String::new(),
            data,
        }
    }

    #[test]
    fn product_and_inventory_events_invalidate_their_product() {
        for t in ["product.updated", "inventory.adjusted", "inventory.low"] {
            assert_eq!(effect(&event(t, serde_json::json!({}))), Effect::Product(Uuid::from_u128(7)), "{t}");
        }
    }

    #[test]
    fn a_new_product_invalidates_only_the_list_pages() {
        assert_eq!(effect(&event("product.created", serde_json::json!({}))), Effect::Lists);
    }

    #[test]
    fn only_order_events_that_move_stock_invalidate_the_order_lines() {
        for t in ["order.placed", "order.cancelled", "order.failed", "order.shipped", "order.refunded"] {
            assert_eq!(effect(&event(t, serde_json::json!({}))), Effect::OrderLines(Uuid::from_u128(7)), "{t}");
        }
        for t in ["order.paid", "order.delivered"] {
            assert_eq!(effect(&event(t, serde_json::json!({}))), Effect::None, "{t}");
        }
        let kept = event("order.partially_refunded", serde_json::json!({ "stock_released": false }));
        assert_eq!(effect(&kept), Effect::None);
        let released = event("order.partially_refunded", serde_json::json!({ "stock_released": true }));
        assert_eq!(effect(&released), Effect::OrderLines(Uuid::from_u128(7)));
    }

    #[test]
    fn an_import_drops_everything() {
        assert_eq!(effect(&event("import.completed", serde_json::json!({}))), Effect::All);
    }
}
