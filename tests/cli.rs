//! The `orderly` binary as operators use it: configuration checks, refusal to start with
//! unsafe settings, and logs that never contain secrets.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_orderly");

fn orderly(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("ORDERLY_DATA_DIR", dir);
    c
}

#[test]
fn config_check_prints_the_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = orderly(dir.path())
        .args(["config", "check"])
        .env("ORDERLY_AUTH_JWT_SECRET", "super-secret-value-that-is-long-enough-1234")
        .env("ORDERLY_DATABASE_URL", "postgres://app:db-password-xyz@127.0.0.1:5432/orderly")
        .env("ORDERLY_HTTP_ADDR", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("addr = \"127.0.0.1:9999\""), "{shown}");
    assert!(shown.contains("[redacted]"));
    for secret in ["super-secret-value", "db-password-xyz"] {
        assert!(!shown.contains(secret), "{secret} printed:\n{shown}");
    }
}

#[test]
fn an_invalid_setting_stops_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        orderly(dir.path()).args(["config", "check"]).env("ORDERLY_DATABASE_MAX_CONNECTIONS", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("database.max_connections"));

    std::fs::write(dir.path().join("orderly.toml"), "[http]\nadress = \"0.0.0.0:80\"\n").unwrap();
    let out = orderly(dir.path()).args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("adress"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn production_mode_refuses_a_missing_or_short_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    for secret in [None, Some("short")] {
        let mut c = orderly(dir.path());
        c.args(["serve"]).env("ORDERLY_MODE", "production").env("ORDERLY_HTTP_ADDR", "127.0.0.1:0");
        if let Some(s) = secret {
            c.env("ORDERLY_AUTH_JWT_SECRET", s);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{secret:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("auth.jwt_secret"));
    }
}

#[test]
fn help_explains_every_command() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "import", "user", "config"] {
        assert!(help.contains(cmd), "{help}");
    }
}

/// What Kubernetes injects for a Service named `orderly`, plus a documented setting of a
/// transport still to come.
const ORCHESTRATOR_ENV: &[(&str, &str)] = &[
    ("ORDERLY_PORT", "tcp://10.0.0.1:8080"),
    ("ORDERLY_PORT_8080_TCP_ADDR", "10.0.0.1"),
    ("ORDERLY_SERVICE_HOST", "10.0.0.1"),
    ("ORDERLY_GRPC_ADDR", "127.0.0.1:0"),
];

fn assert_warns_about_exactly_the_unknown_ones(stderr: &str) {
    let warning = stderr.lines().find(|l| l.contains("ignoring environment variables")).unwrap_or_else(|| {
        panic!("no warning about unknown variables in:\n{stderr}");
    });
    for name in ["ORDERLY_PORT", "ORDERLY_PORT_8080_TCP_ADDR", "ORDERLY_SERVICE_HOST"] {
        assert!(warning.contains(name), "{name} not named: {warning}");
    }
    assert!(!warning.contains("ORDERLY_GRPC_ADDR"), "a known setting was called unknown: {warning}");
}

#[test]
fn orchestrator_variables_do_not_stop_migrate_or_import_and_are_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = orderly(dir.path()).arg("migrate").envs(ORCHESTRATOR_ENV.iter().copied()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_warns_about_exactly_the_unknown_ones(&String::from_utf8_lossy(&out.stderr));

    let csv = dir.path().join("products.csv");
    std::fs::write(&csv, "sku,name,price,currency,on_hand\nK8S-1,Pod chair,10.00,USD,3\n").unwrap();
    let out = orderly(dir.path())
        .args(["import", "products"])
        .arg(&csv)
        .envs(ORCHESTRATOR_ENV.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_warns_about_exactly_the_unknown_ones(&String::from_utf8_lossy(&out.stderr));
}

#[test]
fn orchestrator_variables_do_not_stop_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), ORCHESTRATOR_ENV);
    let logs = server.stop();
    assert_warns_about_exactly_the_unknown_ones(&logs);
}

#[test]
fn orderly_config_names_the_file_whose_values_apply() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conf").join("custom.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "[http]\naddr = \"127.0.0.1:18181\"\n[dashboard]\ndeadline_ms = 777\n").unwrap();
    let out = orderly(dir.path()).args(["config", "check"]).env("ORDERLY_CONFIG", &file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("addr = \"127.0.0.1:18181\"") && shown.contains("deadline_ms = 777"), "{shown}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("ignoring"), "ORDERLY_CONFIG is not unknown");
}

