//! Import jobs: the uploaded file is read from storage as it streams ([`super::stream`]),
//! parsed by the same generic-format parsers as `orderly import`, and loaded by the same
//! idempotent loader, one transaction per batch of `imports.batch_rows` rows together with
//! the batch's row problems (`job_errors`). After each batch the job checkpoints the last
//! line and its running totals, so a restarted run resumes after it; a batch re-run after
//! a crash before its checkpoint inserts nothing twice (natural keys, `ON CONFLICT`) and
//! records no problem twice.
//!
//! The Superstore format is a fixed dataset whose products and customers aggregate over the
//! whole file: it is read whole (the file is about 2 MB) and loaded in one transaction, as
//! by the CLI.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::generic;
use super::load;
use super::report::{LoadReport, RowError};
use super::stream::{Encoding, ReadError, StreamRead, read_batches};
use super::superstore;
use crate::cache::CatalogCache;
use crate::db::Db;
use crate::jobs::store::{RowProblem, record_problems};
use crate::jobs::{Job, JobContext, JobError, JobFuture, JobHandler, JobOutput};

/// An import job's parameters (`jobs.params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportParams {
    /// `products`, `customers`, `orders` or `stock`.
    pub entity: String,
    /// `generic` or `superstore`.
    pub format: String,
    pub encoding: Encoding,
    /// The upload's storage key.
    pub file: String,
    /// The upload's size in bytes and SHA-256 (hex).
    pub bytes: u64,
    pub sha256: String,
}

/// Counts of rows created and already present, per entity.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub categories: u64,
    pub products: u64,
    pub customers: u64,
    pub orders: u64,
    pub order_lines: u64,
    /// Stock counts: under `created` the levels a count changed, under `present` those
    /// already at the count.
    #[serde(default)]
    pub stock_levels: u64,
}

/// A job's running totals: its checkpoint while it runs, its result when it succeeds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// The last line loaded (a restarted run skips up to it).
    pub line: u64,
    /// Data rows read, good or bad.
    pub rows: u64,
    pub created: Counts,
    pub present: Counts,
    /// Rows (or whole orders) not imported; `GET /api/v1/jobs/{id}/errors` says why.
    pub rejected: u64,
}

impl Totals {
    fn add(&mut self, report: &LoadReport, rows: u64, rejected: u64) {
        let c = &mut self.created;
        c.categories += report.categories.created;
        c.products += report.products.created;
        c.customers += report.customers.created;
        c.orders += report.orders.created;
        c.order_lines += report.order_lines_created;
        c.stock_levels += report.stock_levels.created;
        let p = &mut self.present;
        p.categories += report.categories.present;
        p.products += report.products.present;
        p.customers += report.customers.present;
        p.orders += report.orders.present;
        p.stock_levels += report.stock_levels.present;
        self.rows += rows;
        self.rejected += rejected;
    }

    fn as_report(&self) -> LoadReport {
        let mut r = LoadReport::default();
        r.categories.created = self.created.categories;
        r.products.created = self.created.products;
        r.customers.created = self.created.customers;
        r.orders.created = self.created.orders;
        r.order_lines_created = self.created.order_lines;
        r.stock_levels.created = self.created.stock_levels;
        r
    }
}

/// The job kind of an import of `entity` in `format`.
pub fn kind(entity: &str, format: &str) -> Option<&'static str> {
    match (entity, format) {
        ("products", "generic") => Some("import.products"),
        ("customers", "generic") => Some("import.customers"),
        ("orders", "generic") => Some("import.orders"),
        ("stock", "generic") => Some("import.stock"),
        ("orders", "superstore") => Some("import.superstore"),
        _ => None,
    }
}

/// The handlers of every import kind.
pub fn handlers(db: &Db, cache: &CatalogCache, batch_rows: usize) -> Vec<Arc<dyn JobHandler>> {
    ["import.products", "import.customers", "import.orders", "import.stock", "import.superstore"]
        .into_iter()
        .map(|kind| {
            Arc::new(ImportJob { db: db.clone(), cache: cache.clone(), kind, batch_rows }) as Arc<dyn JobHandler>
        })
        .collect()
}

/// One import kind's handler.
pub struct ImportJob {
    db: Db,
    /// Products whose stock a batch counted are dropped from it after the batch commits.
    cache: CatalogCache,
    kind: &'static str,
    batch_rows: usize,
}

impl JobHandler for ImportJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, job: &'a Job, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let params: ImportParams = serde_json::from_value(job.params.clone())
                .map_err(|e| JobError::Permanent(format!("bad import parameters: {e}")))?;
            let totals = if params.format == "superstore" {
                self.superstore(job, ctx, &params).await?
            } else {
                self.generic(job, ctx, &params).await?
            };
            let result = serde_json::to_value(&totals).map_err(|e| JobError::Permanent(e.to_string()))?;
            Ok(JobOutput { result, file: None })
        })
    }
}

fn retry(e: impl Into<anyhow::Error>) -> JobError {
    JobError::Retryable(e.into())
}

