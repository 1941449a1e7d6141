//! The delivery worker, on every replica: claims due deliveries, POSTs them signed, records
//! each attempt, and schedules the next one or gives up.
//!
//! A round claims up to the free slots (`webhooks.workers` in flight at once) in one
//! statement: due rows (`pending`, or `failed` whose `next_attempt_at` has come) of enabled
//! endpoints whose lease is free or expired get this worker's id and a lease
//! (`2 × webhooks.timeout_ms + 5 s`). On PostgreSQL the candidates are locked with
//! `FOR UPDATE SKIP LOCKED`, so replicas claim disjoint rows without waiting for each
//! other; on SQLite the claim runs under the process's single writer. A replica that dies
//! mid-delivery leaves a lease that expires, and the row is claimed again (at least once:
//! receivers deduplicate on `Orderly-Event-Id`). On shutdown the worker lets attempts in
//! flight finish for a short grace, then stops them and hands its leases back.
//!
//! An attempt is a success on any 2xx answer. Otherwise attempt n (of the current budget)
//! schedules the next after `min(backoff_base_secs × 2^(n-1), backoff_max_secs)` scaled by a
//! random factor in [0.5, 1] (jitter, so endpoints that fail together do not retry together),
//! and the delivery is `dead` after `webhooks.max_attempts`. Redirects are not followed (a
//! 3xx is a failure) and connections only go to addresses the SSRF guard allowed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::signing::{self, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER};
use super::{Webhooks, ssrf};
use crate::db::{self, Backend};

/// The longest error text kept per attempt, in bytes.
const MAX_ERROR_LEN: usize = 500;
/// How long in-flight attempts may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A claimed delivery.
struct Claimed {
    id: String,
    endpoint_id: String,
    event_id: String,
    event_type: String,
    payload: String,
    attempts: i64,
}

/// The worker's state, shared by its in-flight attempts.
struct Worker {
    webhooks: Webhooks,
    client: reqwest::Client,
    /// This worker's lease owner id (one per process start).
    owner: String,
}