#[test]
fn an_invalid_log_filter_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = orderly(dir.path()).args(["config", "check"]).env("ORDERLY_LOG_FILTER", "orderly=loud").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.filter"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = orderly(dir.path()).args(["config", "check"]).env("RUST_LOG", "orderly=loud").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUST_LOG"));
}

/// A running `orderly serve` whose stderr (the logs) is collected.
struct Server {
    child: Child,
    base: String,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let mut child = orderly(dir)
            .args(["serve"])
            .envs(env.iter().copied())
            .env("ORDERLY_HTTP_ADDR", "127.0.0.1:0")
            .env("ORDERLY_ADMIN_ADDR", "127.0.0.1:0")
            .env("ORDERLY_GRPC_ADDR", "127.0.0.1:0")
            .env("ORDERLY_LOG_FORMAT", "json")
            .env("ORDERLY_LOG_FILTER", "debug")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "orderly is serving"
                {
                    let _ = tx.send(v["http.addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the server did not start");
        Server { child, base: format!("http://{addr}"), logs }
    }

    fn stop(mut self) -> String {
        // SIGTERM via `kill`, then wait: the graceful path must flush its logs.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        std::thread::sleep(Duration::from_millis(200));
        self.logs.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn secrets_never_appear_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", server.base);
    let password = "Sup3r-Secret-Passw0rd!";
    let card = "5555555555554444";

    let session: Value = http
        .post(api("/auth/register"))
        .json(&json!({ "email": "logs@example.com", "password": password, "name": "Logs" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let _ = http
        .post(api("/auth/login"))
        .json(&json!({ "email": "logs@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    let _ = http
        .post(api("/auth/login"))
        .json(&json!({ "email": "logs@example.com", "password": "wrong-Passw0rd-zzz" }))
        .send()
        .await
        .unwrap();
    let renewed: Value = http
        .post(api("/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Reuse: logged as a security event, still without the token.
    let _ = http.post(api("/auth/refresh")).json(&json!({ "refresh_token": refresh })).send().await.unwrap();
    let _ = http.get(api("/me")).bearer_auth(&access).send().await.unwrap();
    let _ = http.get(api("/me")).header("authorization", "Bearer not-a-real-token-qqq").send().await.unwrap();
    let _ = http
        .post(api("/orders"))
        .bearer_auth(&access)
        .json(&json!({ "line_items": [{ "sku": "NOPE", "quantity": 1 }], "payment": { "card_number": card } }))
        .send()
        .await
        .unwrap();
    let logs = server.stop();

    assert!(logs.contains("request handled"), "the request log lines are there:\n{logs}");
    assert!(logs.contains("/api/v1/auth/login"), "routes are logged");
    let renewed_access = renewed["access_token"].as_str().unwrap();
    let renewed_refresh = renewed["refresh_token"].as_str().unwrap();
    for secret in [
        password,
        "wrong-Passw0rd-zzz",
        &access,
        &refresh,
        renewed_access,
        renewed_refresh,
        card,
        "not-a-real-token-qqq",
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs: {secret}");
    }
    // The JWT secret the server generated for itself never shows either.
    let jwt_secret = std::fs::read_to_string(dir.path().join("jwt-secret")).unwrap();
    assert!(!logs.contains(jwt_secret.trim()));
}

#[tokio::test]
async fn each_request_is_logged_with_route_status_duration_and_request_id_and_the_last_lines_are_flushed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let res =
        http.get(format!("{}/healthz", server.base)).header("x-request-id", "log-line-check-1").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = http.get(format!("{}/api/v1/products/{}", server.base, uuid::Uuid::nil())).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let logs = server.stop();

    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let handled = |id: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "request handled" && l["span"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no log line for request {id}:\n{logs}"))
            .clone()
    };
    let health = handled("log-line-check-1");
    assert_eq!(health["span"]["route"], "/healthz");
    assert_eq!(health["span"]["method"], "GET");
    assert_eq!(health["status"], 200);
    assert!(health["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{health}");
    let missing = handled(&generated);
    assert_eq!(missing["span"]["route"], "/api/v1/products/{id}", "the route template, never the raw path");
    assert_eq!(missing["status"], 404);
    // Lines are written by a background thread in batches; the ones logged while shutting
    // down are on stderr before the process exits.
    assert_eq!(lines.last().map(|l| l["message"].clone()), Some(json!("stopped")), "{logs}");
}
