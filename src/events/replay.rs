//! Reading published events back from the outbox, in publish order, after a given `seq`:
//! what a live reader missed (SSE `Last-Event-ID`, a WebSocket `last_event_id`).
//!
//! Rows become visible here in sequence order: the relay assigns `seq` and commits under
//! the `relay_cursor` lock, so when a read sees `seq` n every row below n has committed
//! too. A page that ends at n therefore leaves no gap below n.

use uuid::Uuid;

use crate::db::{Arg, Db, SqlBuilder};
use crate::events::bus::{COLUMNS, Envelope};

/// Which published events to read back; all parts combine with AND.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'a> {
    /// Only events about this aggregate (an order or a product id).
    pub aggregate_id: Option<Uuid>,
    /// Only order events (`order.*`).
    pub order_events: bool,
    /// Only these event types; empty: every type.
    pub types: &'a [String],
}

/// Published events matching `selection` with `seq > after`, in `seq` order, at most
/// `limit` (clamped to 1..=1000). Fewer than `limit` rows means the reader has caught up
/// with what is published now. Uses the `outbox_seq` index (and `outbox_aggregate`).
pub async fn after(db: &Db, selection: Selection<'_>, after: i64, limit: i64) -> Result<Vec<Envelope>, sqlx::Error> {
    let mut q = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM outbox WHERE seq > "));
    let p = q.arg(Arg::Int(after));
    q.push(&p);
    if let Some(id) = selection.aggregate_id {
        let p = q.arg(Arg::Text(id.to_string()));
        q.push(" AND aggregate_id = ").push(&p);
    }
    if selection.order_events {
        q.push(" AND event_type LIKE 'order.%'");
    }
    if !selection.types.is_empty() {
        let placeholders: Vec<String> = selection.types.iter().map(|t| q.arg(Arg::Text(t.clone()))).collect();
        q.push(" AND event_type IN (").push(&placeholders.join(", ")).push(")");
    }
    let p = q.arg(Arg::Int(limit.clamp(1, 1000)));
    q.push(" ORDER BY seq LIMIT ").push(&p);
    let rows = q.build().fetch_all(db.pool()).await?;
    rows.iter().map(Envelope::from_row).collect()
}
