//! Telemetry in one place: the global `tracing` subscriber, with
//! - logs: human-readable on a terminal and JSON lines elsewhere (or as `log.format` says);
//!   `RUST_LOG` overrides `log.filter`;
//! - traces: an OpenTelemetry layer (see [`otel`]) that continues incoming W3C `traceparent`
//!   headers, injects them into outbound calls, and exports spans over OTLP when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! JSON lines are formatted by [`json`] (the keys of tracing-subscriber's JSON format at a
//! fraction of its cost). Log lines go through [`log_writer`]: formatted on the request's thread, written to stderr
//! in batches by a background thread (bounded, lossy with a counter, flushed by [`shutdown`]).
//!
//! Metrics live in `crate::metrics`. Span fields use dotted names with units
//! (`order.id`, `duration_ms`); secrets (tokens, passwords, card numbers) are never fields.

pub mod json;
pub mod log_writer;
pub mod otel;

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

use self::log_writer::LogSink;
pub use otel::{LOCAL_SPANS, inject_context, is_traced, set_remote_parent, traced};

/// The sink of the installed subscriber's log layer, kept so [`shutdown`] can flush it.
static SINK: OnceLock<LogSink> = OnceLock::new();

/// PostgreSQL's NOTICE messages (`relation "_sqlx_migrations" already exists, skipping` on
/// every start) are client noise, not events: they are logged only from WARNING up, unless
/// the filter says something about `sqlx` itself.
fn quiet_database_notices(directives: &str) -> String {
    if directives.contains("sqlx") {
        directives.to_owned()
    } else {
        format!("{directives},sqlx::postgres::notice=warn")
    }
}

/// Installs the global subscriber; later calls are no-ops (tests build many apps).
///
/// Call it inside the tokio runtime (e.g. under `Runtime::enter`) so the OTLP exporter can
/// be built; call [`shutdown`] before the runtime goes away to flush the last spans.
pub fn init(config: &LogConfig) {
    let directives = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| config.filter.clone());
    let filter = EnvFilter::new(quiet_database_notices(&directives));
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let sink = SINK.get_or_init(LogSink::start).clone();
    let fmt = tracing_subscriber::fmt::layer().with_writer(sink).with_span_events(FmtSpan::NONE);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if json {
        // The library's JSON line with the same keys, written without re-parsing span fields.
        fmt.fmt_fields(json::JsonFields).event_format(json::JsonLine).with_filter(filter).boxed()
    } else {
        fmt.compact().with_filter(filter).boxed()
    };
    // The log filter applies to the log layer only: spans the log level hides still carry
    // the trace context to outbound calls and to the exporter.
    let mut layers = vec![fmt];
    layers.extend(otel::layer());
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// Flushes the last spans to the exporter and the last log lines to stderr. Call once,
/// outside any async task, before the runtime shuts down; later log lines are written to
/// stderr directly.
pub fn shutdown() {
    otel::shutdown();
    if let Some(sink) = SINK.get() {
        sink.close();
    }
}

/// Log lines dropped so far because stderr could not keep up (see [`log_writer`]).
pub fn dropped_log_lines() -> u64 {
    SINK.get().map_or(0, LogSink::dropped_lines)
}
