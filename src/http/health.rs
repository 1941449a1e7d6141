//! `/healthz`: the process is alive. `/readyz`: it can serve (database reachable, not
//! draining for shutdown), for load balancers and Kubernetes probes. Redis, the catalog
//! cache (`ok`, `degraded` while Redis is down, `off`), the payment provider's circuit
//! breaker and the event bus (`bus`: `ok` for the in-process bus; with NATS, `ok` while
//! connected, `unavailable` otherwise) and file storage (`storage`: `backend` `local` or
//! `s3`) are reported but never turn the replica unready.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use object_store::ObjectStoreExt;

use crate::outbound::BreakerState;
use crate::services::AppState;

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
}

pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize)]
pub struct Readiness {
    status: &'static str,
    checks: Vec<Check>,
    /// Feature flags in force in this process (key → on/off).
    flags: std::collections::BTreeMap<&'static str, bool>,
}

#[derive(Serialize)]
pub struct Check {
    name: &'static str,
    status: &'static str,
    latency_ms: f64,
    /// For `payments`: the circuit breaker's state (`closed`, `open`, `half_open`).
    #[serde(skip_serializing_if = "Option::is_none")]
    breaker: Option<&'static str>,
    /// For `bus`: which bus carries events (`in-process`, `nats`); for `storage`: which store
    /// holds files (`local`, `s3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let started = Instant::now();
    let db_ok = state.db.ping().await.is_ok();
    let mut checks = vec![Check {
        name: "database",
        status: if db_ok { "ok" } else { "unavailable" },
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        breaker: None,
        backend: None,
    }];
    if let Some(redis) = state.limits.redis() {
        // Reported, but not a reason to turn unready: without Redis, limits fall back to
        // each process and only login refuses (docs/OPERATIONS.md, "Rate limits").
        let started = Instant::now();
        let up = redis.ping().await.is_ok();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        checks.push(Check {
            name: "redis",
            status: if up { "ok" } else { "unavailable" },
            latency_ms,
            breaker: None,
            backend: None,
        });
    }
    if let Some(breaker) = state.payments.breaker_state() {
        // Reported, not a reason to turn unready: every replica shares the provider, so taking
        // this one out of the load balancer would not help; checkout answers 503 meanwhile.
        let status = match breaker {
            BreakerState::Closed => "ok",
            BreakerState::HalfOpen => "recovering",
            BreakerState::Open => "unavailable",
        };
        checks.push(Check {
            name: "payments",
            status,
            latency_ms: 0.0,
            breaker: Some(breaker.as_str()),
            backend: None,
        });
    }
    // Never a reason to turn unready: with Redis down, reads fall back to the database.
    let started = Instant::now();
    let cache = state.catalog.cache.state().await;
    checks.push(Check {
        name: "cache",
        status: cache,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        breaker: None,
        backend: None,
    });
    // Never a reason to turn unready: with NATS down, checkout still commits and its events
    // wait in the outbox until the relay can publish them.
    let (backend, bus) = match &state.nats {
        None => ("in-process", "ok"),
        Some(nats) => ("nats", if nats.is_connected() { "ok" } else { "unavailable" }),
    };
    checks.push(Check { name: "bus", status: bus, latency_ms: 0.0, breaker: None, backend: Some(backend) });
    // Never a reason to turn unready: without file storage only image uploads and downloads
    // fail. A `head` of a key that never exists is the cheapest round trip (S3: one request).
    let started = Instant::now();
    let probe = object_store::path::Path::from("readyz-probe");
    let reachable = tokio::time::timeout(std::time::Duration::from_secs(2), state.storage.store().head(&probe)).await;
    let storage = match reachable {
        Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => "ok",
        _ => "unavailable",
    };
    checks.push(Check {
        name: "storage",
        status: storage,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        breaker: None,
        backend: Some(state.storage.backend()),
    });
    let draining = state.is_draining();
    if draining {
        checks.push(Check { name: "shutdown", status: "draining", latency_ms: 0.0, breaker: None, backend: None });
    }
    let ok = db_ok && !draining;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let flags = state.flags.snapshot().into_iter().map(|f| (f.key, f.enabled)).collect();
    (status, Json(Readiness { status: if ok { "ready" } else { "unready" }, checks, flags }))
}
