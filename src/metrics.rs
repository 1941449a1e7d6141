//! Prometheus metrics: the process-wide recorder, every metric's name and help text, and the
//! small functions the rest of the code calls to record. Rendered by `GET /metrics` on the
//! admin listener (`crate::admin`), never on the public port.
//!
//! Naming follows Prometheus conventions: base units (`_seconds`), `_total` for counters,
//! labels from small closed sets. HTTP metrics are labelled by the route *template*
//! (`/api/v1/products/{id}`), never the raw path; a request no route matched is `unmatched`.
//! Label values are interned `&'static str`s, so recording allocates no label strings; the
//! per-request HTTP series are resolved once per route and status, not per request
//! (see [`http`]).

mod http;

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use ::metrics::{Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::Db;

pub use self::http::{TagRouteLayer, TrackHttpLayer};

pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "http_requests_in_flight";
pub const GRPC_REQUESTS: &str = "orderly_grpc_requests_total";
pub const GRPC_DURATION: &str = "orderly_grpc_request_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
pub const DB_POOL_MAX: &str = "db_pool_max_connections";
pub const ORDERS_PLACED: &str = "orderly_orders_placed_total";
pub const SAGA_OUTCOMES: &str = "orderly_saga_outcomes_total";
pub const GATEWAY_CALLS: &str = "orderly_payment_gateway_calls_total";
pub const GATEWAY_DURATION: &str = "orderly_payment_gateway_call_duration_seconds";
pub const BREAKER_STATE: &str = "orderly_outbound_breaker_state";
pub const OUTBOUND_RETRIES: &str = "orderly_outbound_retries_total";
pub const OUTBOUND_SHED: &str = "orderly_outbound_shed_total";
pub const RATE_LIMITED: &str = "orderly_rate_limit_rejections_total";
pub const BUILD_INFO: &str = "orderly_build_info";
pub const LOG_LINES_DROPPED: &str = "orderly_log_lines_dropped_total";
pub const CACHE_HITS: &str = "orderly_cache_hits_total";
pub const CACHE_MISSES: &str = "orderly_cache_misses_total";
pub const CACHE_EVICTIONS: &str = "orderly_cache_evictions_total";
pub const CACHE_REDIS_ERRORS: &str = "orderly_cache_redis_errors_total";
pub const OUTBOX_LAG: &str = "orderly_outbox_lag_seconds";
pub const OUTBOX_PUBLISHED: &str = "orderly_outbox_published_total";
pub const OUTBOX_PUBLISH_ERRORS: &str = "orderly_outbox_publish_errors_total";

/// The `route` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets for latencies, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// How often histogram samples are folded into buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first call and returns its handle (the same one on
/// later calls). `None` if another recorder was installed first (when embedding orderly).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty"))
                .ok()?;
            // HELP lines exist only for metrics described after the recorder is installed.
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "profile" => PROFILE).set(1.0);
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        })
        .as_ref()
}

const PROFILE: &str = if cfg!(debug_assertions) { "debug" } else { "release" };

