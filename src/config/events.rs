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
            consumer_workers: 4,
            consumer_max_attempts: 5,
            consumer_backoff_ms: 200,
            consumer_interval_ms: 200,
            consumer_batch: 100,
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

/// Webhook deliveries (`src/webhooks`): a delivery is retried after a failed attempt with
/// exponential backoff and jitter (attempt n waits a random time between half and all of
/// `min(backoff_base_secs * 2^(n-1), backoff_max_secs)`), and is `dead` after
/// `max_attempts`. The defaults retry for about two days (Stripe retries for up to three).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allows endpoint URLs on loopback, link-local and private addresses. For development
    /// only: in production it would let an admin point deliveries at internal services (SSRF).
    pub allow_private_targets: bool,
    /// How long one delivery attempt may take (connect, send, answer), in milliseconds.
    pub timeout_ms: u64,
    /// Attempts before a delivery is `dead` (1 or more).
    pub max_attempts: u32,
    /// The backoff after the first failed attempt, in seconds (fractions allowed).
    pub backoff_base_secs: f64,
    /// The longest backoff between two attempts, in seconds.
    pub backoff_max_secs: f64,
    /// Deliveries in flight at once on this replica (1 or more).
    pub workers: u32,
    /// How often the delivery worker and the `webhooks` consumer look for work, in
    /// milliseconds (new events wake the worker at once).
    pub poll_interval_ms: u64,
    /// How long finished deliveries (`succeeded`, `dead`) and their attempts stay in the
    /// delivery log, in seconds; then the events pruning pass deletes them.
    pub delivery_retention_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout_ms: 10_000,
            max_attempts: 20,
            backoff_base_secs: 30.0,
            backoff_max_secs: 6.0 * 3600.0,
            workers: 8,
            poll_interval_ms: 1000,
            delivery_retention_secs: 30 * 24 * 3600,
        }
    }
}

impl WebhooksConfig {
    /// Refuses settings the delivery worker cannot run with, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.timeout_ms == 0 {
            return Err("`webhooks.timeout_ms` must be positive".into());
        }
        if self.max_attempts == 0 {
            return Err("`webhooks.max_attempts` must be at least 1".into());
        }
        if self.workers == 0 {
            return Err("`webhooks.workers` must be at least 1".into());
        }
        if self.poll_interval_ms == 0 {
            return Err("`webhooks.poll_interval_ms` must be positive".into());
        }
        if !positive(self.backoff_base_secs) {
            return Err("`webhooks.backoff_base_secs` must be a positive number".into());
        }
        if !positive(self.backoff_max_secs) || self.backoff_max_secs < self.backoff_base_secs {
            return Err("`webhooks.backoff_max_secs` must be at least webhooks.backoff_base_secs".into());
        }
        Ok(())
    }
}
