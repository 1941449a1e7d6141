//! `TestApp`: spawns orderly on port 0 against a fresh database and talks to it over HTTP.
//!
//! Backend: a new SQLite file in a temp dir, or — when `ORDERLY_TEST_DATABASE_URL` points at
//! a PostgreSQL server — a new database created for the test and dropped after it.
//!
//! Files: `<data_dir>/files`, or — when `ORDERLY_TEST_S3_URL` is set — that S3-compatible
//! store under a prefix of the test's own (`t_<hex>`), left to the bucket's lifetime.
//!
//! Bus: the in-process one, or — when `ORDERLY_TEST_NATS_URL` is set — NATS JetStream with a
//! stream and subject prefix of the test's own (shared by the apps on one `TestDb`, so two
//! replicas of a test see each other's events and no other test's), deleted after it.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use orderly::auth::users;
use orderly::auth::{Email, Password, Role};
use orderly::{App, Application, Config, Overrides};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";

/// Where a test's data lives; kept alive for the test, and shared by apps that simulate a
/// restart on the same database.
pub struct TestDb {
    pub url: String,
    /// This test's JetStream stream name and subject prefix token (`T_<hex>`), used when
    /// `ORDERLY_TEST_NATS_URL` is set.
    pub bus: String,
    dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
}

/// The suite's S3-compatible server (`ORDERLY_TEST_S3_URL`: `s3://bucket[/prefix]?endpoint=…`),
/// if set.
pub fn test_s3_url() -> Option<String> {
    std::env::var("ORDERLY_TEST_S3_URL").ok().filter(|u| !u.is_empty())
}

