//! A database that cannot be reached: 503 `unavailable` with `Retry-After`, without pool
//! internals, and at once (not after the pool's timeout) while the breaker is open; back to
//! normal by itself when the database returns (cached catalog reads keep answering). Needs a
//! networked database to cut, so it runs
//! against PostgreSQL (`ORDERLY_TEST_DATABASE_URL`, as `.ci/run` sets it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{Options, TestApp, TestDb};

/// A TCP relay to the database that can be cut (listener and every connection dropped)
/// and restored on the same port.
struct Relay {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: String, port: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up, registry) = (upstream.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let up = up.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Relay { port, upstream, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// `postgres://user@host:port/db` → (`host:port`, the URL with `127.0.0.1:<port>` instead).
fn via(url: &str, port: u16) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let hostport = authority.rsplit('@').next().unwrap();
    (hostport.to_owned(), url.replacen(hostport, &format!("127.0.0.1:{port}"), 1))
}

#[tokio::test]
async fn an_unreachable_database_is_a_fast_503_and_recovers_by_itself() {
    let db = Arc::new(TestDb::new().await);
    if !db.is_postgres() {
        eprintln!("skipped: needs ORDERLY_TEST_DATABASE_URL (a database that can be cut off)");
        return;
    }
    let (upstream, _) = via(&db.url, 0);
    let relay = Relay::start(upstream.clone(), 0).await;
    let (_, relayed) = via(&db.url, relay.port);
    let config = vec![("database.url", relayed), ("database.acquire_timeout_ms", "1500".to_string())];
    let app = TestApp::spawn_with(Options { config, db: Some(db), ..Options::default() }).await;
    assert_eq!(app.get("/api/v1/products", None).await.0, StatusCode::OK);

    relay.cut();
    // A cached catalog read needs no database: it still answers.
    assert_eq!(app.get("/api/v1/products", None).await.0, StatusCode::OK);
    let uncached = app.url("/api/v1/products?limit=5");
    let first = app.client.get(&uncached).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.headers()["retry-after"], "1");
    let body = first.text().await.unwrap();
    assert!(body.contains("\"code\":\"unavailable\"") && !body.to_lowercase().contains("pool"), "{body}");

    // While the breaker is open, the answer does not wait for the pool's 1.5 s timeout.
    let started = Instant::now();
    let second = app.client.get(&uncached).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(1500), "waited {:?}", started.elapsed());

    let restored = Relay::start(relay.upstream.clone(), relay.port).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if app.get("/api/v1/products?limit=5", None).await.0 == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the service did not recover after the database came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    restored.cut();
}
