//! One consumer's rounds over the published outbox: claim, handle (per aggregate in order,
//! bounded pool, retries, dead letters), advance. See the parent module for the contract.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;

use super::{Handler, HandlerError, store};
use crate::config::EventsConfig;
use crate::db::Db;
use crate::events::bus::Envelope;

/// The longest wait between two attempts at one event.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How consumers run (`events.consumer_*`). The worker pool is shared by every consumer
/// built from the same settings.
pub struct Settings {
    /// Permits for handler calls in flight (`events.consumer_workers`).
    pub workers: Arc<Semaphore>,
    /// Attempts before a retryable failure is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// The delay before the first retry; doubled per retry, capped at 60 s, jittered.
    pub backoff: Duration,
    /// The pause of an idle consumer between rounds.
    pub interval: Duration,
    /// Events claimed per round.
    pub batch: i64,
}

impl Settings {
    pub fn from_config(config: &EventsConfig) -> Self {
        Self {
            workers: Arc::new(Semaphore::new(config.consumer_workers.max(1))),
            max_attempts: config.consumer_max_attempts.max(1),
            backoff: Duration::from_millis(config.consumer_backoff_ms),
            interval: Duration::from_millis(config.consumer_interval_ms.max(1)),
            batch: i64::from(config.consumer_batch.max(1)),
        }
    }
}

/// Runs one consumer until stopped.
pub struct Runner {
    db: Db,
    handler: Arc<dyn Handler>,
    settings: Arc<Settings>,
}

impl Runner {
    pub fn new(db: Db, handler: Arc<dyn Handler>, settings: Arc<Settings>) -> Self {
        Self { db, handler, settings }
    }

