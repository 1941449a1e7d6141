//! The replica's fan-out subscriber: every event stored in the JetStream stream, decoded
//! and put on this replica's [`Hub`] once, so a client on replica A sees what replica B's
//! relay published.
//!
//! It reads with an ordered consumer (ephemeral, no acks, flow-controlled by the client)
//! that starts with the events stored since this process started (not the history, and not
//! missing what the relay published before the subscription was up), and a message JetStream dropped as a duplicate has no sequence, so it is never
//! fanned out. The subscriber remembers the next stream sequence it expects; when NATS
//! restarts or the consumer is lost, it creates a new consumer from there (events stored
//! meanwhile are delivered late rather than lost) and skips anything it already delivered,
//! so the hub sees each stream message at most once per process.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{BusError, Nats};
use crate::events::bus::{Envelope, Hub};

/// The pause before subscribing again after a failure.
const RETRY: Duration = Duration::from_secs(1);

pub(super) async fn run(nats: Nats, hub: Hub, mut stop: watch::Receiver<bool>) {
    // The next stream sequence to deliver; `None` until the first subscription.
    let mut next: Option<u64> = None;
    let mut failing = false;
    while !*stop.borrow() {
        match subscribe(&nats, &mut next).await {
            Ok(messages) => {
                if failing {
                    tracing::info!(stream = nats.stream_name(), "event fan-out: subscribed again");
                    failing = false;
                }
                if deliver(messages, &hub, &mut next, &mut stop).await {
                    return;
                }
            }
            Err(e) => {
                // Once per outage, not once per attempt.
                if !failing {
                    tracing::warn!(error = %e, "event fan-out: cannot subscribe to NATS; retrying");
                    failing = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A new ordered consumer from `next`, or from the process's start time before anything
/// was delivered.
async fn subscribe(nats: &Nats, next: &mut Option<u64>) -> Result<pull::Ordered, BusError> {
    nats.ensure_stream().await?;
    let fail = |e: &dyn std::fmt::Display| BusError::Stream(e.to_string());
    let stream = nats.inner.js.get_stream(&nats.inner.stream).await.map_err(|e| fail(&e))?;
    let deliver_policy = match *next {
        None => DeliverPolicy::ByStartTime { start_time: nats.inner.started_at },
        Some(n) => {
            let last = stream.get_info().await.map_err(|e| fail(&e))?.state.last_sequence;
            // A stream that is behind what we delivered was recreated: start at its end.
            let start = if n <= last + 1 { n } else { last + 1 };
            *next = Some(start);
            DeliverPolicy::ByStartSequence { start_sequence: start }
        }
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.>", nats.inner.prefix),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| fail(&e))?;
    consumer.messages().await.map_err(|e| fail(&e))
}

/// Delivers until the consumer fails (returns false: subscribe again) or `stop` turns
/// true (returns true).
async fn deliver(
    mut messages: pull::Ordered,
    hub: &Hub,
    next: &mut Option<u64>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let item = tokio::select! {
            item = messages.next() => item,
            _ = stop.changed() => return true,
        };
        let message = match item {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "event fan-out: consumer failed; subscribing again");
                return false;
            }
            None => return false,
        };
        let Ok(sequence) = message.info().map(|i| i.stream_sequence) else {
            continue;
        };
        // The ordered consumer recreates itself after a gap and may then start over: skip
        // what this replica already delivered.
        if next.is_some_and(|n| sequence < n) {
            continue;
        }
        *next = Some(sequence + 1);
        match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(event) => hub.publish(Arc::new(event)),
            Err(e) => {
                tracing::warn!(error = %e, subject = %message.subject, "event fan-out: skipped a message that is not an envelope")
            }
        }
    }
}
