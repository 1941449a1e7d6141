//! Byte-range requests (RFC 9110 §14): which part of a representation of `len` bytes a
//! `Range` header (with its `If-Range` precondition, §13.1.5) asks for. orderly serves one
//! range at a time: a single satisfiable range is a 206; a request of several ranges of
//! which any is satisfiable gets the whole representation (200), as §14.2 allows a server
//! to ignore `Range`; none satisfiable is a 416. A malformed header or another unit is
//! ignored (§14.2), and so is `Range` when `If-Range` does not match.

use std::ops::Range;

use axum::http::{HeaderMap, header};

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// The whole representation (200).
    Full,
    /// These bytes, half-open, non-empty, within `0..len` (206 with `Content-Range`).
    Partial(Range<u64>),
    /// Nothing satisfiable (416 with `Content-Range: bytes */len`).
    Unsatisfiable,
}

/// Evaluates `Range` and `If-Range` from `headers` against a representation of `len` bytes
/// whose strong entity tag is `etag` (quotes included).
pub fn evaluate(headers: &HeaderMap, len: u64, etag: &str) -> Ranged {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ranged::Full };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        // Only a strong tag can match (§13.1.5); a date cannot, as no Last-Modified is sent.
        if if_range.as_bytes() != etag.as_bytes() {
            return Ranged::Full;
        }
    }
    parse(range, len)
}

/// The `Range` header value alone; see [`evaluate`].
pub fn parse(value: &str, len: u64) -> Ranged {
    let value = value.trim_matches([' ', '\t']);
    let Some((unit, set)) = value.split_once('=') else { return Ranged::Full };
    if !unit.eq_ignore_ascii_case("bytes") {
        return Ranged::Full;
    }
    let mut specs = Vec::new();
    for spec in set.split(',').map(|s| s.trim_matches([' ', '\t'])).filter(|s| !s.is_empty()) {
        match spec_of(spec) {
            Some(s) => specs.push(s),
            None => return Ranged::Full,
        }
    }
    let satisfiable: Vec<Range<u64>> = specs.iter().filter_map(|s| s.resolve(len)).collect();
    match (specs.len(), satisfiable.len()) {
        (0, _) => Ranged::Full,
        (_, 0) => Ranged::Unsatisfiable,
        (1, 1) => satisfiable.into_iter().next().map_or(Ranged::Full, Ranged::Partial),
        _ => Ranged::Full,
    }
}

/// `Content-Range` for a 206: `bytes first-last/len`.
pub fn content_range(range: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", range.start, range.end.saturating_sub(1))
}

/// `Content-Range` for a 416: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

enum Spec {
    /// `first-[last]`
    From(u64, Option<u64>),
    /// `-suffix`
    Suffix(u64),
}

impl Spec {
    fn resolve(&self, len: u64) -> Option<Range<u64>> {
        match *self {
            Spec::From(first, last) if first < len => {
                let end = last.map_or(len, |l| l.saturating_add(1).min(len));
                Some(first..end)
            }
            Spec::From(..) => None,
            Spec::Suffix(n) if n > 0 && len > 0 => Some(len - n.min(len)..len),
            Spec::Suffix(_) => None,
        }
    }
}

/// One `int-range` or `suffix-range`; `None` when malformed (`last` before `first`, not
/// digits). Numbers too large for 64 bits saturate (still past any length).
fn spec_of(s: &str) -> Option<Spec> {
    let (first, last) = s.split_once('-')?;
    let num = |d: &str| -> Option<u64> {
        if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(d.parse().unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        return num(last).map(Spec::Suffix);
    }
    let first = num(first)?;
    if last.is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = num(last)?;
    (last >= first).then_some(Spec::From(first, Some(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_resolve_within_the_length() {
        assert_eq!(parse("bytes=0-9", 100), Ranged::Partial(0..10));
        assert_eq!(parse("bytes=90-", 100), Ranged::Partial(90..100));
        assert_eq!(parse("bytes=-10", 100), Ranged::Partial(90..100));
        assert_eq!(parse("bytes=-1000", 100), Ranged::Partial(0..100));
        assert_eq!(parse("bytes=95-1000", 100), Ranged::Partial(95..100));
        assert_eq!(parse("BYTES = 1-1", 100), Ranged::Full, "no whitespace around '='");
        assert_eq!(parse("Bytes=1-1", 100), Ranged::Partial(1..2));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(parse("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=100-200", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=200-300, 400-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=99999999999999999999999-", 100), Ranged::Unsatisfiable);
    }

    #[test]
    fn malformed_or_foreign_ranges_are_ignored() {
        for v in ["bytes=5-1", "bytes=a-b", "bytes=", "items=0-1", "bytes 0-1", "bytes=--1", "bytes=1-2-3"] {
            assert_eq!(parse(v, 100), Ranged::Full, "{v}");
        }
    }

    #[test]
    fn several_ranges_get_the_whole_representation() {
        assert_eq!(parse("bytes=0-1, 5-6", 100), Ranged::Full);
        assert_eq!(parse("bytes=0-1, 500-600", 100), Ranged::Full);
    }

    #[test]
    fn if_range_must_match_the_strong_tag() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, "bytes=0-0".parse().unwrap());
        h.insert(header::IF_RANGE, "\"abc\"".parse().unwrap());
        assert_eq!(evaluate(&h, 10, "\"abc\""), Ranged::Partial(0..1));
        assert_eq!(evaluate(&h, 10, "\"other\""), Ranged::Full);
        h.insert(header::IF_RANGE, "W/\"abc\"".parse().unwrap());
        assert_eq!(evaluate(&h, 10, "\"abc\""), Ranged::Full);
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(&(0..10), 100), "bytes 0-9/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
    }
}
