//! The jobs service: the registry of handlers (like `events::consumers::Consumers`), job
//! creation for other services, and the operations of `/api/v1/jobs` with their rules:
//! a job is visible to its creator and to staff; to anyone else it does not exist (404).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::runner::Runner;
use super::store::{self, RowProblem};
use super::{JobHandler, JobView, NewJob};
use crate::auth::Principal;
use crate::config::JobsConfig;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::files::storage::Storage;
use crate::pagination::{Page, PageParams, PageRequest};

/// The job kinds this process runs and how (`jobs.*`). Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    db: Db,
    storage: Storage,
    settings: JobsConfig,
    handlers: Vec<Arc<dyn JobHandler>>,
}

impl Jobs {
    /// No handlers yet.
    pub fn new(db: Db, storage: Storage, settings: &JobsConfig) -> Self {
        Self { db, storage, settings: settings.clone(), handlers: Vec::new() }
    }

    /// Adds `handler`; one of the same kind is replaced (tests swap a built-in this way).
    pub fn register(&mut self, handler: Arc<dyn JobHandler>) {
        self.handlers.retain(|h| h.kind() != handler.kind());
        self.handlers.push(handler);
    }

    /// The same, by value.
    pub fn with(mut self, handler: Arc<dyn JobHandler>) -> Self {
        self.register(handler);
        self
    }

    /// The kinds this process runs.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.kind()).collect()
    }

    pub fn settings(&self) -> &JobsConfig {
        &self.settings
    }

    /// Starts this replica's runner (`jobs.workers` at once; none when 0). It returns once
    /// `stop` turns true and its running jobs stopped and were handed back.
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let runner = Runner::new(self.db.clone(), self.storage.clone(), self.settings.clone(), self.handlers.clone());
        tokio::spawn(runner.run(stop))
    }

    /// Creates a queued job (callers have authorized it). With an idempotency key the
    /// creator used before, returns that job and `false` instead.
    pub async fn enqueue(&self, new: NewJob) -> Result<(JobView, bool)> {
        if !self.handlers.iter().any(|h| h.kind() == new.kind) {
            return Err(Error::Internal(anyhow::anyhow!("no job handler for kind {}", new.kind)));
        }
        Ok(store::create(&self.db, &new, self.settings.max_attempts).await?)
    }

    /// The job a creator made with `key`, if any.
    pub async fn by_key(&self, created_by: Uuid, key: &str) -> Result<Option<JobView>> {
        Ok(store::by_key(&self.db, &created_by.to_string(), key).await?)
    }

    /// A job, for its creator or staff. Errors: 401; 404 `job` (also when it is someone
    /// else's: its existence is not revealed).
    pub async fn get(&self, principal: &Principal, id: Uuid) -> Result<JobView> {
        let actor = principal.authenticated()?;
        match store::get(&self.db, id).await? {
            Some(job) if actor.is_staff() || job.created_by == Some(actor.id) => Ok(job),
            _ => Err(Error::NotFound("job")),
        }
    }

    /// The caller's jobs (staff: everyone's), newest first. Errors: 401; 422 bad page.
    pub async fn list(&self, principal: &Principal, q: &PageParams) -> Result<Page<JobView>> {
        let actor = principal.authenticated()?;
        let page = PageRequest::parse(q.limit, q.cursor.as_deref(), "created").map_err(Error::Validation)?;
        let owner = if actor.is_staff() { None } else { Some(actor.id) };
        let rows = store::list(&self.db, owner, &page).await?;
        Ok(page.finish(rows, |j| crate::pagination::Cursor::text(crate::db::ts(j.created_at), j.id.to_string())))
    }

    /// Cancels a job: a queued one never runs, a running one stops at its next progress
    /// report. Errors: as [`get`](Self::get); 409 `job-finished` when it already ended.
    pub async fn cancel(&self, principal: &Principal, id: Uuid) -> Result<JobView> {
        let job = self.get(principal, id).await?;
        if job.state.is_final() {
            return Err(Error::Conflict {
                code: "job-finished",
                detail: format!("the job is {} and can no longer be cancelled", job.state.as_str()),
            });
        }
        store::cancel(&self.db, id).await?;
        store::get(&self.db, id).await?.ok_or(Error::NotFound("job"))
    }

    /// The storage key of a job's result file. Errors: as [`get`](Self::get); 404 `result
    /// file` when the job wrote none (yet).
    pub async fn result_file(&self, principal: &Principal, id: Uuid) -> Result<String> {
        self.get(principal, id).await?;
        store::result_key(&self.db, id).await?.ok_or(Error::NotFound("result file"))
    }

    /// Checks that the caller may read `id`'s row problems ([`problems`](Self::problems)).
    pub async fn authorize_errors(&self, principal: &Principal, id: Uuid) -> Result<JobView> {
        self.get(principal, id).await
    }

    /// Up to `limit` row problems of `id` after the `(line, seq)` position `after` (start
    /// with `(0, 0)`), in file order, with the position of each. Authorize first.
    pub async fn problems(&self, id: Uuid, after: (i64, i64), limit: i64) -> Result<Vec<(i64, i64, RowProblem)>> {
        Ok(store::problems_after(&self.db, id, after, limit).await?)
    }
}
