//! ALL job SQL: creating, claiming (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single
//! writer on SQLite), lease renewal, progress, checkpoints, the end states, cancellation,
//! reads, and the per-row error list. Every write by a runner is guarded by its lease
//! (`lease_owner = $owner AND state = 'running'`), so a replica that lost its lease can
//! change nothing.

use chrono::{Duration, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Job, JobState, JobView, NewJob};
use crate::db::{self, Arg, Backend, Db, SqlBuilder};
use crate::events::{self, Event, JobFinished, JobProgress};

const COLUMNS: &str = "id, kind, state, params, progress_done, progress_total, attempts, max_attempts, \
     run_after, cancel_requested, result, result_key, error, created_by, created_at, updated_at, started_at, \
     finished_at";

fn ts_in(secs: u64) -> String {
    db::ts(Utc::now() + Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2).min(86_400 * 365)))
}

fn json_col(row: &AnyRow, col: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
    let raw: Option<String> = row.try_get(col)?;
    raw.map(|s| serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(e.into()))).transpose()
}

fn u64_col(row: &AnyRow, col: &str) -> Result<u64, sqlx::Error> {
    Ok(u64::try_from(row.try_get::<i64, _>(col)?).unwrap_or(0))
}

pub(super) fn view(row: &AnyRow) -> Result<JobView, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let created_by: Option<String> = row.try_get("created_by")?;
    let state: String = row.try_get("state")?;
    let total: Option<i64> = row.try_get("progress_total")?;
    let result_key: Option<String> = row.try_get("result_key")?;
    Ok(JobView {
        id: db::parse_id(&id)?,
        kind: row.try_get("kind")?,
        state: JobState::parse(&state).ok_or_else(|| sqlx::Error::Decode(format!("bad job state {state}").into()))?,
        params: json_col(row, "params")?.unwrap_or_default(),
        done: u64_col(row, "progress_done")?,
        total: total.and_then(|t| u64::try_from(t).ok()),
        attempts: u64_col(row, "attempts")?,
        max_attempts: u64_col(row, "max_attempts")?,
        run_after: db::parse_ts(&row.try_get::<String, _>("run_after")?)?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        result: json_col(row, "result")?,
        has_result_file: result_key.is_some(),
        error: row.try_get("error")?,
        created_by: created_by.as_deref().map(db::parse_id).transpose()?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        updated_at: db::parse_ts(&row.try_get::<String, _>("updated_at")?)?,
        started_at: row.try_get::<Option<String>, _>("started_at")?.as_deref().map(db::parse_ts).transpose()?,
        finished_at: row.try_get::<Option<String>, _>("finished_at")?.as_deref().map(db::parse_ts).transpose()?,
    })
}

/// Inserts a queued job. With an idempotency key already used by the same creator, inserts
/// nothing and returns the existing job with `false`.
pub async fn create(db: &Db, new: &NewJob, max_attempts: u32) -> Result<(JobView, bool), sqlx::Error> {
    let id = db::new_id().to_string();
    let now = db::now();
    let created_by = new.created_by.map(|u| u.to_string());
    let params = serde_json::to_string(&new.params).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, kind, state, params, max_attempts, run_after, idempotency_key, created_by, \
         created_at, updated_at) VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $5, $5) \
         ON CONFLICT (created_by, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(&new.kind)
    .bind(params)
    .bind(i64::from(max_attempts))
    .bind(&now)
    .bind(new.idempotency_key.clone())
    .bind(created_by.clone())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if inserted.is_some() {
        let job = get(db, Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(e.into()))?).await?;
        return job.map(|j| (j, true)).ok_or(sqlx::Error::RowNotFound);
    }
    let existing = match (&created_by, &new.idempotency_key) {
        (Some(by), Some(key)) => by_key(db, by, key).await?,
        _ => None,
    };
    existing.map(|j| (j, false)).ok_or(sqlx::Error::RowNotFound)
}

