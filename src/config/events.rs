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
    /// Handler calls running at once in this process, over every durable consumer
    /// (`src/events/consumers`); events of one aggregate are always handled one at a time.
    pub consumer_workers: usize,
    /// Attempts at an event whose handler fails with a retryable error, before it is
    /// dead-lettered (1: no retry).
    pub consumer_max_attempts: u32,
    /// The first retry's delay in milliseconds; each further retry doubles it (capped at
    /// 60 s), with jitter.
    pub consumer_backoff_ms: u64,
    /// How often an idle consumer looks for newly published events, in milliseconds.
    pub consumer_interval_ms: u64,
    /// Events a consumer claims per round.
    pub consumer_batch: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            relay_interval_ms: 100,
            relay_batch: 256,
            hub_capacity: 1024,
            consumer_workers: 4,
            consumer_max_attempts: 5,
            consumer_backoff_ms: 200,
            consumer_interval_ms: 200,
            consumer_batch: 100,
        }
    }
}

/// NATS JetStream for domain events and live fan-out (`ORDERLY_NATS_URL`; empty: the
/// in-process bus).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: Secret,
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