/// A row error as the error report's rows: one per bad field, or one for the row.
fn problems(errors: &[RowError]) -> Vec<RowProblem> {
    let mut out = Vec::with_capacity(errors.len());
    for e in errors {
        let line = e.line.unwrap_or(0);
        if e.fields.is_empty() {
            out.push(RowProblem { line, field: String::new(), message: e.reason.clone() });
        }
        for (field, message) in &e.fields {
            out.push(RowProblem { line, field: field.clone(), message: message.clone() });
        }
    }
    out
}

impl ImportJob {
    /// Opens the upload as a blocking reader for `spawn_blocking`.
    async fn open(
        &self,
        ctx: &JobContext,
        params: &ImportParams,
    ) -> Result<impl std::io::Read + Send + use<>, JobError> {
        let got = ctx.storage.store().get(&ObjectPath::from(params.file.as_str())).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => JobError::Permanent("the uploaded file is gone".into()),
            other => retry(other),
        })?;
        Ok(StreamRead::new(tokio::runtime::Handle::current(), got.into_stream()))
    }

    async fn generic(&self, job: &Job, ctx: &JobContext, params: &ImportParams) -> Result<Totals, JobError> {
        let format = generic::format(&params.entity)
            .ok_or_else(|| JobError::Permanent(format!("no generic format for {}", params.entity)))?;
        let mut totals: Totals = match &job.checkpoint {
            Some(c) => serde_json::from_value(c.clone()).map_err(|e| JobError::Permanent(e.to_string()))?,
            None => Totals::default(),
        };
        let input = self.open(ctx, params).await?;
        let (tx, mut rx) = mpsc::channel(1);
        let (encoding, batch_rows, resume) = (params.encoding, self.batch_rows, totals.line);
        let reader = tokio::task::spawn_blocking(move || read_batches(input, encoding, format, batch_rows, resume, tx));
        while let Some(chunk) = rx.recv().await {
            let (batch, mut errors) = (format.parse)(&chunk.table);
            let mut db_tx = self.db.begin_write().await.map_err(retry)?;
            let report = load::load_in(&mut db_tx, &params.entity, batch, false).await.map_err(retry)?;
            errors.extend(report.rejected.iter().cloned());
            record_problems(&mut db_tx, job.id, &problems(&errors)).await.map_err(retry)?;
            db_tx.commit().await.map_err(retry)?;
            if !report.changed_products.is_empty() {
                self.cache.products_changed(&report.changed_products).await;
            }
            totals.add(&report, chunk.rows, errors.len() as u64);
            totals.line = chunk.last_line;
            let checkpoint = serde_json::to_value(&totals).map_err(|e| JobError::Permanent(e.to_string()))?;
            ctx.checkpoint(checkpoint, totals.rows).await?;
            ctx.progress(totals.rows, None).await?;
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(ReadError::Refused(why))) => return Err(JobError::Permanent(why)),
            Ok(Err(ReadError::Io(e))) => return Err(JobError::Retryable(e)),
            Err(e) => return Err(retry(e)),
        }
        self.summarize(&params.entity, &totals).await?;
        ctx.progress(totals.rows, Some(totals.rows)).await?;
        Ok(totals)
    }

    /// One `import.completed` event for the whole job, when it created anything.
    async fn summarize(&self, entity: &str, totals: &Totals) -> Result<(), JobError> {
        let report = totals.as_report();
        if report.created() == 0 {
            return Ok(());
        }
        let mut tx = self.db.begin_write().await.map_err(retry)?;
        load::record_summary(&mut tx, entity, &report).await.map_err(retry)?;
        tx.commit().await.map_err(retry)
    }

    async fn superstore(&self, job: &Job, ctx: &JobContext, params: &ImportParams) -> Result<Totals, JobError> {
        if params.encoding != Encoding::Csv {
            return Err(JobError::Permanent("the Superstore format is CSV".into()));
        }
        let input = self.open(ctx, params).await?;
        let read = tokio::task::spawn_blocking(move || superstore::read_from(input)).await.map_err(retry)?;
        let read = read.map_err(|e| JobError::Permanent(format!("{e:#}")))?;
        let (rows, errors) = (read.0, read.2.clone());
        if !errors.is_empty() {
            let mut tx = self.db.begin_write().await.map_err(retry)?;
            record_problems(&mut tx, job.id, &problems(&errors)).await.map_err(retry)?;
            tx.commit().await.map_err(retry)?;
            return Err(JobError::Permanent(format!(
                "not a valid Superstore file: {} invalid rows (see the error report); nothing was imported",
                errors.len()
            )));
        }
        let report = superstore::import_rows(&self.db, "upload", read).await.map_err(JobError::Retryable)?;
        let mut totals = Totals::default();
        totals.add(&report.loaded, rows, report.loaded.rejected.len() as u64);
        let mut tx = self.db.begin_write().await.map_err(retry)?;
        record_problems(&mut tx, job.id, &problems(&report.loaded.rejected)).await.map_err(retry)?;
        tx.commit().await.map_err(retry)?;
        ctx.progress(rows, Some(rows)).await?;
        Ok(totals)
    }
}