/// The job a creator made with an idempotency key, if any.
pub async fn by_key(db: &Db, created_by: &str, key: &str) -> Result<Option<JobView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE created_by = $1 AND idempotency_key = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(created_by).bind(key).fetch_optional(db.pool()).await?;
    row.as_ref().map(view).transpose()
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<JobView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(db.pool()).await?;
    row.as_ref().map(view).transpose()
}

/// The storage key of a job's result file.
pub async fn result_key(db: &Db, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let row =
        sqlx::query("SELECT result_key FROM jobs WHERE id = $1").bind(id.to_string()).fetch_optional(db.pool()).await?;
    Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?.flatten())
}

/// One page of jobs, newest first: all of them, or those of `created_by`.
pub async fn list(
    db: &Db,
    created_by: Option<Uuid>,
    page: &crate::pagination::PageRequest,
) -> Result<Vec<JobView>, crate::error::Error> {
    let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1"));
    if let Some(by) = created_by {
        let a = b.arg(Arg::Text(by.to_string()));
        b.push(&format!(" AND created_by = {a}"));
    }
    crate::pagination::push_newest_first(&mut b, page)?;
    let rows = b.build().fetch_all(db.pool()).await?;
    Ok(rows.iter().map(view).collect::<Result<Vec<_>, sqlx::Error>>()?)
}

/// Claims the next runnable job of one of `kinds` for `owner` for `lease_secs`: a queued job
/// due now, or a running one whose lease expired (its replica died). Counts an attempt.
/// Returns the job and its `max_attempts`.
pub async fn claim(db: &Db, owner: &str, kinds: &[&str], lease_secs: u64) -> Result<Option<(Job, u32)>, sqlx::Error> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let now = db::now();
    let mut b = SqlBuilder::new("UPDATE jobs SET state = 'running', lease_owner = ");
    let owner_arg = b.arg(Arg::Text(owner.to_owned()));
    let expires = b.arg(Arg::Text(ts_in(lease_secs)));
    let now_arg = b.arg(Arg::Text(now));
    b.push(&format!(
        "{owner_arg}, lease_expires_at = {expires}, heartbeat_at = {now_arg}, attempts = attempts + 1, \
         started_at = COALESCE(started_at, {now_arg}), updated_at = {now_arg} \
         WHERE id = (SELECT id FROM jobs WHERE ((state = 'queued' AND run_after <= {now_arg}) \
         OR (state = 'running' AND lease_expires_at < {now_arg})) AND kind IN ("
    ));
    for (i, k) in kinds.iter().enumerate() {
        let a = b.arg(Arg::Text((*k).to_owned()));
        b.push(if i == 0 { "" } else { ", " }).push(&a);
    }
    b.push(") ORDER BY run_after, id LIMIT 1");
    if db.backend() == Backend::Postgres {
        // Replicas skip each other's candidate rows instead of queueing on them.
        b.push(" FOR UPDATE SKIP LOCKED");
    }
    b.push(") RETURNING id, kind, params, created_by, attempts, max_attempts, checkpoint");
    // SQLite: the process's single writer plus BEGIN IMMEDIATE make the claim exclusive.
    let mut tx = db.begin_write().await?;
    let row = b.build().fetch_optional(&mut *tx).await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    let created_by: Option<String> = row.try_get("created_by")?;
    let max_attempts = u32::try_from(row.try_get::<i64, _>("max_attempts")?).unwrap_or(1);
    let job = Job {
        id: db::parse_id(&id)?,
        kind: row.try_get("kind")?,
        params: json_col(&row, "params")?.unwrap_or_default(),
        created_by: created_by.as_deref().map(db::parse_id).transpose()?,
        attempt: i32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(i32::MAX),
        checkpoint: json_col(&row, "checkpoint")?,
    };
    Ok(Some((job, max_attempts)))
}

/// What a lease-guarded write learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    Held,
    /// Staff asked to cancel the job.
    CancelRequested,
    /// Another replica took the job over, or it was cancelled.
    Lost,
}

