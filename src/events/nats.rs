//! NATS JetStream as the event bus (`nats.url`): where the relay publishes, and where each
//! replica's fan-out subscriber reads every published event back onto its local [`Hub`].
//!
//! - **Stream.** `nats.stream` (default `ORDERLY_EVENTS`) holds the subjects
//!   `<nats.subject_prefix>.>`; an event of type `order.paid` goes to
//!   `orderly.events.order.paid`. File storage, messages kept for `events.retention_secs`,
//!   and a duplicate window of [`DUPLICATE_WINDOW`]: the relay sends each event with
//!   `Nats-Msg-Id: <event id>`, so an event published twice (the relay's commit was lost
//!   after JetStream acknowledged it) is stored once ("Message Deduplication", NATS docs,
//!   JetStream model deep dive). The stream is created or updated when the connection is
//!   first up, so start-up does not wait for NATS. Only NATS 2.9 stream features are used.
//! - **Connection.** Established in the background (`retry_on_initial_connect`) and
//!   re-established by the client after any loss, so orderly starts and takes orders while
//!   NATS is down; the outbox rows wait meanwhile.
//! - **Fan-out** ([`fanout`]): one ordered, ephemeral consumer per replica that starts with
//!   the events stored since the replica started, so each stored event reaches every replica's hub once and
//!   a message JetStream dropped as a duplicate is never fanned out.

mod fanout;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::connection::State;
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, stream};

use crate::config::{EventsConfig, NatsConfig};
use crate::events::bus::Envelope;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate: longer than any
/// plausible gap between a relay's publish and its lost commit being retried.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(20 * 60);

/// How long start-up waits for the first connection before going on without it.
const INITIAL_CONNECT_WAIT: Duration = Duration::from_millis(500);

/// Why a relay round could not publish to NATS. The round is rolled back; its rows wait.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("NATS is not connected")]
    Disconnected,
    #[error("creating or updating the JetStream stream failed: {0}")]
    Stream(String),
    #[error("publishing to JetStream failed: {0}")]
    Publish(String),
}

/// A connection to NATS JetStream and the stream orderly publishes to. Cheap to clone.
#[derive(Clone)]
pub struct Nats {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    prefix: String,
    max_age: Duration,
    /// When this process connected: its fan-out starts with events stored from then on.
    started_at: async_nats::datetime::DateTime,
    /// Whether this process has created or updated the stream since it last failed to.
    stream_ready: AtomicBool,
}

impl Nats {
    /// Connects in the background (never fails because NATS is down). Errors: a malformed
    /// `nats.url`, `nats.stream` or `nats.subject_prefix`, each named in the message.
    pub async fn connect(config: &NatsConfig, events: &EventsConfig) -> anyhow::Result<Self> {
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        anyhow::ensure!(name_ok(&config.stream), "`nats.stream` must be letters, digits, `_` or `-`");
        let prefix_ok =
            !config.subject_prefix.is_empty() && config.subject_prefix.split('.').all(|t| !t.is_empty() && name_ok(t));
        anyhow::ensure!(prefix_ok, "`nats.subject_prefix` must be dot-separated tokens of letters, digits, `_` or `-`");
        let client = async_nats::ConnectOptions::new()
            .name("orderly")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            // Unlimited attempts (the default), at most 2 s apart, so an outage ends for
            // orderly within 2 s of NATS coming back.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(2000)))
            .connect(config.url.expose())
            .await
            .context("`nats.url` is not a valid NATS address")?;
        // A reachable server answers within milliseconds: wait that long, so the first relay
        // round does not report an outage that is only the connection being set up. An
        // unreachable one delays start-up by at most INITIAL_CONNECT_WAIT.
        let deadline = tokio::time::Instant::now() + INITIAL_CONNECT_WAIT;
        while client.connection_state() != State::Connected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(config.ack_timeout_ms.max(100)));
        let max_age = Duration::from_secs(events.retention_secs).max(DUPLICATE_WINDOW);
        let started_at = async_nats::datetime::parse_rfc3339(&crate::db::now())
            .map_err(|e| anyhow::anyhow!("formatting the start time: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                stream: config.stream.clone(),
                prefix: config.subject_prefix.clone(),
                max_age,
                started_at,
                stream_ready: AtomicBool::new(false),
            }),
        })
    }

    /// Whether the client is connected right now (for `/readyz` and to skip relay rounds
    /// that could only time out).
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == State::Connected
    }

    /// The stream's name (`nats.stream`).
    pub fn stream_name(&self) -> &str {
        &self.inner.stream
    }

    /// The subject of an event type: `<prefix>.<event type>`.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{}", self.inner.prefix, event_type)
    }

    /// Creates or updates the stream, once per process (again after a publish found it
    /// missing, e.g. when NATS came back without its storage).
    pub async fn ensure_stream(&self) -> Result<(), BusError> {
        if self.inner.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.is_connected() {
            return Err(BusError::Disconnected);
        }
        let config = stream::Config {
            name: self.inner.stream.clone(),
            subjects: vec![format!("{}.>", self.inner.prefix)],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: self.inner.max_age,
            ..Default::default()
        };
        self.inner.js.create_or_update_stream(config).await.map_err(|e| BusError::Stream(e.to_string()))?;
        self.inner.stream_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Publishes `batch` in order, each with `Nats-Msg-Id` = its event id, and waits for
    /// every acknowledgement (sent all at once, then awaited, so a round costs one round trip
    /// rather than one per event). Returns how many JetStream reported as duplicates.
    pub async fn publish(&self, batch: &[Envelope]) -> Result<usize, BusError> {
        if !self.is_connected() {
            return Err(BusError::Disconnected);
        }
        self.ensure_stream().await?;
        let mut acks = Vec::with_capacity(batch.len());
        for event in batch {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, event.id.to_string());
            let ack = self
                .inner
                .js
                .publish_with_headers(self.subject(&event.event_type), headers, event.to_json().into())
                .await
                .map_err(|e| self.publish_failed(e))?;
            acks.push(ack);
        }
        let mut duplicates = 0;
        for ack in acks {
            if ack.await.map_err(|e| self.publish_failed(e))?.duplicate {
                duplicates += 1;
            }
        }
        Ok(duplicates)
    }

    fn publish_failed(&self, e: jetstream::context::PublishError) -> BusError {
        if matches!(e.kind(), jetstream::context::PublishErrorKind::StreamNotFound) {
            // NATS lost the stream (a new server without its storage): create it again.
            self.inner.stream_ready.store(false, Ordering::Release);
        }
        BusError::Publish(e.to_string())
    }

    /// Puts every event stored in the stream from now on onto `hub`, until `stop` turns
    /// true; recovers by itself after NATS restarts. See [`fanout`].
    pub async fn run_fanout(self, hub: crate::events::bus::Hub, stop: tokio::sync::watch::Receiver<bool>) {
        fanout::run(self, hub, stop).await;
    }
}
