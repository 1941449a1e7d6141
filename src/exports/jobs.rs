//! Exports as background jobs whose result is a file: kinds `export.orders`,
//! `export.products` and `export.customers`. Parameters are the query of the REST export
//! (`{"format": "csv", "from": …, "to": …, "status": …}`, all optional). The file is
//! streamed to storage at `exports/<job id>.<csv|ndjson>` through `Storage::put_stream`,
//! with the same constant memory as the REST export. A rerun (retry, takeover) writes the
//! whole file again: the export has no partial state worth resuming.
//!
//! Who may: the job's owner must still be staff when it runs (checked against `users`), as
//! [`super::authorize`] requires of a REST export; the jobs REST checks the scope when the
//! job is created.

use std::sync::Arc;

use futures_util::StreamExt;
use uuid::Uuid;

use super::{ExportQuery, Kind};
use crate::auth::Principal;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::jobs::{Job, JobContext, JobError, JobFuture, JobHandler, JobOutput, JobView, Jobs, NewJob};
use crate::ratelimit::Class;

/// The handlers of the three export kinds, for the job runner to register.
pub fn handlers(db: Db) -> Vec<Arc<dyn JobHandler>> {
    [Kind::Orders, Kind::Products, Kind::Customers]
        .into_iter()
        .map(|kind| Arc::new(ExportHandler { db: db.clone(), kind }) as Arc<dyn JobHandler>)
        .collect()
}

/// The job kind of an export of `kind`: `export.orders`, `export.products`, `export.customers`.
pub fn job_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Orders => "export.orders",
        Kind::Products => "export.products",
        Kind::Customers => "export.customers",
    }
}

/// Starts an export of `kind` as a background job for `principal` (staff with the kind's
/// scope, as the REST export requires). The query is validated now (422, no job is made)
/// and kept as the job's parameters. Returns the queued job; its file is downloadable at
/// `GET /api/v1/jobs/{id}/result` once it has succeeded. Errors: 401, 403, 422, 429.
pub async fn enqueue(jobs: &Jobs, principal: &Principal, kind: Kind, query: &ExportQuery) -> Result<JobView> {
    principal.admit(Class::Api).await?;
    super::authorize(principal, kind)?;
    query.parse(kind)?;
    let params = serde_json::to_value(query).map_err(|e| Error::Internal(e.into()))?;
    let created_by = principal.actor.as_ref().map(|a| a.id);
    let new = NewJob { kind: job_kind(kind).to_owned(), params, created_by, idempotency_key: None };
    Ok(jobs.enqueue(new).await?.0)
}

/// Writes one export to storage.
pub struct ExportHandler {
    db: Db,
    kind: Kind,
}

impl ExportHandler {
    pub fn new(db: Db, kind: Kind) -> Self {
        Self { db, kind }
    }

    async fn owner_is_staff(&self, owner: Option<Uuid>) -> Result<bool, JobError> {
        let Some(owner) = owner else { return Ok(false) };
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(owner.to_string())
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| JobError::Retryable(e.into()))?;
        Ok(matches!(role.as_deref(), Some("staff" | "admin")))
    }

    async fn export(&self, job: &Job, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let query: ExportQuery = if job.params.is_null() {
            ExportQuery::default()
        } else {
            serde_json::from_value(job.params.clone())
                .map_err(|e| JobError::Permanent(format!("bad parameters: {e}")))?
        };
        let export = query.parse(self.kind).map_err(|e| JobError::Permanent(e.to_string()))?;
        if !self.owner_is_staff(job.created_by).await? {
            return Err(JobError::Permanent("only staff may export".to_owned()));
        }
        let key = format!("exports/{}.{}", job.id, export.format.extension());
        let stream = super::start(self.db.clone(), export);
        let stored = ctx.storage.put_stream(&key, stream.body.map(|c| c.map_err(|e| e.to_string())), u64::MAX).await;
        let stored = stored.map_err(|e| JobError::Retryable(anyhow::anyhow!("export to storage failed: {e}")))?;
        ctx.progress(stored.size, Some(stored.size)).await?;
        Ok(JobOutput {
            result: serde_json::to_value(ExportResult {
                kind: self.kind.as_str(),
                bytes: stored.size,
                sha256: stored.sha256,
            })
            .map_err(|e| JobError::Permanent(e.to_string()))?,
            file: Some(key),
        })
    }
}

/// The job's result summary: `{"kind": "orders", "bytes": 1234, "sha256": "…"}`.
#[derive(serde::Serialize)]
struct ExportResult {
    kind: &'static str,
    bytes: u64,
    sha256: String,
}

impl JobHandler for ExportHandler {
    fn kind(&self) -> &'static str {
        job_kind(self.kind)
    }

    fn run<'a>(&'a self, job: &'a Job, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(self.export(job, ctx))
    }
}
