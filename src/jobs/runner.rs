//! One replica's worker pool: claims jobs (`store::claim`) while it has a free worker,
//! runs each under a lease renewed by a heartbeat, and records how the run ended.
//!
//! - **Lease.** A claim leases the job for `jobs.lease_secs`; the heartbeat (every
//!   `jobs.heartbeat_secs`) and the handler's progress reports renew it. A replica that dies
//!   stops renewing, and once the lease expires any replica claims the job again and the
//!   handler resumes from its last checkpoint. A runner that finds its lease gone (taken
//!   over) stops the handler at its next report and writes nothing more.
//! - **Retries.** `JobError::Retryable` queues the job again after `backoff_base_secs ×
//!   2^(attempt-1)` (capped at an hour) until `max_attempts` runs; then it fails.
//!   `Permanent` and panics fail at once. A takeover counts as an attempt too, so a job
//!   that kills its replica every time ends failed.
//! - **Cancel.** The handler's next progress report returns `Stopped`; the job ends
//!   `cancelled`.
//! - **Shutdown.** `stop` turns true: no new claim; running handlers stop at their next
//!   report and their jobs are handed back (queued, attempt not counted, checkpoint kept).
//!   Handlers that do not stop within `lease_secs` are aborted and handed back the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::store::{self, Lease, Outcome};
use super::{Job, JobContext, JobError, JobHandler, JobReporter, ReportFuture};
use crate::config::JobsConfig;
use crate::db::Db;
use crate::events::JobProgress;
use crate::files::storage::Storage;

/// Progress is written to the database at most this often per job (cancel checks too).
const PROGRESS_WRITE_EVERY: Duration = Duration::from_millis(200);
/// `job.progress` events at most this often per job.
const PROGRESS_EVENT_EVERY: Duration = Duration::from_secs(1);
/// Retry delays never exceed this.
const MAX_BACKOFF_SECS: u64 = 3600;

