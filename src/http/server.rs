//! The HTTP server loop: hyper's auto (HTTP/1.1 + h2c) connection builder, so that limits
//! axum's `serve` does not expose can be set — how long a client may take to send its
//! request headers (slowloris), how large the headers may be — and a graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits
/// up to `http.shutdown_grace_ms` for open connections to finish their requests.
///
/// Per connection: request headers must arrive within `http.header_read_timeout_ms` and fit
/// in `http.max_header_bytes` (HTTP/1.1: the connection is closed; HTTP/2: the header list
/// is refused); idle keep-alive connections are closed on shutdown.
pub async fn serve(listener: TcpListener, router: Router, config: &HttpConfig, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms))
        .max_buf_size(usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX).max(8192))
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
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
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client.addr = %remote, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), "grace period over; closing remaining connections");
        }
    }
}
