//! OpenTelemetry traces: the `tracing-opentelemetry` layer, OTLP export, and W3C
//! `traceparent` propagation in (the request span's parent) and out (payment gateway calls).
//!
//! Configured only by the standard `OTEL_*` variables:
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns export on;
//!   `OTEL_EXPORTER_OTLP_PROTOCOL` picks `grpc` or `http/protobuf` (the default, as the
//!   specification says), `OTEL_EXPORTER_OTLP_HEADERS` / `_TIMEOUT` are read by the exporter;
//! - `OTEL_SERVICE_NAME` (default `orderly`) and `OTEL_RESOURCE_ATTRIBUTES` name the service;
//! - `OTEL_TRACES_SAMPLER` / `_ARG` choose sampling (default: parent-based, always on);
//! - `OTEL_BSP_*` tune the batch processor (`OTEL_BSP_SCHEDULE_DELAY` in milliseconds);
//! - `OTEL_SDK_DISABLED=true` removes the layer altogether (no propagation either).
//!
//! Without an endpoint the layer still runs with a sampler that records nothing of its own
//! (parent-based, off for roots), so trace ids are continued and passed on to the gateway
//! even when this process exports nothing: another hop can.
//!
//! The cost on the hot path: the layer builds an OpenTelemetry span for every `tracing` span
//! it sees (about 16 µs per request, bench/). A request span that can neither be exported
//! (no exporter) nor continue a trace (no `traceparent`) is created under the target
//! [`LOCAL_SPANS`], which the layer ignores: see [`traced`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets, filter_fn};
use tracing_subscriber::{Layer, Registry};

/// The provider, kept so [`shutdown`] can flush it. Set once, by the first `init`.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// The one propagator we speak: W3C Trace Context (`traceparent`, `tracestate`).
static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();

/// Whether spans are exported (set once, when the provider is built with an exporter).
static EXPORTING: AtomicBool = AtomicBool::new(false);

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The target of request spans the OpenTelemetry layer skips: those of requests that carry
/// no `traceparent` while nothing is exported. They are still logged like any other span.
pub const LOCAL_SPANS: &str = "orderly::http::local";

/// Whether a request with `headers` needs an OpenTelemetry span: spans are exported, or
/// the caller sent a trace to continue. Otherwise create its span under [`LOCAL_SPANS`].
pub fn traced(headers: &HeaderMap) -> bool {
    EXPORTING.load(Ordering::Relaxed) || headers.contains_key(TRACEPARENT)
}

/// Whether `span` (a request span) was created for OpenTelemetry, as [`traced`] decided.
pub fn is_traced(span: &tracing::Span) -> bool {
    span.metadata().is_some_and(|m| m.target() != LOCAL_SPANS)
}

fn propagator() -> &'static TraceContextPropagator {
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether spans are to be exported: an OTLP endpoint is configured and not switched off.
pub fn export_configured() -> bool {
    (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !env_is("OTEL_TRACES_EXPORTER", "none")
}

/// The OpenTelemetry layer for the global subscriber, or `None` when `OTEL_SDK_DISABLED`.
/// Builds the provider on first use; the exporter needs a tokio runtime (gRPC), so without
/// one export is skipped with a warning on stderr.
pub(super) fn layer() -> Option<Box<dyn Layer<Registry> + Send + Sync>> {
    if env_is("OTEL_SDK_DISABLED", "true") {
        return None;
    }
    let provider = PROVIDER.get_or_init(build_provider).clone();
    let tracer = provider.tracer("orderly");
    // Our spans at info and above; the exporter's own HTTP/gRPC stack never, or every
    // export would produce spans to export.
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
        .with_target(LOCAL_SPANS, LevelFilter::OFF);
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            // Spans, and events only at WARN or worse: turning every info event (one per
            // request) into a span event cost ~20 µs of CPU per request (bench/).
            .with_filter(filter.and(filter_fn(|m| m.is_span() || *m.level() <= tracing::Level::WARN)))
            .boxed(),
    )
}

fn resource() -> Resource {
    let builder =
        Resource::builder().with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    // `Resource::builder` already read OTEL_SERVICE_NAME; only fill in when it is absent.
    if env_set("OTEL_SERVICE_NAME") { builder.build() } else { builder.with_service_name("orderly").build() }
}

fn build_provider() -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder().with_resource(resource());
    if !export_configured() {
        return builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))).build();
    }
    if tokio::runtime::Handle::try_current().is_err() {
        eprintln!("orderly: OTLP export needs the async runtime at start-up; spans will not be exported");
        return builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))).build();
    }
    match opentelemetry_otlp::SpanExporter::builder().build() {
        // The sampler comes from OTEL_TRACES_SAMPLER (default parent-based, always on).
        Ok(exporter) => {
            EXPORTING.store(true, Ordering::Relaxed);
            builder.with_batch_exporter(exporter).build()
        }
        Err(e) => {
            eprintln!("orderly: cannot build the OTLP span exporter ({e}); spans will not be exported");
            builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))).build()
        }
    }
}

/// Flushes pending spans and stops the exporter (waits at most 5 s). Call once, outside
/// any async task, before the runtime shuts down; later calls do nothing useful.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && export_configured()
        && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
    {
        eprintln!("orderly: flushing spans failed: {e}");
    }
}

/// Makes `span` continue the trace named by the request's `traceparent` header, if any and
/// well-formed. Call right after creating the span, before it is entered.
pub fn set_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = propagator().extract(&HeaderExtractor(headers));
    // Fails only without the layer (OTEL_SDK_DISABLED): nothing to continue then.
    let _ = span.set_parent(cx);
}

/// Adds `traceparent` (and `tracestate`) for the current span to outbound `headers`.
pub fn inject_context(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    propagator().inject_context(&cx, &mut HeaderInjector(headers));
}