pub struct Runner {
    db: Db,
    storage: Storage,
    settings: JobsConfig,
    handlers: Vec<Arc<dyn JobHandler>>,
    /// This runner's lease owner name: unique per process start.
    owner: String,
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Runner {
    pub fn new(db: Db, storage: Storage, settings: JobsConfig, handlers: Vec<Arc<dyn JobHandler>>) -> Self {
        Self { db, storage, settings, handlers, owner: Uuid::new_v4().to_string() }
    }

    /// Claims and runs jobs until `stop`; then waits for running jobs to hand themselves
    /// back (at most `lease_secs`), aborts the rest and releases their leases.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let workers = this.settings.workers;
        if workers == 0 || this.handlers.is_empty() {
            stopped(&mut stop).await;
            return;
        }
        let kinds: Vec<&'static str> = this.handlers.iter().map(|h| h.kind()).collect();
        let permits = Arc::new(Semaphore::new(workers));
        let mut tasks = JoinSet::new();
        let poll = Duration::from_millis(this.settings.poll_interval_ms.max(10));
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = stopped(&mut stop) => break,
            };
            if *stop.borrow() {
                break;
            }
            match store::claim(&this.db, &this.owner, &kinds, this.settings.lease_secs).await {
                Ok(Some((job, max_attempts))) => {
                    let runner = this.clone();
                    let stop = stop.clone();
                    tasks.spawn(async move {
                        runner.run_one(job, max_attempts, stop).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "claiming a job failed; retrying"),
            }
            drop(permit);
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = stopped(&mut stop) => break,
            }
        }
        let grace = Duration::from_secs(this.settings.lease_secs);
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!("jobs still running at shutdown were aborted and handed back");
            tasks.shutdown().await;
        }
        match store::release_all(&this.db, &this.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "handed jobs back"),
            Err(e) => tracing::warn!(error = %e, "handing jobs back failed; their leases will expire"),
        }
    }

    #[tracing::instrument(skip_all, fields(job.id = %job.id, job.kind = %job.kind, job.attempt = job.attempt))]
    async fn run_one(&self, job: Job, max_attempts: u32, stop: watch::Receiver<bool>) {
        let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
        let outcome = if attempt > max_attempts {
            Some(Outcome::Failed(format!("gave up after {max_attempts} runs")))
        } else if let Some(handler) = self.handlers.iter().find(|h| h.kind() == job.kind) {
            self.run_handler(handler.as_ref(), &job, attempt, max_attempts, stop).await
        } else {
            Some(Outcome::Failed(format!("no handler for job kind {}", job.kind)))
        };
        let Some(outcome) = outcome else { return };
        match &outcome {
            Outcome::Failed(e) => tracing::warn!(error = %e, "job failed"),
            Outcome::Retry { error, retry_in_secs } => {
                tracing::warn!(error = %error, retry_in_secs, "job will be retried")
            }
            _ => {}
        }
        match store::finish(&self.db, job.id, &job.kind, &self.owner, outcome).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the job's lease was lost before its end was recorded"),
            Err(e) => tracing::warn!(error = %e, "recording the job's end failed; its lease will expire"),
        }
    }

    /// Runs the handler with a heartbeat; `None` when the lease was lost (nothing to write).
    async fn run_handler(
        &self,
        handler: &dyn JobHandler,
        job: &Job,
        attempt: u32,
        max_attempts: u32,
        stop: watch::Receiver<bool>,
    ) -> Option<Outcome> {
        let reporter = Arc::new(RunReporter {
            db: self.db.clone(),
            owner: self.owner.clone(),
            kind: job.kind.clone(),
            lease_secs: self.settings.lease_secs,
            shutdown: stop,
            cancelled: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            last_write: std::sync::Mutex::new(None),
            last_event: std::sync::Mutex::new(None),
        });
        let heartbeat = tokio::spawn(heartbeat(reporter.clone(), job.id, self.settings.heartbeat_secs));
        let _heartbeat = AbortOnDrop(heartbeat);
        let ctx = JobContext::new(job.id, reporter.clone(), self.storage.clone());
        let ran = std::panic::AssertUnwindSafe(handler.run(job, &ctx)).catch_unwind().await;
        if reporter.lost.load(Ordering::Relaxed) {
            return None;
        }
        Some(match ran {
            Ok(Ok(out)) => Outcome::Succeeded { result: out.result, file: out.file },
            Ok(Err(JobError::Permanent(e))) => Outcome::Failed(e),
            Ok(Err(JobError::Retryable(e))) if attempt >= max_attempts => Outcome::Failed(format!("{e:#}")),
            Ok(Err(JobError::Retryable(e))) => {
                let factor = 1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX);
                let delay = self.settings.backoff_base_secs.saturating_mul(factor).min(MAX_BACKOFF_SECS);
                Outcome::Retry { error: format!("{e:#}"), retry_in_secs: delay }
            }
            Ok(Err(JobError::Stopped)) if reporter.cancelled.load(Ordering::Relaxed) => Outcome::Cancelled,
            Ok(Err(JobError::Stopped)) => Outcome::HandedBack,
            Err(_) => Outcome::Failed("the job's handler panicked".into()),
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lease every `every_secs`; notes a cancel or a lost lease for the handler's
/// next report.
async fn heartbeat(reporter: Arc<RunReporter>, job: Uuid, every_secs: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_secs.max(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        match store::renew(&reporter.db, job, &reporter.owner, reporter.lease_secs, None, None).await {
            Ok(lease) => reporter.note(lease),
            Err(e) => tracing::warn!(error = %e, "job heartbeat failed"),
        }
    }
}

/// The [`JobReporter`] of one run: lease-guarded writes through the store.
struct RunReporter {
    db: Db,
    owner: String,
    kind: String,
    lease_secs: u64,
    shutdown: watch::Receiver<bool>,
    cancelled: AtomicBool,
    lost: AtomicBool,
    last_write: std::sync::Mutex<Option<Instant>>,
    last_event: std::sync::Mutex<Option<Instant>>,
}

impl RunReporter {
    fn note(&self, lease: Lease) {
        match lease {
            Lease::Held => {}
            Lease::CancelRequested => self.cancelled.store(true, Ordering::Relaxed),
            Lease::Lost => self.lost.store(true, Ordering::Relaxed),
        }
    }

    fn should_stop(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.lost.load(Ordering::Relaxed) || *self.shutdown.borrow()
    }

    /// Whether `every` has passed since `*last` (and if so, resets it to now).
    fn due(last: &std::sync::Mutex<Option<Instant>>, every: Duration) -> bool {
        let Ok(mut last) = last.lock() else { return true };
        let due = last.is_none_or(|t| t.elapsed() >= every);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    async fn report(&self, job: Uuid, done: u64, total: Option<u64>) -> Result<(), JobError> {
        if self.should_stop() {
            return Err(JobError::Stopped);
        }
        if Self::due(&self.last_write, PROGRESS_WRITE_EVERY) {
            let lease = store::renew(&self.db, job, &self.owner, self.lease_secs, Some((done, total)), None)
                .await
                .map_err(|e| JobError::Retryable(e.into()))?;
            self.note(lease);
            if self.should_stop() {
                return Err(JobError::Stopped);
            }
        }
        if Self::due(&self.last_event, PROGRESS_EVENT_EVERY) {
            let event = JobProgress { job_id: job, kind: self.kind.clone(), done, total };
            if let Err(e) = store::progress_event(&self.db, event).await {
                tracing::warn!(error = %e, "recording a job.progress event failed");
            }
        }
        Ok(())
    }

    async fn save(&self, job: Uuid, checkpoint: serde_json::Value, done: u64) -> Result<(), JobError> {
        let lease = store::renew(&self.db, job, &self.owner, self.lease_secs, Some((done, None)), Some(&checkpoint))
            .await
            .map_err(|e| JobError::Retryable(e.into()))?;
        self.note(lease);
        if self.should_stop() { Err(JobError::Stopped) } else { Ok(()) }
    }
}

impl JobReporter for RunReporter {
    fn progress(&self, job: Uuid, done: u64, total: Option<u64>) -> ReportFuture<'_> {
        Box::pin(self.report(job, done, total))
    }

    fn checkpoint(&self, job: Uuid, checkpoint: serde_json::Value, done: u64) -> ReportFuture<'_> {
        Box::pin(self.save(job, checkpoint, done))
    }
}
