//! SQL round trips per checkout, counted at the wire (as Saleor counts queries per checkout):
//! a small TCP proxy between the app and PostgreSQL reads the frontend protocol and counts
//! the messages after which the client waits for the server: `Sync` ('S', which ends an
//! extended-protocol exchange: parse/bind/execute of a prepared statement, or a pool ping)
//! and `Query` ('Q', a simple query such as `BEGIN` or `COMMIT`). PostgreSQL only (the
//! PostgreSQL suite runs in CI); on SQLite the test prints a note and passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orderly::Overrides;
use orderly::payments::sandbox::SandboxGateway;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::helpers::{GOOD_CARD, Options, TestApp, TestDb};

/// The budget from docs/PERFORMANCE.md ("Checkout"): price lookup, the reservation with the
/// order, its lines and events, the paid write returning the order, and one release ping
/// per connection step.
const MAX_ROUND_TRIPS_PER_CHECKOUT: usize = 6;

/// Frontend messages that end a round trip, as seen by the proxy.
#[derive(Default)]
struct Wire {
    round_trips: AtomicUsize,
    /// Each counted message's type, in order, for the failure message.
    log: Mutex<Vec<char>>,
}

/// Listens on a free port and forwards every connection to `upstream`, counting on `wire`.
async fn proxy(upstream: String, wire: Arc<Wire>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let wire = wire.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let back = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
                let _ = forward_counting(&mut cr, &mut sw, &wire).await;
                back.abort();
            });
        }
    });
    addr
}

/// Copies the client's messages to the server one at a time, counting `S` and `Q`. The first
/// message (startup) has no type byte; the test's URL disables TLS so the stream is readable.
async fn forward_counting(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    wire: &Wire,
) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).await?;
    let mut startup = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    from.read_exact(&mut startup).await?;
    to.write_all(&len).await?;
    to.write_all(&startup).await?;
    loop {
        let mut head = [0u8; 5];
        from.read_exact(&mut head).await?;
        let body_len = (u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize).saturating_sub(4);
        let mut body = vec![0u8; body_len];
        from.read_exact(&mut body).await?;
        if head[0] == b'S' || head[0] == b'Q' {
            wire.round_trips.fetch_add(1, Ordering::SeqCst);
            wire.log.lock().await.push(head[0] as char);
        }
        to.write_all(&head).await?;
        to.write_all(&body).await?;
    }
}

/// `postgres://user@host:port/db?x` → (`host:port`, the URL through `proxy` without TLS).
fn through(url: &str, proxy: std::net::SocketAddr) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_owned();
    let mut proxied = url.replacen(&host_port, &proxy.to_string(), 1);
    proxied.push(if proxied.contains('?') { '&' } else { '?' });
    proxied.push_str("sslmode=disable");
    (host_port, proxied)
}

#[tokio::test]
async fn a_checkout_with_a_card_takes_at_most_six_sql_round_trips_on_postgres() {
    let db = Arc::new(TestDb::new().await);
    if !db.is_postgres() {
        eprintln!("note: round trips are counted on PostgreSQL only (set ORDERLY_TEST_DATABASE_URL)");
        return;
    }
    let wire = Arc::new(Wire::default());
    let (upstream, _) = through(&db.url, "127.0.0.1:1".parse().unwrap());
    let addr = proxy(upstream, wire.clone()).await;
    let (_, proxied) = through(&db.url, addr);
    // The payment provider is outside orderly: the sandbox keeps its ledger over its own,
    // uncounted connections.
    let sandbox = SandboxGateway::new(TestApp::spawn_db(&db).await);
    let hour = "3600000".to_string();
    let config = vec![
        ("database.url", proxied),
        // One pooled connection: every checkout step finds the statements it prepares
        // already cached, as a warm server's connections do.
        ("database.max_connections", "1".to_string()),
        ("database.min_connections", "1".to_string()),
        // Background workers stay quiet while the test counts.
        ("checkout.expiry_interval_ms", hour.clone()),
        ("checkout.recovery_interval_ms", hour.clone()),
        ("events.relay_interval_ms", hour.clone()),
        ("flags.refresh_interval_ms", hour),
    ];
    let overrides = Overrides { payments: Some(Arc::new(sandbox)), ..Default::default() };
    let app = TestApp::spawn_with(Options { config, overrides, db: Some(db) }).await;
    let staff = app.staff().await;
    app.create_product(&staff, "RT-1", 1250, 1000).await;
    app.create_product(&staff, "RT-2", 700, 1000).await;
    let (token, _, _) = app.register_customer("counted@example.com").await;
    let body = json!({
        "line_items": [{ "sku": "RT-1", "quantity": 2 }, { "sku": "RT-2", "quantity": 1 }],
        "payment": { "card_number": GOOD_CARD },
    });
    // Warm-up: the first use of each statement on a connection prepares it.
    let (status, order) = app.post("/api/v1/orders", Some(&token), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = wire.round_trips.load(Ordering::SeqCst);
    let log_from = wire.log.lock().await.len();
    let (status, order) = app.post("/api/v1/orders", Some(&token), &body).await;
    // The release ping runs after the response: let it land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let round_trips = wire.round_trips.load(Ordering::SeqCst) - before;
    let log: String = wire.log.lock().await[log_from..].iter().collect();

    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(order["line_items"].as_array().map(Vec::len), Some(2), "{order}");
    assert!(
        round_trips <= MAX_ROUND_TRIPS_PER_CHECKOUT,
        "a checkout took {round_trips} round trips (S = Sync, Q = simple query: {log}), budget \
         {MAX_ROUND_TRIPS_PER_CHECKOUT}"
    );
    eprintln!("checkout round trips on PostgreSQL: {round_trips} ({log})");
}