/// `s3://bucket/prefix?query` with `/<child>` appended to the prefix.
fn with_s3_prefix(url: &str, child: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let mut out = format!("{}/{child}", base.trim_end_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The suite's NATS server (`ORDERLY_TEST_NATS_URL`), if set.
pub fn test_nats_url() -> Option<String> {
    std::env::var("ORDERLY_TEST_NATS_URL").ok().filter(|u| !u.is_empty())
}

impl TestDb {
    pub async fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = format!("T_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("ORDERLY_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(admin_url) => {
                let name = format!("orderly_t_{}", uuid::Uuid::new_v4().simple());
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .expect("ORDERLY_TEST_DATABASE_URL is set but PostgreSQL is unreachable");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = with_database(&admin_url, &name);
                TestDb { url, bus, dir, pg_admin: Some((admin_url, name)) }
            }
            None => {
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("orderly.db").display());
                TestDb { url, bus, dir, pg_admin: None }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_admin.is_some()
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// `postgres://u@h:5432/postgres?x=y` with the database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(nats_url) = test_nats_url() {
            // Best effort: the test's stream goes with the test.
            let stream = self.bus.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    let connect = async_nats::connect(nats_url);
                    if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                        let js = async_nats::jetstream::new(client);
                        let _ = tokio::time::timeout(Duration::from_secs(2), js.delete_stream(&stream)).await;
                    }
                });
            })
            .join();
        }
        if let Some((admin, name)) = self.pg_admin.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(mut c) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await {
                        let _ =
                            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    /// The admin listener (`/metrics`, `/debug/pprof`), also on a free port.
    pub admin_base: String,
    /// The gRPC listener (`orderly.v1`, health, reflection), e.g. `http://127.0.0.1:41234`.
    pub grpc_base: String,
    pub client: reqwest::Client,
    pub app: Arc<App>,
    pub db: Arc<TestDb>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// How to build a test app: extra config (dotted keys) and seam overrides.
#[derive(Default)]
pub struct Options {
    pub config: Vec<(&'static str, String)>,
    pub overrides: Overrides,
    pub db: Option<Arc<TestDb>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        let db = match opts.db {
            Some(db) => db,
            None => Arc::new(TestDb::new().await),
        };
        let mut pairs = vec![
            ("http.addr", "127.0.0.1:0".to_string()),
            ("admin.addr", "127.0.0.1:0".to_string()),
            ("grpc.addr", "127.0.0.1:0".to_string()),
            ("database.url", db.url.clone()),
            ("data_dir", db.data_dir().display().to_string()),
            ("auth.jwt_secret", JWT_SECRET.to_string()),
            // Every test talks from 127.0.0.1 (some register 50 customers): limits far above
            // what a test sends. tests/api/ratelimit.rs lowers them where it tests them.
            ("ratelimit.api_limit", "1000000".to_string()),
            ("ratelimit.login_limit", "1000000".to_string()),
            ("ratelimit.checkout_limit", "1000000".to_string()),
            ("log.filter", "warn".to_string()),
        ];
        if let Some(nats_url) = test_nats_url() {
            pairs.push(("nats.url", nats_url));
            pairs.push(("nats.stream", db.bus.clone()));
            pairs.push(("nats.subject_prefix", format!("t.{}", db.bus)));
        }
        if let Some(s3_url) = test_s3_url() {
            // Files under a prefix of the test's own (shared by the apps on one `TestDb`).
            pairs.push(("storage.url", with_s3_prefix(&s3_url, &db.bus.to_ascii_lowercase())));
        }
        pairs.extend(opts.config);
        let config = Config::from_pairs(pairs).expect("test config");
        orderly::telemetry::init(&config.log);
        let application = Application::build_with(config, opts.overrides).await.expect("build app");
        let base = format!("http://{}", application.http_addr());
        let admin_base = format!("http://{}", application.admin_addr());
        let grpc_base = format!("http://{}", application.grpc_addr());
        let app = application.app();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(application.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            admin_base,
            grpc_base,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"),
            app,
            db,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// Kills the app without any shutdown: in-flight work is abandoned, as in a crash.
    pub fn crash(mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; returns status and the JSON body (`Value::Null` when empty).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request failed");
        let status = res.status();
        let bytes = res.bytes().await.expect("body");
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    /// Registers a customer through the API; returns (access token, user id, session).
    pub async fn register_customer(&self, email: &str) -> (String, String, Value) {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                &json!({ "email": email, "password": PASSWORD, "name": "Test Customer" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["access_token"].as_str().expect("access_token").to_owned();
        let id = body["user"]["id"].as_str().expect("user id").to_owned();
        (token, id, body)
    }

    /// Creates a user with `role` directly and logs in through the API; returns the token.
    pub async fn user_with_role(&self, email: &str, role: Role) -> String {
        users::create(
            &self.app.db,
            &Email::parse(email).expect("email"),
            Some(&Password::parse(PASSWORD).expect("password")),
            "Test User",
            role,
        )
        .await
        .expect("create user");
        self.login(email).await
    }

    pub async fn staff(&self) -> String {
        self.user_with_role(&format!("staff-{}@example.com", uuid::Uuid::new_v4().simple()), Role::Staff).await
    }

    pub async fn admin(&self) -> String {
        self.user_with_role(&format!("admin-{}@example.com", uuid::Uuid::new_v4().simple()), Role::Admin).await
    }

    pub async fn login(&self, email: &str) -> String {
        let (status, body) =
            self.post("/api/v1/auth/login", None, &json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Creates an active USD product with `stock` units on hand; returns it.
    pub async fn create_product(&self, staff: &str, sku: &str, price_minor: i64, stock: i64) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/products",
                Some(staff),
                &json!({ "sku": sku, "name": format!("Product {sku}"), "price_minor": price_minor,
                         "currency": "USD", "initial_stock": stock }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Places an order for one line; returns status and body.
    pub async fn place_order(&self, token: &str, sku: &str, quantity: i64, card: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({ "line_items": [{ "sku": sku, "quantity": quantity }] });
        if let Some(c) = card {
            body["payment"] = json!({ "card_number": c });
        }
        self.post("/api/v1/orders", Some(token), &body).await
    }

    /// The product's stock as staff sees it: (on_hand, reserved, available).
    pub async fn stock(&self, staff: &str, product_id: &str) -> (i64, i64, i64) {
        let (status, inv) = self.get(&format!("/api/v1/products/{product_id}/inventory"), Some(staff)).await;
        assert_eq!(status, StatusCode::OK, "{inv}");
        (inv["on_hand"].as_i64().unwrap(), inv["reserved"].as_i64().unwrap(), inv["available"].as_i64().unwrap())
    }

    /// Polls `GET /orders/{id}` until its status is `want` or 20 s pass; returns the order.
    pub async fn wait_for_status(&self, token: &str, order_id: &str, want: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, order) = self.get(&format!("/api/v1/orders/{order_id}"), Some(token)).await;
            if order["status"] == want || tokio::time::Instant::now() > deadline {
                return order;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Asserts a problem+json body of `status` with `code`.
pub fn assert_problem(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status.as_u16(), "{body}");
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with(want_code)), "{body}");
}

impl TestApp {
    /// A second connection pool to `db`, for a seam (like a gateway) built before the app.
    pub async fn spawn_db(db: &TestDb) -> orderly::db::Db {
        let config =
            Config::from_pairs([("database.url", db.url.clone()), ("data_dir", db.data_dir().display().to_string())])
                .expect("config");
        let pool = orderly::db::Db::connect(&config).await.expect("connect");
        pool.migrate().await.expect("migrate");
        pool
    }
}
