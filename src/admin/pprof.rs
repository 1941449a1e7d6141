//! `GET /debug/pprof/profile?seconds=N&format=pprof|flamegraph`: samples every thread's
//! stack at 99 Hz for `N` seconds (1..=60, default 10) and answers with
//! - `format=pprof` (default): the pprof protobuf, gzip-compressed, as Go's `net/http/pprof`
//!   serves it (`Content-Type: application/octet-stream`), for `go tool pprof` and other
//!   pprof readers;
//! - `format=flamegraph`: an SVG flame graph (`image/svg+xml`) to open in a browser.
//!
//! One profile at a time per process (the sampler is process-wide): a second request gets
//! 409 while one runs. Sampling uses `SIGPROF`; its cost is small at 99 Hz.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::pprof::protos::Message;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;

use crate::error::{Error, FieldError};
use crate::http::extract::Query;

/// Samples per second: not a multiple of common timer periods, as `perf` and Go advise.
const FREQUENCY_HZ: i32 = 99;
const DEFAULT_SECONDS: u64 = 10;
const MAX_SECONDS: u64 = 60;

static RUNNING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileParams {
    /// Sampling time in seconds, 1..=60.
    seconds: Option<String>,
    /// `pprof` (default) or `flamegraph`.
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Pprof,
    Flamegraph,
}

/// Marks the profiler busy for as long as it lives.
struct Busy;

impl Busy {
    fn claim() -> Option<Self> {
        RUNNING.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

fn parse(params: &ProfileParams) -> Result<(Duration, Format), Error> {
    let seconds = match params.seconds.as_deref() {
        None => DEFAULT_SECONDS,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            _ => {
                return Err(Error::Validation(vec![FieldError::new("seconds", "must be a whole number from 1 to 60")]));
            }
        },
    };
    let format = match params.format.as_deref() {
        None | Some("pprof") | Some("proto") => Format::Pprof,
        Some("flamegraph") | Some("svg") => Format::Flamegraph,
        Some(_) => {
            return Err(Error::Validation(vec![FieldError::new("format", "must be pprof or flamegraph")]));
        }
    };
    Ok((Duration::from_secs(seconds), format))
}

pub async fn profile(Query(params): Query<ProfileParams>) -> Result<Response, Error> {
    let (duration, format) = parse(&params)?;
    let Some(busy) = Busy::claim() else {
        return Err(Error::conflict(
            "profile-in-progress",
            "a CPU profile is already being taken; try again when it ends",
        ));
    };
    tracing::info!(duration_secs = duration.as_secs(), "CPU profile started");
    // The sampler's guard is not `Send`, and resolving symbols is CPU work: both belong on
    // a blocking thread.
    let body = tokio::task::spawn_blocking(move || {
        let _busy = busy;
        take(duration, format)
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("profiler task failed: {e}")))?
    .map_err(Error::Internal)?;
    let response = match format {
        Format::Pprof => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"profile.pb.gz\""),
            ],
            body,
        )
            .into_response(),
        Format::Flamegraph => ([(header::CONTENT_TYPE, "image/svg+xml")], body).into_response(),
    };
    Ok(response)
}

/// Samples for `duration` (blocking the calling thread) and encodes the result.
fn take(duration: Duration, format: Format) -> anyhow::Result<Vec<u8>> {
    let guard = ::pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY_HZ)
        // Unwinding through these from a signal handler can deadlock.
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| anyhow::anyhow!("starting the profiler: {e}"))?;
    std::thread::sleep(duration);
    let mut report = guard.report().build().map_err(|e| anyhow::anyhow!("building the profile: {e}"))?;
    drop(guard);
    without_sampler_frames(&mut report);
    match format {
        // An idle process yields no samples, which the flame graph library treats as an error.
        Format::Flamegraph if report.data.is_empty() => Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"40\"><text x=\"10\" y=\"25\">\
             No CPU samples in {} s: the process was idle.</text></svg>\n",
            duration.as_secs()
        )
        .into_bytes()),
        Format::Flamegraph => {
            let mut svg = Vec::new();
            report.flamegraph(&mut svg).map_err(|e| anyhow::anyhow!("drawing the flame graph: {e}"))?;
            Ok(svg)
        }
        Format::Pprof => {
            let proto = report.pprof().map_err(|e| anyhow::anyhow!("encoding the profile: {e}"))?;
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&proto.encode_to_vec())?;
            Ok(gz.finish()?)
        }
    }
}

/// Drops the sampler's own frames (`backtrace::trace`, …, `pprof::backtrace::…::trace`) from
/// the leaf end of every stack, so the leaf is the code that was interrupted and
/// `go tool pprof -top` shows real self time.
fn without_sampler_frames(report: &mut ::pprof::Report) {
    let is_sampler = |frame: &Vec<::pprof::Symbol>| frame.iter().any(|s| s.name().contains("pprof::backtrace"));
    let data = std::mem::take(&mut report.data);
    for (mut frames, count) in data {
        // frames[0] is the leaf; the sampler's frames sit within the first few.
        if let Some(last) = frames.frames.iter().take(8).rposition(is_sampler) {
            frames.frames.drain(..=last);
        }
        *report.data.entry(frames).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seconds: Option<&str>, format: Option<&str>) -> ProfileParams {
        ProfileParams { seconds: seconds.map(Into::into), format: format.map(Into::into) }
    }

    #[test]
    fn seconds_default_to_ten_and_stay_within_a_minute() {
        assert_eq!(parse(&params(None, None)).unwrap().0, Duration::from_secs(10));
        assert!(parse(&params(Some("0"), None)).is_err());
        assert!(parse(&params(Some("61"), None)).is_err());
        assert!(parse(&params(Some("x"), None)).is_err());
        assert!(parse(&params(Some("60"), Some("flamegraph"))).is_ok_and(|(_, f)| f == Format::Flamegraph));
        assert!(parse(&params(None, Some("png"))).is_err());
    }
}
