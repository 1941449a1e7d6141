//! Background jobs: durable rows in `jobs` (migration 0015), claimed without a leader by
//! every replica (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a single-writer claim on SQLite),
//! run by a bounded worker pool under a lease renewed by a heartbeat, retried with backoff,
//! cancellable, visible at `GET /api/v1/jobs/{id}`.
//!
//! A kind of job is a [`JobHandler`]: imports, exports, … register theirs with the runner.
//! Handlers must be restartable: a job whose replica died is run again from its last
//! checkpoint ([`JobContext::checkpoint`]), so work done before it must not be repeated
//! or must be idempotent.

pub mod runner;
mod service;
pub mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use uuid::Uuid;

use crate::files::storage::Storage;

pub use self::service::Jobs;

/// One claimed job, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    /// The handler's [`JobHandler::kind`] (`import.products`, `export.orders`, …).
    pub kind: String,
    /// The kind's parameters, as given when the job was created (JSON).
    pub params: serde_json::Value,
    /// The user who started it (its owner: only they and staff may read it).
    pub created_by: Option<Uuid>,
    /// 1 on the first run; more after a retry or a takeover.
    pub attempt: i32,
    /// What the last run saved with [`JobContext::checkpoint`] (JSON), if anything.
    pub checkpoint: Option<serde_json::Value>,
}

/// What a finished job produced.
#[derive(Debug, Clone, Default)]
pub struct JobOutput {
    /// A JSON summary shown at `GET /api/v1/jobs/{id}` (`{"imported": 9994, "failed": 2}`).
    pub result: serde_json::Value,
    /// A storage key of a file the job wrote (an export, an error report), downloadable by
    /// the job's owner at `GET /api/v1/jobs/{id}/result`.
    pub file: Option<String>,
}

/// Why a run stopped before finishing.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A transient failure: the job is retried with backoff, from its last checkpoint.
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// The job cannot succeed (bad parameters, an unreadable file): it fails at once.
    #[error("{0}")]
    Permanent(String),
    /// The job was cancelled, or the replica is shutting down and hands it back.
    #[error("stopped")]
    Stopped,
}

pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<JobOutput, JobError>> + Send + 'a>>;
pub type ReportFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// A kind of background job.
pub trait JobHandler: Send + Sync + 'static {
    /// The kind's stable name, stored in `jobs.kind`.
    fn kind(&self) -> &'static str;

    /// Runs the job to its end. Long runs call [`JobContext::progress`] (which also
    /// returns [`JobError::Stopped`] once the job is cancelled or handed back) and
    /// [`JobContext::checkpoint`].
    fn run<'a>(&'a self, job: &'a Job, ctx: &'a JobContext) -> JobFuture<'a>;
}

/// Where a running job reports progress and saves checkpoints (the runner's store).
pub trait JobReporter: Send + Sync {
    /// Records `done` of `total` units (rows, bytes); `Err(Stopped)` once cancelled.
    fn progress(&self, job: Uuid, done: u64, total: Option<u64>) -> ReportFuture<'_>;
    /// Saves the point a restarted run resumes from, with the progress so far.
    fn checkpoint(&self, job: Uuid, checkpoint: serde_json::Value, done: u64) -> ReportFuture<'_>;
}

/// What a handler may use while it runs.
pub struct JobContext {
    job: Uuid,
    reporter: Arc<dyn JobReporter>,
    /// Where uploads are read from and results written to.
    pub storage: Storage,
}

impl JobContext {
    pub fn new(job: Uuid, reporter: Arc<dyn JobReporter>, storage: Storage) -> Self {
        Self { job, reporter, storage }
    }

    /// Reports progress; returns `Err(JobError::Stopped)` when the job should stop.
    pub async fn progress(&self, done: u64, total: Option<u64>) -> Result<(), JobError> {
        self.reporter.progress(self.job, done, total).await
    }

    /// Saves a resume point (e.g. `{"line": 5000}`) once the work before it is durable.
    pub async fn checkpoint(&self, checkpoint: serde_json::Value, done: u64) -> Result<(), JobError> {
        self.reporter.checkpoint(self.job, checkpoint, done).await
    }
}

/// A job's lifecycle: `queued → running → succeeded | failed | cancelled`; a retry, a
/// takeover or a shutdown puts a running job back to `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// Whether the job will never run again.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// A job as its owner and staff see it (`GET /api/v1/jobs/{id}`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `import.products`, `export.orders`, …
    pub kind: String,
    pub state: JobState,
    /// The parameters it was created with.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Units done (rows for imports).
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// Runs so far (first run, retries, takeovers).
    pub attempts: u64,
    pub max_attempts: u64,
    /// A queued job is not started before this time (retry backoff).
    pub run_after: chrono::DateTime<chrono::Utc>,
    /// A cancel was asked; a running job stops at its next progress report.
    pub cancel_requested: bool,
    /// The summary of a succeeded job (`{"created": 9994, "rejected": 2, …}`).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// A file is downloadable at `GET /api/v1/jobs/{id}/result`.
    pub has_result_file: bool,
    /// Why the last run failed (a retried or failed job).
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A job to create ([`Jobs::enqueue`]).
#[derive(Debug, Clone)]
pub struct NewJob {
    /// A registered handler's [`JobHandler::kind`].
    pub kind: String,
    pub params: serde_json::Value,
    pub created_by: Option<Uuid>,
    /// A client-supplied key: the same creator and key give the same job.
    pub idempotency_key: Option<String>,
}
