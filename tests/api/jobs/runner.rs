//! The runner: cancel, retry with backoff, takeover after a crash from the checkpoint, and
//! no job run twice by two instances on one database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderly::jobs::{Job, JobContext, JobError, JobFuture, JobHandler, JobOutput, NewJob};
use serde_json::json;
use uuid::Uuid;

use super::{count, eventually, fast, finished, upload, wait_job};
use crate::helpers::{Options, TestApp, TestDb};

/// Counts its runs per job; each run reports progress `steps` times, `pause` apart, and
/// fails with a retryable error on the first `fail_first` runs of a job.
struct Counting {
    kind: &'static str,
    steps: u64,
    pause: Duration,
    fail_first: u32,
    runs: Mutex<HashMap<Uuid, u32>>,
}

impl Counting {
    fn new(kind: &'static str, steps: u64, pause: Duration, fail_first: u32) -> Arc<Self> {
        Arc::new(Self { kind, steps, pause, fail_first, runs: Mutex::new(HashMap::new()) })
    }

    fn runs(&self, job: Uuid) -> u32 {
        self.runs.lock().unwrap().get(&job).copied().unwrap_or(0)
    }
}

impl JobHandler for Counting {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, job: &'a Job, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let run = {
                let mut runs = self.runs.lock().unwrap();
                let n = runs.entry(job.id).or_insert(0);
                *n += 1;
                *n
            };
            if run <= self.fail_first {
                return Err(JobError::Retryable(anyhow::anyhow!("flaky dependency (run {run})")));
            }
            for step in 1..=self.steps {
                tokio::time::sleep(self.pause).await;
                ctx.progress(step, Some(self.steps)).await?;
            }
            Ok(JobOutput { result: json!({ "steps": self.steps }), file: None })
        })
    }
}

async fn spawn_with(handler: Arc<Counting>, db: Option<Arc<TestDb>>, workers: usize) -> TestApp {
    let mut config = fast();
    config.push(("jobs.workers", workers.to_string()));
    let overrides = orderly::Overrides { jobs: vec![handler], ..Default::default() };
    TestApp::spawn_with(Options { config, overrides, db }).await
}

async fn enqueue(app: &TestApp, kind: &str, owner: Uuid) -> Uuid {
    let new = NewJob { kind: kind.into(), params: json!({}), created_by: Some(owner), idempotency_key: None };
    app.app.jobs.enqueue(new).await.unwrap().0.id
}

async fn staff_id(app: &TestApp, token: &str) -> Uuid {
    let (_, me) = app.get("/api/v1/me", Some(token)).await;
    me["id"].as_str().and_then(|s| s.parse().ok()).expect("user id")
}

