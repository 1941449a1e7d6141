//! The HTTP server loop: hyper's HTTP/1.1 and h2c connections, chosen per connection by the
//! client's first bytes, so that limits axum's `serve` does not expose can be set — how long
//! a client may take to send its request headers (slowloris), how large the headers may
//! be — and a graceful drain.
//!
//! Each connection's task holds only its own protocol's connection: hyper-util's `auto`
//! connection is an enum sized for its HTTP/2 variant, which every idle HTTP/1 stream (SSE)
//! carried (docs/PERFORMANCE.md, "Idle SSE memory").

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// What an h2c client sends first (RFC 9113 §3.4); an HTTP/1 request never starts so.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits
/// up to `http.shutdown_grace_ms` for open connections to finish their requests.
///
/// Per connection: request headers must arrive within `http.header_read_timeout_ms` and fit
/// in `http.max_header_bytes` (HTTP/1.1: the connection is closed; HTTP/2: the header list
/// is refused); idle keep-alive connections are closed on shutdown.
pub async fn serve(listener: TcpListener, router: Router, config: &HttpConfig, shutdown: impl Future<Output = ()>) {
    let header_read_timeout = Duration::from_millis(config.header_read_timeout_ms);
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX).max(8192))
        .max_headers(100);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    // One pointer per connection task, whichever protocol it speaks.
    let builders = Arc::new((h1, h2));
    // `true` asks every connection to finish its requests and close; each task holds a
    // receiver until its connection ends, so `closed()` tells when all are gone.
    let (drain, _) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            req
        });
        let service = TowerToHyperService::new(service);
        let mut drained = drain.subscribe();
        let builders = builders.clone();
        tokio::spawn(async move {
            let is_h2 = tokio::select! {
                sniffed = tokio::time::timeout(header_read_timeout, is_h2c(&stream)) => match sniffed {
                    Ok(Ok(Some(is_h2))) => is_h2,
                    // Closed, failed, or too slow before a request: nothing to answer.
                    _ => return,
                },
                _ = drained.wait_for(|d| *d) => return,
            };
            let io = TokioIo::new(stream);
            let result = if is_h2 {
                // Boxed: the HTTP/2 connection is much larger, and without the box every
                // HTTP/1 connection's task would be sized for it.
                let conn = builders.1.serve_connection(io, service);
                Box::pin(until_drained(conn, drained, |c| c.graceful_shutdown())).await
            } else {
                let conn = builders.0.serve_connection(io, service).with_upgrades();
                until_drained(conn, drained, |c| c.graceful_shutdown()).await
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, client.addr = %remote, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let _ = drain.send(true);
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    tokio::select! {
        () = drain.closed() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), "grace period over; closing remaining connections");
        }
    }
}

/// Whether the client opens with the h2c preface (`Some(true)`) or anything else
/// (`Some(false)`: HTTP/1); `None` if it closes first. Only peeks: hyper reads the bytes.
async fn is_h2c(stream: &TcpStream) -> std::io::Result<Option<bool>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(false));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(true));
        }
        // A part of the preface so far: peeking again at once would see the same bytes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `conn` to its end; once `drained` turns true, asks it (`graceful_shutdown`) to
/// finish its requests in flight and close.
async fn until_drained<C, E>(
    conn: C,
    mut drained: watch::Receiver<bool>,
    graceful_shutdown: fn(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = drained.wait_for(|d| *d) => {}
    }
    graceful_shutdown(conn.as_mut());
    conn.await
}
