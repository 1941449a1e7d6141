use std::io;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::{JsonFields, JsonLine};

/// Collects everything written to it.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

impl Buf {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }
}

/// What the application logs per request, plus the awkward values: escapes, control
/// characters, non-ASCII, a raw identifier, a float, a bool, a display value, an error.
fn log_a_request() {
    let span = tracing::info_span!(
        "http",
        method = "GET",
        route = tracing::field::Empty,
        request_id = "r-1",
        user.id = tracing::field::Empty
    );
    let _g = span.enter();
    span.record("route", "/api/v1/products/{id}");
    span.record("user.id", tracing::field::display("0193-abc"));
    tracing::info!(status = 200u16, duration_ms = 0.25, "request handled");
    let err = io::Error::other("disk \"full\"\n\u{1b}[31m");
    tracing::warn!(error = %err, r#type = "x", ok = true, n = -3i64, text = "tab\there, é ✓ \\ \u{7}", "slow: {}", 42);
    drop(_g);
    tracing::error!(big = u64::MAX, nan = f64::NAN, "outside any span");
}

fn ours() -> Vec<Value> {
    let buf = Buf::default();
    let layer = tracing_subscriber::fmt::layer().with_writer(buf.clone()).fmt_fields(JsonFields).event_format(JsonLine);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log_a_request);
    buf.lines()
}

fn the_librarys() -> Vec<Value> {
    let buf = Buf::default();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(buf.clone())
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log_a_request);
    buf.lines()
}

fn without_timestamp(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("timestamp");
    v
}

#[test]
fn each_line_has_the_same_keys_and_values_as_the_librarys_json_format() {
    let (ours, theirs) = (ours(), the_librarys());
    assert_eq!(ours.len(), 3);
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.into_iter().zip(theirs) {
        let ts = a["timestamp"].as_str().unwrap().to_owned();
        assert_eq!(ts.len(), b["timestamp"].as_str().unwrap().len(), "same timestamp format: {ts}");
        // The library writes NaN as null too; only the timestamp differs.
        assert_eq!(without_timestamp(a), without_timestamp(b));
    }
}

#[test]
fn a_request_line_carries_the_event_and_the_spans_fields_recorded_after_it_was_created() {
    let line = &ours()[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "request handled");
    assert_eq!(line["status"], 200);
    assert_eq!(line["duration_ms"], 0.25);
    assert_eq!(line["target"], module_path!());
    assert_eq!(
        line["span"],
        json!({ "name": "http", "method": "GET", "request_id": "r-1", "route": "/api/v1/products/{id}", "user.id": "0193-abc" })
    );
    let ts = line["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "RFC 3339: {ts}");
}

#[test]
fn strings_are_escaped_so_no_control_character_reaches_the_output() {
    let buf = Buf::default();
    let layer = tracing_subscriber::fmt::layer().with_writer(buf.clone()).fmt_fields(JsonFields).event_format(JsonLine);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log_a_request);
    let raw = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(raw.lines().count(), 3);
    assert!(raw.lines().all(|l| !l.bytes().any(|b| b < 0x20)), "{raw}");
    assert!(raw.contains(r#""error":"disk \"full\"\n\u001b[31m""#), "{raw}");
    assert_eq!(buf.lines()[1]["text"], "tab\there, é ✓ \\ \u{7}");
    assert_eq!(buf.lines()[1]["type"], "x");
}

#[test]
fn timestamps_are_rfc_3339_utc_with_microseconds_as_chrono_writes_them() {
    use std::time::{Duration, UNIX_EPOCH};
    let instants = [0, 951_782_400, 1_709_251_199, 1_764_750_000, 4_102_444_800, 253_402_300_799];
    for secs in instants {
        for micros in [0, 1, 999_999] {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            let mut ours = String::new();
            super::timestamp(&mut ours, t);
            let chrono = chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(ours, chrono);
        }
    }
}
