//! Instructions per request log line, tracing-subscriber's JSON format against orderly's
//! (src/telemetry/json.rs): the request span with its four fields, the later `route` record,
//! the "request handled" event, the span's close; lines go to a sink. See bench/logline.sh.
#[path = "../../../src/telemetry/json.rs"]
mod json;

use std::io;
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Clone, Copy)]
struct Sink;
impl io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        std::hint::black_box(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn request(i: u64) {
    let id = format!("0193c5a1-7b2e-7c3d-9e4f-{i:012x}");
    let span = tracing::info_span!(target: "orderly::telemetry::local", "http", method = "GET", route = Empty, request_id = id.as_str(), user.id = Empty);
    let _g = span.enter();
    span.record("route", "/api/v1/products/{id}");
    tracing::info!(target: "orderly::http", status = 200u16, duration_ms = 0.123456, "request handled");
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let fmt = tracing_subscriber::fmt::layer().with_writer(|| Sink);
    let layer: Box<dyn Layer<_> + Send + Sync> = match which.as_str() {
        "library" => fmt.json().flatten_event(true).with_current_span(true).with_span_list(false).with_filter(EnvFilter::new("info")).boxed(),
        "orderly" => fmt.fmt_fields(json::JsonFields).event_format(json::JsonLine).with_filter(EnvFilter::new("info")).boxed(),
        _ => panic!("library | orderly"),
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            request(i);
        }
    });
}