#[tokio::test]
async fn a_cancelled_queued_job_never_runs_and_a_running_one_stops_at_its_next_report() {
    let handler = Counting::new("test.slow", 1000, Duration::from_millis(10), 0);
    let app = spawn_with(handler.clone(), None, 1).await;
    let staff = app.staff().await;
    let me = staff_id(&app, &staff).await;
    let running = enqueue(&app, "test.slow", me).await;
    let running_s = running.to_string();
    wait_job(&app, &staff, &running_s, |j| j["done"].as_u64().unwrap_or(0) > 0).await;
    // One worker is busy: this one stays queued.
    let queued = enqueue(&app, "test.slow", me).await;
    let (status, job) = app.post(&format!("/api/v1/jobs/{queued}/cancel"), Some(&staff), &json!({})).await;
    assert_eq!((status, job["state"].as_str()), (reqwest::StatusCode::OK, Some("cancelled")), "{job}");

    let (status, _) = app.post(&format!("/api/v1/jobs/{running}/cancel"), Some(&staff), &json!({})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let job = finished(&app, &staff, &running_s).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(job["done"].as_u64().unwrap() < 1000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handler.runs(queued), 0, "a job cancelled while queued never runs");
    let (status, _) = app.post(&format!("/api/v1/jobs/{running}/cancel"), Some(&staff), &json!({})).await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "an ended job cannot be cancelled");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_job_is_retried_until_it_succeeds_or_runs_out_of_attempts() {
    let handler = Counting::new("test.flaky", 1, Duration::ZERO, 2);
    let app = spawn_with(handler.clone(), None, 2).await;
    let staff = app.staff().await;
    let me = staff_id(&app, &staff).await;
    let job = enqueue(&app, "test.flaky", me).await;
    let view = finished(&app, &staff, &job.to_string()).await;
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!((view["attempts"].as_u64(), handler.runs(job)), (Some(3), 3));
    app.stop().await;

    let always = Counting::new("test.broken", 1, Duration::ZERO, u32::MAX);
    let app = spawn_with(always.clone(), None, 2).await;
    let staff = app.staff().await;
    let me = staff_id(&app, &staff).await;
    let job = enqueue(&app, "test.broken", me).await;
    let view = finished(&app, &staff, &job.to_string()).await;
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(always.runs(job), 5, "jobs.max_attempts runs, then it fails");
    assert!(view["error"].as_str().unwrap().contains("flaky dependency"), "{view}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_handed_back_at_shutdown_is_finished_by_the_next_instance() {
    let handler = Counting::new("test.long", 40, Duration::from_millis(20), 0);
    let db = Arc::new(TestDb::new().await);
    let app = spawn_with(handler.clone(), Some(db.clone()), 1).await;
    let staff = app.staff().await;
    let me = staff_id(&app, &staff).await;
    let job = enqueue(&app, "test.long", me).await;
    wait_job(&app, &staff, &job.to_string(), |j| j["done"].as_u64().unwrap_or(0) > 0).await;
    let pool = app.app.db.clone();
    app.stop().await;
    drop(pool);

    let app = spawn_with(handler.clone(), Some(db), 1).await;
    let state = count(&app, &format!("SELECT attempts FROM jobs WHERE id = '{job}'")).await;
    assert!(state <= 1, "a handed-back run does not count as an attempt");
    let view = finished(&app, &staff, &job.to_string()).await;
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(handler.runs(job), 2);
    app.stop().await;
}

#[tokio::test]
async fn an_import_whose_instance_crashed_is_taken_over_with_no_row_missing_or_duplicated() {
    let db = Arc::new(TestDb::new().await);
    let mut config = fast();
    config.push(("imports.batch_rows", "100".into()));
    let app = TestApp::spawn_with(Options { config: config.clone(), db: Some(db.clone()), ..Default::default() }).await;
    let staff = app.staff().await;
    let rows = 20_000;
    let mut csv = String::from("sku,name,price,currency,on_hand\n");
    for i in 0..rows {
        csv.push_str(&format!("CRASH-{i},Item {i},{}.25,EUR,3\n", i % 90));
    }
    let (_, job) = upload(&app, &staff, "products", "text/csv", csv, Some("crash-test")).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let seen = wait_job(&app, &staff, &id, |j| {
        j["done"].as_u64().unwrap_or(0) >= 200 || j["state"] != "queued" && j["state"] != "running"
    })
    .await;
    assert_eq!(seen["state"], "running", "the import must still be running when the instance dies: {seen}");
    app.crash();

    let app = TestApp::spawn_with(Options { config, db: Some(db), ..Default::default() }).await;
    let job = finished(&app, &staff, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["attempts"].as_u64().unwrap() >= 2, "taken over: {job}");
    assert_eq!(job["result"]["rows"], rows, "{job}");
    let created = job["result"]["created"]["products"].as_i64().unwrap();
    let present = job["result"]["present"]["products"].as_i64().unwrap();
    assert_eq!(created + present, rows, "{job}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM products WHERE sku LIKE 'CRASH-%'").await, rows);
    assert_eq!(count(&app, "SELECT COUNT(DISTINCT sku) FROM products WHERE sku LIKE 'CRASH-%'").await, rows);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM inventory").await, rows);
    app.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_database_run_every_job_exactly_once() {
    let handler = Counting::new("test.once", 2, Duration::from_millis(15), 0);
    let db = Arc::new(TestDb::new().await);
    let a = spawn_with(handler.clone(), Some(db.clone()), 3).await;
    let b = spawn_with(handler.clone(), Some(db), 3).await;
    let staff = a.staff().await;
    let me = staff_id(&a, &staff).await;
    let mut jobs = Vec::new();
    for _ in 0..30 {
        jobs.push(enqueue(&a, "test.once", me).await);
    }
    eventually("every job to succeed", || async {
        count(&a, "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'").await == 30
    })
    .await;
    for job in &jobs {
        assert_eq!(handler.runs(*job), 1, "job {job} ran {} times", handler.runs(*job));
    }
    assert_eq!(count(&a, "SELECT COUNT(*) FROM jobs WHERE attempts <> 1").await, 0);
    a.stop().await;
    b.stop().await;
}