    /// Rounds until `stop` turns true: at once after a full batch, else every
    /// `settings.interval`. Returns after the round in flight finished or handed back.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let name = self.handler.name();
        tracing::debug!(consumer = name, "consumer started");
        loop {
            if *stop.borrow() {
                break;
            }
            match round(&self.db, self.handler.as_ref(), &self.settings, &stop).await {
                Ok(n) if n as i64 >= self.settings.batch => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(consumer = name, error = %e, "consumer round failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                () = stopped(&mut stop) => break,
            }
        }
        tracing::debug!(consumer = name, "consumer stopped");
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One round of `handler`; returns how many events the offset moved past (0 when another
/// replica holds the claim or nothing was published).
pub async fn round(
    db: &Db,
    handler: &dyn Handler,
    settings: &Settings,
    stop: &watch::Receiver<bool>,
) -> Result<usize, sqlx::Error> {
    let name = handler.name();
    let Some(mut claim) = store::claim(db, name).await? else { return Ok(0) };
    let from = claim.last_seq;
    match handle_batch(db, handler, settings, stop, &mut claim).await {
        Ok((to, moved)) => {
            store::advance(db, name, claim, to).await?;
            Ok(moved)
        }
        Err(e) => {
            store::advance(db, name, claim, from).await?;
            Err(e)
        }
    }
}

/// Handles the batch after the claimed offset; returns the new offset and how many events
/// it passes.
async fn handle_batch(
    db: &Db,
    handler: &dyn Handler,
    settings: &Settings,
    stop: &watch::Receiver<bool>,
    claim: &mut store::Claim,
) -> Result<(i64, usize), sqlx::Error> {
    let after = claim.last_seq;
    let events = store::events_after(db, claim, settings.batch).await?;
    if events.is_empty() {
        return Ok((after, 0));
    }
    let wanted: Vec<&Envelope> = events.iter().filter(|e| handler.wants(&e.event_type)).collect();
    let ids: Vec<Uuid> = wanted.iter().map(|e| e.id).collect();
    let seen = store::processed(db, claim, handler.name(), &ids).await?;

    // One group per aggregate, each in publish order; groups run concurrently.
    let mut groups: Vec<Vec<&Envelope>> = Vec::new();
    let mut group_of: HashMap<Uuid, usize> = HashMap::new();
    for e in wanted.into_iter().filter(|e| !seen.contains(&e.id)) {
        let i = *group_of.entry(e.aggregate_id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(e);
    }
    let finished: HashSet<i64> = join_all(groups.into_iter().map(|g| handle_group(db, handler, settings, stop, g)))
        .await
        .into_iter()
        .flatten()
        .collect();

    // The offset passes the longest finished prefix; skipped events count as finished.
    let mut to = after;
    let mut moved = 0;
    for e in &events {
        let done = !handler.wants(&e.event_type) || seen.contains(&e.id) || finished.contains(&e.seq);
        if !done {
            break;
        }
        to = e.seq;
        moved += 1;
    }
    Ok((to, moved))
}

/// Handles one aggregate's events in order; returns the seqs it finished. Stops at the
/// first event handed back (shutdown), so an aggregate's order survives the hand-back.
async fn handle_group(
    db: &Db,
    handler: &dyn Handler,
    settings: &Settings,
    stop: &watch::Receiver<bool>,
    events: Vec<&Envelope>,
) -> Vec<i64> {
    let mut done = Vec::with_capacity(events.len());
    for e in events {
        // Read the flag on its own: a watch `Ref` held across the await would block the
        // sender of the stop signal.
        let stopping = *stop.borrow();
        if stopping || !handle_one(db, handler, settings, stop, e).await {
            break;
        }
        done.push(e.seq);
    }
    done
}

/// Handles one event with retries; true when it is finished (handled and recorded, or
/// dead-lettered), false when handed back (shutdown during a retry wait, or the outcome
/// could not be recorded).
async fn handle_one(
    db: &Db,
    handler: &dyn Handler,
    settings: &Settings,
    stop: &watch::Receiver<bool>,
    event: &Envelope,
) -> bool {
    let name = handler.name();
    let mut stop = stop.clone();
    let mut attempt = 0u32;
    let failure = loop {
        attempt += 1;
        let result = {
            let Ok(_permit) = settings.workers.acquire().await else { return false };
            call(handler, event).await
        };
        match result {
            Ok(()) => return recorded(store::mark_processed(db, name, event.id).await, name, event),
            Err(HandlerError::Retryable(e)) if attempt < settings.max_attempts => {
                tracing::debug!(consumer = name, event.id = %event.id, attempt, error = %e, "handler failed; will retry");
                tokio::select! {
                    () = tokio::time::sleep(backoff(settings.backoff, attempt)) => {}
                    () = stopped(&mut stop) => return false,
                }
            }
            Err(e) => break e.to_string(),
        }
    };
    tracing::warn!(consumer = name, event.id = %event.id, "event.type" = %event.event_type, attempts = attempt,
        error = %failure, "event dead-lettered");
    recorded(store::dead_letter(db, name, event, &failure, attempt).await, name, event)
}

/// Runs the handler once; a panic is a permanent failure (it would panic again).
pub(crate) async fn call(handler: &dyn Handler, event: &Envelope) -> Result<(), HandlerError> {
    match AssertUnwindSafe(handler.handle(event)).catch_unwind().await {
        Ok(r) => r,
        Err(_) => Err(HandlerError::Permanent("the handler panicked".into())),
    }
}

fn recorded(r: Result<(), sqlx::Error>, consumer: &str, event: &Envelope) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(consumer, event.id = %event.id, error = %e, "could not record an event's outcome; it will be redelivered");
            false
        }
    }
}

/// The wait after failed attempt `attempt` (1-based): `base · 2^(attempt−1)`, capped at
/// [`MAX_BACKOFF`], of which a random half is waived ("equal jitter"), so consumers that
/// failed together do not retry together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(MAX_BACKOFF);
    let half = full / 2;
    let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let random = Uuid::new_v4().as_u128() as u64;
    half + Duration::from_nanos(random % span.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_within_its_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4 {
            let full = base * (1 << (attempt - 1));
            for _ in 0..50 {
                let d = backoff(base, attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} outside {:?}..={full:?}", full / 2);
            }
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
        assert!(backoff(base, 40) >= MAX_BACKOFF / 2);
    }
}
