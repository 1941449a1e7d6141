//! Protection at the edge: security headers on every response, caching rules, compression,
//! CORS, TRACE, request ids, slow and oversized request heads,
//! h2c beside HTTP/1.1 on one port, panics.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orderly::Overrides;
use orderly::dashboard::{DashboardSources, DayRevenue, LowStock, NewCustomers, Period, StatusCount, TopProduct};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Options, TestApp};

fn assert_security_headers(res: &reqwest::Response) {
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{h:?}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.get("x-request-id").is_some());
}

/// Dashboard sources whose every call panics: a bug in a handler.
struct Panicking;

impl DashboardSources for Panicking {
    fn revenue_by_day(&self, _: Period) -> BoxFuture<'_, orderly::Result<Vec<DayRevenue>>> {
        async { panic!("boom") }.boxed()
    }
    fn orders_by_status(&self, _: Period) -> BoxFuture<'_, orderly::Result<Vec<StatusCount>>> {
        async { panic!("boom") }.boxed()
    }
    fn top_products(&self, _: Period, _: i64) -> BoxFuture<'_, orderly::Result<Vec<TopProduct>>> {
        async { panic!("boom") }.boxed()
    }
    fn low_stock(&self, _: i64) -> BoxFuture<'_, orderly::Result<Vec<LowStock>>> {
        async { panic!("boom") }.boxed()
    }
    fn new_customers(&self, _: Period) -> BoxFuture<'_, orderly::Result<NewCustomers>> {
        async { panic!("boom") }.boxed()
    }
}

#[tokio::test]
async fn security_headers_are_on_404s_and_on_500s_from_a_panic_which_does_not_kill_the_process() {
    let app = TestApp::spawn_with(Options {
        overrides: Overrides { dashboard: Some(Arc::new(Panicking)), ..Default::default() },
        ..Default::default()
    })
    .await;
    let res = app.client.get(app.url("/api/v1/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&res);

    let staff = app.staff().await;
    let res = app.client.get(app.url("/api/v1/dashboard")).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_security_headers(&res);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "internal-error");
    assert!(!body.to_string().contains("boom"), "the panic message must not leak: {body}");

    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "the process survives a panicking handler");
}

#[tokio::test]
async fn authenticated_responses_are_never_stored_and_public_reads_revalidate() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "CC-1", 100, 1).await;
    let path = app.url(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()));
    let res = app.client.get(&path).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = app.client.get(app.url("/api/v1/me")).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = app.client.get(&path).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "public, no-cache");
    assert!(res.headers()["vary"].to_str().unwrap().contains("authorization"));
    assert!(res.headers().get("strict-transport-security").is_none(), "HSTS is off unless configured");
}

#[tokio::test]
async fn hsts_is_sent_when_configured() {
    let app = TestApp::spawn_with(Options {
        config: vec![("http.hsts_max_age_secs", "63072000".into())],
        ..Default::default()
    })
    .await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.headers()["strict-transport-security"], "max-age=63072000; includeSubDomains");
}

#[tokio::test]
async fn trace_is_refused_everywhere() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/api/v1/products", "/api/v1/nowhere"] {
        let res = app.client.request(Method::TRACE, app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_replaced_otherwise() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "req-42.a:b_c").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-42.a:b_c");
    for bad in ["has space", "<script>", &"x".repeat(200)] {
        let res = app.client.get(app.url("/healthz")).header("x-request-id", bad).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "a generated id: {id}");
    }
    let a = app.client.get(app.url("/healthz")).send().await.unwrap();
    let b = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
}

#[tokio::test]
async fn large_responses_are_compressed_as_negotiated_and_small_ones_are_not() {
    let app = TestApp::spawn().await;
    for enc in ["gzip", "br", "zstd"] {
        let res = app.client.get(app.url("/openapi.json")).header("accept-encoding", enc).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-encoding"], enc);
    }
    let res = app.client.get(app.url("/healthz")).header("accept-encoding", "gzip").send().await.unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    let res = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert!(res.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).header("origin", "https://shop.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none(), "no CORS unless configured");

    let app = TestApp::spawn_with(Options {
        config: vec![
            ("http.cors_allowed_origins", "https://shop.example".into()),
            ("http.cors_allow_credentials", "true".into()),
        ],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let res = preflight("https://shop.example").await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

/// Sends `head` and then nothing more, to a server with a 300 ms header read timeout, and
/// returns what the server sent before it closed the connection (within 10 s, or panics).
async fn sent_before_disconnect(head: &[u8]) -> (TestApp, Vec<u8>) {
    let app = TestApp::spawn_with(Options {
        config: vec![("http.header_read_timeout_ms", "300".into())],
        ..Default::default()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(head).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    (app, buf)
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_disconnected() {
    let (app, buf) = sent_before_disconnect(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // A normal client on the same server is unaffected.
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_first_line_is_disconnected() {
    // "PR" could still be the start of an h2c preface: the server must not wait forever.
    let (_app, buf) = sent_before_disconnect(b"PR").await;
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
}

/// Opens an h2c connection (prior knowledge), its preface sent in `parts`, and returns the
/// type of the server's first frame.
async fn first_h2_frame_type(app: &TestApp, parts: &[&[u8]]) -> u8 {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        conn.write_all(part).await.unwrap();
    }
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut head)).await.unwrap().unwrap();
    head[3]
}

#[tokio::test]
async fn h2c_clients_are_served_http2_on_the_same_port_even_when_the_preface_arrives_in_pieces() {
    let app = TestApp::spawn().await;
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // The server speaks first with its SETTINGS frame (type 4), as HTTP/2 requires.
    assert_eq!(first_h2_frame_type(&app, &[preface]).await, 4);
    assert_eq!(first_h2_frame_type(&app, &[&preface[..1], &preface[1..10], &preface[10..]]).await, 4);
    // HTTP/1.1 on the same port is unaffected.
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let app =
        TestApp::spawn_with(Options { config: vec![("http.max_header_bytes", "8192".into())], ..Default::default() })
            .await;
    let res = app.client.get(app.url("/healthz")).header("x-big", "a".repeat(20_000)).send().await;
    match res {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.to_string().contains("closed"), "{e}"),
    }
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_benchmark_switch_serves_bare_routes_without_the_stack() {
    let app =
        TestApp::spawn_with(Options { config: vec![("http.middleware", "off".into())], ..Default::default() }).await;
    let staff = app.staff().await;
    let p = app.create_product(&staff, "BARE-1", 100, 1).await;
    let res = app.client.get(app.url(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-request-id").is_none(), "no middleware ran");
    assert!(res.headers().get("x-content-type-options").is_none());
}
