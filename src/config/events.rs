//! Settings of the event pipeline: the outbox relay, the in-process hub, durable consumers,
//! NATS JetStream, live streams (SSE, WebSocket) and webhooks.

use serde::{Deserialize, Serialize};

use super::Secret;

/// The outbox relay and the in-process hub (`src/events`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// How often the relay looks for unpublished outbox rows, in milliseconds; a full batch
    /// is followed by the next round at once.
    pub relay_interval_ms: u64,
    /// Rows published per relay round (one transaction).
    pub relay_batch: u32,
    /// Events a live subscriber of this replica may fall behind before it is cut off.
    pub hub_capacity: usize,
    /// How long published outbox rows (and `processed_events` entries) are kept, in seconds
    /// (default 7 days): the window in which SSE `Last-Event-ID` can resume from the outbox.
    pub retention_secs: u64,
    /// Seconds between pruning passes of this replica.
    pub prune_interval_secs: u64,
    /// Rows deleted per pruning statement (a pass repeats until less than this is left).
    pub prune_batch: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            relay_interval_ms: 100,
            relay_batch: 256,
            hub_capacity: 1024,
            retention_secs: 7 * 24 * 3600,
            prune_interval_secs: 60,
            prune_batch: 1000,
        }
    }
}

/// NATS JetStream for domain events and live fan-out (`ORDERLY_NATS_URL`; empty: the
/// in-process bus). See `src/events/nats.rs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:4222` (credentials in the URL are kept secret). Empty: no NATS.
    pub url: Secret,
    /// The JetStream stream the relay publishes to; created or updated at start.
    pub stream: String,
    /// Events go to `<subject_prefix>.<event type>`, e.g. `orderly.events.order.paid`; the
    /// stream holds `<subject_prefix>.>`.
    pub subject_prefix: String,
    /// How long the relay waits for JetStream to acknowledge a round's messages, in
    /// milliseconds, before it rolls the round back.
    pub ack_timeout_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            stream: "ORDERLY_EVENTS".into(),
            subject_prefix: "orderly.events".into(),
            ack_timeout_ms: 5000,
        }
    }
}

/// Live streams: Server-Sent Events and WebSocket (`src/realtime`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Seconds between SSE keep-alive comments and WebSocket pings.
    pub keepalive_secs: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self { keepalive_secs: 15 }
    }
}

/// Webhook deliveries (`src/webhooks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allows endpoint URLs on loopback, link-local and private addresses. For development
    /// only: in production it would let an admin point deliveries at internal services (SSRF).
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self { allow_private_targets: false }
    }
}
