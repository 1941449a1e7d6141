//! The in-process bus: published events, as every live reader of this replica sees them.
//!
//! The relay (or, with NATS configured, this replica's JetStream subscriber) puts each
//! published event on the [`Hub`] once; SSE streams, WebSocket sessions and per-replica
//! consumers (cache invalidation) subscribe to it. A subscriber that falls more than the
//! hub's capacity behind gets `RecvError::Lagged` and must drop its client or resync from
//! the outbox: one slow reader never slows the others (tokio's broadcast channel keeps one
//! ring buffer, not a queue per reader).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::db;

/// One published event: an outbox row with the publish sequence the relay gave it. This is
/// the JSON body of NATS messages, SSE `data:`, WebSocket `event` frames and webhook
/// deliveries (docs/EVENTS.md, "Envelope").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The publish sequence: increases in publish order across all replicas (one total
    /// order, assigned under the relay's lock); the SSE `id:` and the `Last-Event-ID` resume
    /// point.
    pub seq: i64,
    /// The event id (UUID v7), stable across redeliveries: consumers deduplicate on it and
    /// JetStream receives it as `Nats-Msg-Id`.
    pub id: Uuid,
    /// `order.paid`, `inventory.adjusted`, … (docs/EVENTS.md).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload schema version of `type`.
    pub version: u32,
    /// The order or product the event is about.
    pub aggregate_id: Uuid,
    /// When the change committed, RFC 3339 UTC with microseconds.
    pub occurred_at: String,
    /// The payload, as recorded (the schema of `type` in docs/EVENTS.md).
    pub data: serde_json::Value,
}

impl Envelope {
    /// The envelope as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serializing owned strings, numbers and already-valid raw JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a published outbox row selected with the columns `seq, id, event_type,
    /// event_version (as BIGINT), aggregate_id, payload, created_at`.
    pub fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        let payload: String = row.try_get("payload")?;
        let data = serde_json::from_str(&payload).map_err(|e| sqlx::Error::Decode(e.into()))?;
        Ok(Envelope {
            seq: row.try_get("seq")?,
            id: db::parse_id(&row.try_get::<String, _>("id")?)?,
            event_type: row.try_get("event_type")?,
            version: u32::try_from(row.try_get::<i64, _>("event_version")?).unwrap_or(1),
            aggregate_id: db::parse_id(&row.try_get::<String, _>("aggregate_id")?)?,
            occurred_at: row.try_get("created_at")?,
            data,
        })
    }

    /// Whether this is an order event (its aggregate is an order).
    pub fn is_order_event(&self) -> bool {
        self.event_type.starts_with("order.")
    }
}

/// The columns [`Envelope::from_row`] decodes, for `SELECT … FROM outbox`.
pub const COLUMNS: &str =
    "seq, id, event_type, CAST(event_version AS BIGINT) AS event_version, aggregate_id, payload, created_at";

/// The replica's fan-out point. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Envelope>>,
}

impl Hub {
    /// A hub whose subscribers may fall up to `capacity` events behind before they lag.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self { tx }
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }

    /// Hands `event` to every current subscriber (none is fine).
    pub fn publish(&self, event: Arc<Envelope>) {
        let _ = self.tx.send(event);
    }

    /// How many subscribers are attached (SSE streams, WebSocket sessions, consumers).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