fn lease_of(row: Option<AnyRow>) -> Result<Lease, sqlx::Error> {
    match row {
        None => Ok(Lease::Lost),
        Some(r) if r.try_get::<i64, _>(0)? != 0 => Ok(Lease::CancelRequested),
        Some(_) => Ok(Lease::Held),
    }
}

/// Renews the lease; with `progress`, also records `(done, total)`; with `checkpoint`, the
/// resume point. Returns whether the lease is still held and whether a cancel is asked.
pub async fn renew(
    db: &Db,
    id: Uuid,
    owner: &str,
    lease_secs: u64,
    progress: Option<(u64, Option<u64>)>,
    checkpoint: Option<&serde_json::Value>,
) -> Result<Lease, sqlx::Error> {
    let now = db::now();
    let mut b = SqlBuilder::new("UPDATE jobs SET heartbeat_at = ");
    let now_arg = b.arg(Arg::Text(now));
    let expires = b.arg(Arg::Text(ts_in(lease_secs)));
    b.push(&format!("{now_arg}, updated_at = {now_arg}, lease_expires_at = {expires}"));
    if let Some((done, total)) = progress {
        let d = b.arg(Arg::Int(i64::try_from(done).unwrap_or(i64::MAX)));
        b.push(&format!(", progress_done = {d}"));
        if let Some(t) = total {
            let t = b.arg(Arg::Int(i64::try_from(t).unwrap_or(i64::MAX)));
            b.push(&format!(", progress_total = {t}"));
        }
    }
    if let Some(c) = checkpoint {
        let c = b.arg(Arg::Text(c.to_string()));
        b.push(&format!(", checkpoint = {c}"));
    }
    let id_arg = b.arg(Arg::Text(id.to_string()));
    let owner_arg = b.arg(Arg::Text(owner.to_owned()));
    b.push(&format!(
        " WHERE id = {id_arg} AND lease_owner = {owner_arg} AND state = 'running' RETURNING cancel_requested"
    ));
    let permit = db.write_permit().await?;
    let row = b.build().fetch_optional(db.pool()).await?;
    drop(permit);
    lease_of(row)
}

/// Records a `job.progress` event (the caller throttles).
pub async fn progress_event(db: &Db, progress: JobProgress) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    events::record(&mut tx, Event::JobProgress(progress)).await?;
    tx.commit().await
}

/// How a run ended, as the runner records it.
#[derive(Debug)]
pub enum Outcome {
    Succeeded {
        result: serde_json::Value,
        file: Option<String>,
    },
    /// Fails for good (with a `job.failed` event).
    Failed(String),
    /// Queued again, claimable after `retry_in_secs`.
    Retry {
        error: String,
        retry_in_secs: u64,
    },
    Cancelled,
    /// Shutdown: queued again at once, the attempt not counted, the checkpoint kept.
    HandedBack,
}

