//! Background jobs and imports over the API: uploads become jobs that import every good
//! row in batches and report the bad ones as CSV; keys make uploads idempotent; jobs are
//! cancelled, retried, taken over after a crash, and never run twice by two instances.

mod imports;
mod runner;

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// Short intervals so tests see leases expire and polls happen quickly.
pub fn fast() -> Vec<(&'static str, String)> {
    vec![
        ("jobs.poll_interval_ms", "20".into()),
        ("jobs.lease_secs", "2".into()),
        ("jobs.heartbeat_secs", "1".into()),
        ("jobs.backoff_base_secs", "0".into()),
        ("imports.batch_rows", "50".into()),
    ]
}

/// Uploads `body` to `POST /api/v1/imports/{path}`; returns status, body and headers.
pub async fn upload(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/imports/{path}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let res = req.send().await.expect("upload");
    let status = res.status();
    let bytes = res.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Polls the job until `done(job)` or 30 s pass; returns the last view.
pub async fn wait_job(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, job) = app.get(&format!("/api/v1/jobs/{id}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if done(&job) || tokio::time::Instant::now() > deadline {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the job has ended.
pub async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    wait_job(app, token, id, |j| ["succeeded", "failed", "cancelled"].contains(&j["state"].as_str().unwrap_or("")))
        .await
}

/// Waits until `check` holds or 30 s pass.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(app.app.db.pool()).await.expect(sql)
}