/// Runs the worker until `stop` turns true; see the module docs.
pub async fn run(webhooks: Webhooks, mut stop: watch::Receiver<bool>) {
    let worker = match Worker::new(webhooks) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery worker cannot start: no HTTP client");
            return;
        }
    };
    let slots = worker.webhooks.config.workers.max(1) as usize;
    let poll = Duration::from_millis(worker.webhooks.config.poll_interval_ms.max(1));
    let mut inflight: JoinSet<()> = JoinSet::new();
    loop {
        while inflight.try_join_next().is_some() {}
        let free = slots.saturating_sub(inflight.len());
        if free > 0 {
            match worker.claim(free).await {
                Ok(batch) => {
                    for claimed in batch {
                        let w = worker.clone();
                        inflight.spawn(async move { w.attempt(claimed).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook deliveries: claiming failed; retrying"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = worker.webhooks.wake.notified() => {}
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while inflight.join_next().await.is_some() {} }).await;
    inflight.shutdown().await;
    if let Err(e) = worker.release().await {
        tracing::warn!(error = %e, "webhook deliveries: handing back leases failed; they expire by themselves");
    }
}

impl Worker {
    fn new(webhooks: Webhooks) -> reqwest::Result<Self> {
        let resolver = Arc::new(ssrf::PublicResolver { allow_private: webhooks.config.allow_private_targets });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(webhooks.config.timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect for us, past the SSRF guard.
            .no_proxy()
            .dns_resolver(resolver)
            .user_agent(concat!("orderly-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { webhooks, client, owner: db::new_id().to_string() })
    }

    /// Leases up to `limit` due deliveries to this worker.
    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
        let db = &self.webhooks.db;
        let now = Utc::now();
        let lease_ms = 2 * self.webhooks.config.timeout_ms + 5000;
        let lease_until = now + chrono::Duration::milliseconds(i64::try_from(lease_ms).unwrap_or(i64::MAX / 2));
        let lock = match db.backend() {
            Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN (\
               SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
               WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= $3 \
                 AND (d.lease_until IS NULL OR d.lease_until < $3) AND e.enabled = 1 \
               ORDER BY d.next_attempt_at LIMIT $4{lock}) \
             RETURNING id, endpoint_id, event_id, event_type, payload, attempts"
        );
        let mut tx = db.begin_write().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.owner.as_str())
            .bind(db::ts(lease_until))
            .bind(db::ts(now))
            .bind(i64::try_from(limit).unwrap_or(1))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(Claimed {
                    id: r.try_get("id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// One attempt: send, then record the outcome. Failures to record are logged; the
    /// lease then expires and the delivery is tried again.
    async fn attempt(&self, d: Claimed) {
        let started = Instant::now();
        let outcome = self.send(&d).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (code, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("the endpoint answered HTTP {code}"))),
            Err(e) => (None, Some(e)),
        };
        if let Err(e) = self.record(&d, code, error.as_deref(), duration_ms).await {
            tracing::warn!(delivery.id = %d.id, error = %e, "webhook delivery: recording the attempt failed");
        }
    }

    /// POSTs the delivery; the HTTP status, or why none came back.
    async fn send(&self, d: &Claimed) -> Result<u16, String> {
        let row = sqlx::query("SELECT url, secret FROM webhook_endpoints WHERE id = $1")
            .bind(d.endpoint_id.as_str())
            .fetch_optional(self.webhooks.db.pool())
            .await
            .map_err(|_| "the endpoint could not be read".to_string())?
            .ok_or_else(|| "the endpoint no longer exists".to_string())?;
        let url: String = row.try_get("url").map_err(|e| e.to_string())?;
        let secret: String = row.try_get("secret").map_err(|e| e.to_string())?;
        // IP literals never reach the resolver: the guard checks them here.
        let url = ssrf::check_url(&url, self.webhooks.config.allow_private_targets)
            .map_err(|e| format!("the URL was refused by the SSRF guard: it {e}"))?;
        let t = Utc::now().timestamp();
        let res = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signing::signature_header(&secret, t, &d.payload))
            .header(EVENT_ID_HEADER, d.event_id.as_str())
            .header(EVENT_TYPE_HEADER, d.event_type.as_str())
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| self.describe(&e))?;
        Ok(res.status().as_u16())
    }

    /// A short, URL-free account of a failed request.
    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("no answer within {} ms", self.webhooks.config.timeout_ms);
        }
        let mut text = if e.is_connect() { "could not connect".to_string() } else { "the request failed".to_string() };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        truncate(text)
    }

    /// Writes the attempt and the delivery's next state in one transaction.
    async fn record(
        &self,
        d: &Claimed,
        code: Option<u16>,
        error: Option<&str>,
        duration_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let config = &self.webhooks.config;
        let attempts = d.attempts + 1;
        let now = Utc::now();
        let (status, next) = if error.is_none() {
            ("succeeded", None)
        } else if attempts >= i64::from(config.max_attempts) {
            ("dead", None)
        } else {
            let delay = backoff(config.backoff_base_secs, config.backoff_max_secs, attempts, fastrand::f64());
            ("failed", Some(db::ts(now + delay)))
        };
        let now = db::ts(now);
        let delivered = (status == "succeeded").then(|| now.clone());
        let code = code.map(i64::from);
        let mut tx = self.webhooks.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, error, duration_ms, attempted_at) \
             VALUES ($1, $2, (SELECT COUNT(*) + 1 FROM webhook_attempts WHERE delivery_id = $2), $3, $4, $5, $6)",
        )
        .bind(db::new_id().to_string())
        .bind(d.id.as_str())
        .bind(code)
        .bind(error)
        .bind(duration_ms)
        .bind(now.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_status_code = $4, \
             last_error = $5, updated_at = $6, delivered_at = $7, lease_owner = NULL, lease_until = NULL \
             WHERE id = $8 AND lease_owner = $9",
        )
        .bind(status)
        .bind(attempts)
        .bind(next)
        .bind(code)
        .bind(error)
        .bind(now.as_str())
        .bind(delivered)
        .bind(d.id.as_str())
        .bind(self.owner.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match status {
            "dead" => tracing::warn!(delivery.id = %d.id, event.id = %d.event_id, attempts, "webhook delivery is dead"),
            _ => tracing::debug!(delivery.id = %d.id, status, "webhook delivery attempted"),
        }
        Ok(())
    }

    /// Hands this worker's leases back, so another replica (or the next start) takes the
    /// deliveries at once instead of after the lease.
    async fn release(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.webhooks.db.begin_write().await?;
        sqlx::query("UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(self.owner.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// The wait after failed attempt `attempt` (1-based): `min(base × 2^(attempt-1), max)`
/// seconds scaled by `0.5 + 0.5 × jitter` (`jitter` in [0, 1)).
fn backoff(base_secs: f64, max_secs: f64, attempt: i64, jitter: f64) -> chrono::Duration {
    let exp = i32::try_from(attempt.saturating_sub(1).clamp(0, 62)).unwrap_or(62);
    let secs = (base_secs * 2f64.powi(exp)).min(max_secs) * (0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    chrono::Duration::milliseconds((secs * 1000.0).round() as i64)
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_jitter_between_half_and_all() {
        let secs = |attempt, jitter| backoff(30.0, 21_600.0, attempt, jitter).num_milliseconds() as f64 / 1000.0;
        assert_eq!(secs(1, 1.0), 30.0);
        assert_eq!(secs(2, 1.0), 60.0);
        assert_eq!(secs(5, 1.0), 480.0);
        assert_eq!(secs(1, 0.0), 15.0);
        assert_eq!(secs(20, 1.0), 21_600.0, "capped");
        assert_eq!(secs(1000, 0.0), 10_800.0, "no overflow on absurd attempt counts");
    }

    #[test]
    fn the_default_schedule_retries_for_between_one_and_three_days() {
        let c = crate::config::WebhooksConfig::default();
        let total = |jitter| -> f64 {
            (1..i64::from(c.max_attempts))
                .map(|n| backoff(c.backoff_base_secs, c.backoff_max_secs, n, jitter).num_seconds() as f64)
                .sum()
        };
        let day = 86_400.0;
        assert!(total(0.0) > day && total(1.0) < 3.0 * day, "{} .. {}", total(0.0), total(1.0));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let s = truncate("é".repeat(400));
        assert!(s.len() <= MAX_ERROR_LEN && s.chars().all(|c| c == 'é'));
    }
}
