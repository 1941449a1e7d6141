//! The JSON log line, written straight into tracing-subscriber's line buffer: a
//! [`FormatEvent`] ([`JsonLine`]) and a [`FormatFields`] ([`JsonFields`]) for its fmt layer.
//!
//! The line has the fields of tracing-subscriber's own JSON format as configured before
//! (`.json().flatten_event(true).with_current_span(true).with_span_list(false)`), so log
//! pipelines see the same keys:
//!
//! ```text
//! {"timestamp":"2026-12-03T08:19:18.123456Z","level":"INFO","message":"request handled",
//!  "status":200,"duration_ms":0.21,"target":"orderly::http",
//!  "span":{"method":"GET","request_id":"…","route":"/api/v1/products/{id}","name":"http"}}
//! ```
//!
//! (one line; `timestamp` is RFC 3339 UTC with microseconds; the event's fields are flattened
//! into the line; `span` is the current span's fields and its `name`; a `log` crate record
//! has its `log.target` as `target`). What differs is the cost: the library's formatter keeps
//! a span's fields as a JSON object that it parses again for every line and every later
//! `record`, and writes through a UTF-8-checking `io::Write` adaptor (about 37,000
//! instructions per request line, see docs/PERFORMANCE.md). Here a span's fields are kept as
//! a rendered JSON fragment (`"k":v,"k2":v2`, no braces), a later `record` appends to it, and
//! the line copies it as is. Span fields keep the order they were recorded in (the library
//! sorted them); a field recorded twice appears twice (JSON readers keep the last).
//!
//! Strings are escaped as RFC 8259 §7 requires (`"`, `\` and control characters), which also
//! keeps ANSI escape sequences out of the output.

use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// Where a line (or a new span's fields) is put together before one copy into
    /// tracing-subscriber's writer: each small write is then a push onto a `String`, not a
    /// call through the writer's `dyn fmt::Write`.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` on this thread's scratch buffer (cleared), or on a new `String` if the buffer is
/// in use (a `Debug` value that logs while it is being formatted), then writes the result.
fn with_scratch(writer: &mut Writer<'_>, f: impl FnOnce(&mut String) -> fmt::Result) -> fmt::Result {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            f(&mut buf)?;
            let r = writer.write_str(&buf);
            if buf.capacity() > 64 << 10 {
                *buf = String::new();
            }
            r
        }
        Err(_) => {
            let mut buf = String::new();
            f(&mut buf)?;
            writer.write_str(&buf)
        }
    })
}

/// Formats span fields as a JSON object's members without the braces (`"a":1,"b":"x"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        with_scratch(&mut writer, |buf| {
            let mut visitor = Members::new(buf, true);
            fields.record(&mut visitor);
            visitor.result
        })
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut visitor = Members::new(&mut current.fields, first);
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Formats an event as one JSON line (see the module documentation for its keys).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let span = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        with_scratch(&mut writer, |out| {
            out.push_str("{\"timestamp\":\"");
            timestamp(out, std::time::SystemTime::now());
            out.push_str("\",\"level\":\"");
            out.push_str(meta.level().as_str());
            out.push('"');
            let mut visitor = Members::new(out, false);
            visitor.log_target = Some(None);
            event.record(&mut visitor);
            visitor.result?;
            let log_target = visitor.log_target.flatten();
            out.push_str(",\"target\":");
            string(out, log_target.as_deref().unwrap_or(meta.target()));
            if let Some(span) = &span {
                let ext = span.extensions();
                out.push_str(",\"span\":{");
                if let Some(fields) = ext.get::<FormattedFields<JsonFields>>()
                    && !fields.fields.is_empty()
                {
                    out.push_str(&fields.fields);
                    out.push(',');
                }
                out.push_str("\"name\":");
                string(out, span.name());
                out.push('}');
            }
            out.push_str("}\n");
            Ok(())
        })
    }
}

/// Writes `t` as RFC 3339 in UTC with microseconds (`2026-12-03T08:19:18.123456Z`), the
/// format of tracing-subscriber's `SystemTime` timer, without the `fmt` machinery. Times
/// before 1970 are written as 1970-01-01T00:00:00.000000Z (a clock that far off is broken).
fn timestamp(out: &mut String, t: std::time::SystemTime) {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
    // Algorithms", days_from_civil's inverse), for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3_600);
    put(14, 2, rem % 3_600 / 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&buf).unwrap_or("1970-01-01T00:00:00.000000Z"));
}

/// Writes each visited field as a JSON member, preceded by a comma unless it is the first.
struct Members<'a> {
    out: &'a mut String,
    first: bool,
    result: fmt::Result,
    /// `Some` for events: the value of a `log` record's `log.target` field, if any.
    log_target: Option<Option<String>>,
}

impl<'a> Members<'a> {
    fn new(out: &'a mut String, first: bool) -> Self {
        Self { out, first, result: Ok(()), log_target: None }
    }

    /// Writes `"name":` (with the separator), or returns false after an earlier error.
    fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        string(self.out, name);
        self.out.push(':');
        true
    }
}

impl Visit for Members<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            // JSON has no NaN or infinity (serde_json writes null too); ryu is what
            // serde_json formats floats with.
            let mut buf = ryu::Buffer::new();
            self.out.push_str(if value.is_finite() { buf.format_finite(value) } else { "null" });
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            self.out.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            self.out.push_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.out.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(target) = self.log_target.as_mut()
            && field.name() == "log.target"
        {
            *target = Some(value.to_owned());
        }
        if self.key(field) {
            string(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(target) = self.log_target.as_mut()
            && field.name() == "log.target"
        {
            *target = Some(format!("{value:?}"));
        }
        if self.key(field) {
            self.out.push('"');
            self.result = write!(Escaped(self.out), "{value:?}");
            self.out.push('"');
        }
    }
}

/// Writes `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// For each byte: 0 if it goes into a JSON string as is, else the character after the
/// backslash of its escape (`u` for `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` escaped for the inside of a JSON string (RFC 8259 §7).
fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            continue;
        }
        // Every byte escaped is ASCII, so `i` is on a character boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        out.push(char::from(esc));
        if esc == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// A writer that escapes what goes through it for the inside of a JSON string.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