fn describe() {
    describe_counter!(HTTP_REQUESTS, Unit::Count, "HTTP requests answered, by method, route template and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from receiving an HTTP request to its response headers, in seconds, by method, route template and status."
    );
    describe_gauge!(HTTP_IN_FLIGHT, Unit::Count, "HTTP requests being handled right now.");
    describe_counter!(
        GRPC_REQUESTS,
        Unit::Count,
        "gRPC calls finished, by method (`/orderly.v1.CatalogService/GetProduct`, or `unknown`) and status code name."
    );
    describe_histogram!(
        GRPC_DURATION,
        Unit::Seconds,
        "Time from receiving a gRPC call to its status (the end of a stream), in seconds, by method and status code name."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        Unit::Count,
        "Open database connections by state (idle, used), sampled at scrape time."
    );
    describe_gauge!(DB_POOL_MAX, Unit::Count, "The database pool's maximum size (database.max_connections).");
    describe_counter!(ORDERS_PLACED, Unit::Count, "Orders placed (stock reserved), by currency.");
    describe_counter!(
        SAGA_OUTCOMES,
        Unit::Count,
        "Checkout saga endings by outcome: paid, declined (left payable), rejected, shed (payments unavailable), \
         compensated, unknown (left to recovery), recovered_declined, \
         recovered_paid, recovered_failed."
    );
    describe_counter!(
        GATEWAY_CALLS,
        Unit::Count,
        "Payment gateway calls by operation (charge, lookup, void, refund, refund_amount) and result."
    );
    describe_histogram!(GATEWAY_DURATION, Unit::Seconds, "Payment gateway call latency in seconds, by operation.");
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state of an outbound dependency (e.g. payments): 0 closed, 1 open, 2 half-open."
    );
    describe_counter!(OUTBOUND_RETRIES, Unit::Count, "Retried attempts of outbound calls, by dependency.");
    describe_counter!(
        OUTBOUND_SHED,
        Unit::Count,
        "Outbound calls not sent, by dependency and reason (breaker_open, saturated)."
    );
    describe_counter!(RATE_LIMITED, Unit::Count, "Requests refused by a rate limit, by limit.");
    describe_counter!(
        LOG_LINES_DROPPED,
        Unit::Count,
        "Log lines dropped because stderr could not keep up with them (the log buffer was full)."
    );
    describe_counter!(
        CACHE_HITS,
        Unit::Count,
        "Catalog cache hits by cache (product, product_list, categories) and tier (local, redis)."
    );
    describe_counter!(CACHE_MISSES, Unit::Count, "Catalog cache misses by cache and tier (local, redis).");
    describe_counter!(
        CACHE_EVICTIONS,
        Unit::Count,
        "In-process catalog cache entries evicted, by cache and cause (expired, size)."
    );
    describe_counter!(
        CACHE_REDIS_ERRORS,
        Unit::Count,
        "Failed or timed-out Redis calls of the catalog cache, by operation (get, put, invalidate, subscribe)."
    );
    describe_gauge!(
        OUTBOX_LAG,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row in seconds (0 when none waits), refreshed every second."
    );
    describe_counter!(OUTBOX_PUBLISHED, Unit::Count, "Outbox rows the relay of this process published.");
    describe_counter!(
        OUTBOX_PUBLISH_ERRORS,
        Unit::Count,
        "Relay rounds rolled back because the bus (NATS) or the database failed; their rows wait."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the labels name the running build (version, profile).");
}

/// The Prometheus text exposition of every metric, with the pool gauges sampled from `db`.
/// `None` when the recorder is not ours.
pub fn render(db: &Db) -> Option<String> {
    let handle = install()?;
    sample_db_pool(db);
    counter!(LOG_LINES_DROPPED).absolute(crate::telemetry::dropped_log_lines());
    Some(handle.render())
}

fn sample_db_pool(db: &Db) {
    let pool = db.pool();
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
    gauge!(DB_POOL_CONNECTIONS, "state" => "used").set(size - idle);
    gauge!(DB_POOL_MAX).set(pool.options().get_max_connections());
}

/// An order was placed (stock reserved) in `currency` (ISO 4217).
pub fn order_placed(currency: &str) {
    counter!(ORDERS_PLACED, "currency" => intern(currency)).increment(1);
}

/// A checkout saga ended (or was left to recovery) with `outcome`; see the HELP text.
pub fn saga_outcome(outcome: &'static str) {
    counter!(SAGA_OUTCOMES, "outcome" => outcome).increment(1);
}

/// One payment gateway call: `operation` (charge, lookup, void, refund, refund_amount), its `result`, and
/// how long it took.
pub fn gateway_call(operation: &'static str, result: &'static str, elapsed: Duration) {
    counter!(GATEWAY_CALLS, "operation" => operation, "result" => result).increment(1);
    histogram!(GATEWAY_DURATION, "operation" => operation).record(elapsed);
}

/// The circuit breaker of `dependency` is now in `state` (0 closed, 1 open, 2 half-open).
pub fn breaker_state(dependency: &'static str, state: u8) {
    gauge!(BREAKER_STATE, "dependency" => dependency).set(state);
}

/// An outbound call to `dependency` is being retried after a transient failure.
pub fn outbound_retry(dependency: &'static str) {
    counter!(OUTBOUND_RETRIES, "dependency" => dependency).increment(1);
}

