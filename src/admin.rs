//! The admin listener (`admin.addr`, default `127.0.0.1:9464`): operator endpoints kept off
//! the public port so they are never exposed by accident.
//!
//! - `GET /metrics`: Prometheus text exposition (see `crate::metrics` and docs/OPERATIONS.md);
//! - `GET /debug/pprof/profile?seconds=N`: a CPU profile (see [`pprof`]).
//!
//! No authentication: bind it to loopback or a private network only.

pub mod pprof;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::services::AppState;

/// The admin routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/debug/pprof/profile", get(pprof::profile))
        .fallback(|| async { Error::NotFound("route") })
        .with_state(state)
}

/// Serves the admin routes on `listener` until the task is aborted (with the application).
pub async fn serve(listener: TcpListener, state: AppState) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Content type of the Prometheus text format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(state): State<AppState>) -> Response {
    // Bounded: a slow database must not hold the scrape past Prometheus' own timeout.
    let _ = tokio::time::timeout(Duration::from_secs(2), crate::events::relay::refresh_lag_gauge(&state.db)).await;
    match crate::metrics::render(&state.db) {
        Some(body) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, "another metrics recorder is installed in this process\n").into_response()
        }
    }
}