/// Records the end of a run, lease-guarded, with its event in the same transaction.
/// Returns false when the lease was lost (nothing written).
pub async fn finish(db: &Db, id: Uuid, kind: &str, owner: &str, outcome: Outcome) -> Result<bool, sqlx::Error> {
    let now = db::now();
    let (set, args, event): (&str, Vec<Option<String>>, Option<Event>) = match outcome {
        Outcome::Succeeded { result, file } => {
            let event = JobFinished { job_id: id, kind: kind.to_owned(), result: Some(result.clone()), error: None };
            (
                "state = 'succeeded', result = $4, result_key = $5, error = NULL, finished_at = $3",
                vec![Some(result.to_string()), file],
                Some(Event::JobSucceeded(event)),
            )
        }
        Outcome::Failed(error) => {
            let event = JobFinished { job_id: id, kind: kind.to_owned(), result: None, error: Some(error.clone()) };
            ("state = 'failed', error = $4, finished_at = $3", vec![Some(error)], Some(Event::JobFailed(event)))
        }
        Outcome::Retry { error, retry_in_secs } => {
            ("state = 'queued', error = $4, run_after = $5", vec![Some(error), Some(ts_in(retry_in_secs))], None)
        }
        Outcome::Cancelled => ("state = 'cancelled', finished_at = $3", vec![], None),
        Outcome::HandedBack => ("state = 'queued', run_after = $3, attempts = attempts - 1", vec![], None),
    };
    let sql = format!(
        "UPDATE jobs SET {set}, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
         WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING id"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).bind(owner.to_owned()).bind(now);
    for a in args {
        q = q.bind(a);
    }
    let mut tx = db.begin_write().await?;
    let row = q.fetch_optional(&mut *tx).await?;
    if row.is_some()
        && let Some(event) = event
    {
        events::record(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(row.is_some())
}

/// Hands back every job `owner` still holds (after its workers stopped).
pub async fn release_all(db: &Db, owner: &str) -> Result<u64, sqlx::Error> {
    let permit = db.write_permit().await?;
    let done = sqlx::query(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_after = $2, \
         attempts = attempts - 1, updated_at = $2 WHERE lease_owner = $1 AND state = 'running'",
    )
    .bind(owner.to_owned())
    .bind(db::now())
    .execute(db.pool())
    .await?;
    drop(permit);
    Ok(done.rows_affected())
}

/// Cancels a job: a queued one at once (it never runs); a running one is asked to stop
/// (it stops at its next progress call). Returns the job's state after the call.
pub async fn cancel(db: &Db, id: Uuid) -> Result<(), sqlx::Error> {
    let now = db::now();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE jobs SET state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END, \
         finished_at = CASE WHEN state = 'queued' THEN $2 ELSE finished_at END, \
         cancel_requested = 1, updated_at = $2 WHERE id = $1 AND state IN ('queued', 'running')",
    )
    .bind(id.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// One problem of one row, for `job_errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: u64,
    pub field: String,
    pub message: String,
}

/// Records row problems in `conn` (the batch's transaction); a re-run batch's problems are
/// already there and are not repeated (`(job, line, seq)` is the key).
pub async fn record_problems(
    conn: &mut sqlx::AnyConnection,
    job: Uuid,
    problems: &[RowProblem],
) -> Result<(), sqlx::Error> {
    let mut seq_of_line: std::collections::HashMap<u64, i64> = std::collections::HashMap::new();
    for chunk in problems.chunks(100) {
        let mut b = SqlBuilder::new("INSERT INTO job_errors (job_id, line, seq, field, message) VALUES ");
        for (i, p) in chunk.iter().enumerate() {
            let seq = seq_of_line.entry(p.line).or_insert(0);
            *seq += 1;
            let args = [
                b.arg(Arg::Text(job.to_string())),
                b.arg(Arg::Int(i64::try_from(p.line).unwrap_or(i64::MAX))),
                b.arg(Arg::Int(*seq)),
                b.arg(Arg::Text(p.field.clone())),
                b.arg(Arg::Text(p.message.clone())),
            ];
            b.push(if i == 0 { "(" } else { ", (" }).push(&args.join(", ")).push(")");
        }
        b.push(" ON CONFLICT (job_id, line, seq) DO NOTHING");
        b.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Up to `limit` row problems of `job` after `(line, seq)`, in file order.
pub async fn problems_after(
    db: &Db,
    job: Uuid,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<(i64, i64, RowProblem)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT line, seq, field, message FROM job_errors WHERE job_id = $1 AND (line > $2 OR (line = $2 AND seq > $3)) \
         ORDER BY line, seq LIMIT $4",
    )
    .bind(job.to_string())
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let line: i64 = r.try_get(0)?;
            let seq: i64 = r.try_get(1)?;
            let problem =
                RowProblem { line: u64::try_from(line).unwrap_or(0), field: r.try_get(2)?, message: r.try_get(3)? };
            Ok((line, seq, problem))
        })
        .collect()
}

/// The number of row problems recorded for `job`.
pub async fn problem_count(conn: &mut sqlx::AnyConnection, job: Uuid) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_errors WHERE job_id = $1")
        .bind(job.to_string())
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