/// An outbound call to `dependency` was not sent (`reason`: breaker_open, saturated).
pub fn outbound_shed(dependency: &'static str, reason: &'static str) {
    counter!(OUTBOUND_SHED, "dependency" => dependency, "reason" => reason).increment(1);
}

/// A request was refused by the rate limit named `limit` (e.g. `default`, `login`, `checkout`).
pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// The catalog caches and tiers, whose hit and miss counters are resolved once (see
/// [`cache_counter`]).
const CACHES: [&str; 3] = ["product", "product_list", "categories"];
const TIERS: [&str; 2] = ["local", "redis"];

/// The counter `name{cache, tier}`. A hit is on the cached read's hot path, so the handles
/// are looked up in the recorder once (on first use, after the recorder is installed at
/// start) rather than on every call; an unknown label pair falls back to a lookup.
fn cache_counter(name: &'static str, slot: &'static OnceLock<Vec<Counter>>, cache: &'static str, tier: &'static str) {
    let handles = slot.get_or_init(|| {
        CACHES.iter().flat_map(|&c| TIERS.iter().map(move |&t| counter!(name, "cache" => c, "tier" => t))).collect()
    });
    let at = CACHES.iter().position(|&c| c == cache).zip(TIERS.iter().position(|&t| t == tier));
    match at.and_then(|(c, t)| handles.get(c * TIERS.len() + t)) {
        Some(handle) => handle.increment(1),
        None => counter!(name, "cache" => cache, "tier" => tier).increment(1),
    }
}

/// A catalog cache hit in `tier` (`local` or `redis`).
pub fn cache_hit(cache: &'static str, tier: &'static str) {
    static HITS: OnceLock<Vec<Counter>> = OnceLock::new();
    cache_counter(CACHE_HITS, &HITS, cache, tier);
}

/// A catalog cache miss in `tier` (`local` or `redis`).
pub fn cache_miss(cache: &'static str, tier: &'static str) {
    static MISSES: OnceLock<Vec<Counter>> = OnceLock::new();
    cache_counter(CACHE_MISSES, &MISSES, cache, tier);
}

/// An in-process catalog cache entry was evicted (`expired` or `size`).
pub fn cache_eviction(cache: &'static str, cause: &'static str) {
    counter!(CACHE_EVICTIONS, "cache" => cache, "cause" => cause).increment(1);
}

/// A Redis call of the catalog cache failed or timed out.
pub fn cache_redis_error(op: &'static str) {
    counter!(CACHE_REDIS_ERRORS, "op" => op).increment(1);
}

/// The relay published `n` outbox rows.
pub fn outbox_published(n: usize) {
    counter!(OUTBOX_PUBLISHED).increment(n as u64);
}

/// A relay round was rolled back (bus or database failure).
pub fn outbox_publish_error() {
    counter!(OUTBOX_PUBLISH_ERRORS).increment(1);
}

/// The oldest unpublished outbox row is `age` old (zero when none waits).
pub fn outbox_lag(age: Duration) {
    gauge!(OUTBOX_LAG).set(age.as_secs_f64());
}

/// One finished gRPC call: `method` from a closed set (the served methods, or `unknown`),
/// `code` the status code's name (`OK`, `NOT_FOUND`, …), `elapsed` until its status.
pub fn grpc_call(method: &'static str, code: &'static str, elapsed: Duration) {
    counter!(GRPC_REQUESTS, "method" => method, "code" => code).increment(1);
    histogram!(GRPC_DURATION, "method" => method, "code" => code).record(elapsed);
}

static INTERNED: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();

/// A `'static` copy of a label value from a small closed set (route templates, status codes,
/// currencies), leaked once per distinct value. Never pass raw input: the set must stay small.
fn intern(s: &str) -> &'static str {
    let set = INTERNED.get_or_init(Default::default);
    if let Some(v) = set.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(s) {
        return v;
    }
    let mut w = set.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = w.get(s) {
        return v;
    }
    let v: &'static str = Box::leak(s.to_owned().into_boxed_str());
    w.insert(v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_labels_are_shared() {
        let a = intern(&String::from("/api/v1/products/{id}"));
        let b = intern("/api/v1/products/{id}");
        assert!(std::ptr::eq(a, b));
    }
}
