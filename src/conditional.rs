//! Representations and conditional requests (RFC 9110 §8.8.3, §13), free of any transport.
//!
//! A [`Representation`] is a resource's serialized JSON and its strong entity tag: the first
//! 96 bits of the body's SHA-256, so the tag changes whenever a byte of the body changes
//! (a stock change moves `available`, so it moves the tag) and equal bodies share a tag on
//! every replica. Caches keep representations, so a hit costs two `Bytes` clones.
//!
//! [`IfMatch`] guards writes (strong comparison, §13.1.1: `*` matches any current
//! representation); [`none_match`] answers `If-None-Match` for reads (weak comparison,
//! §13.1.2).

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A serialized body (`application/json`) and its strong ETag (`"<24 hex digits>"`, quotes
/// included, as sent in the `ETag` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representation {
    pub body: Bytes,
    pub etag: Bytes,
}

impl Representation {
    /// `value` as JSON with its ETag. Fails (500) only if `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(|e| Error::Internal(e.into()))?;
        Ok(Self::new(Bytes::from(body)))
    }

    /// `body` with its ETag.
    pub fn new(body: Bytes) -> Self {
        let etag = Bytes::from(etag_of(&body));
        Self { body, etag }
    }

    /// The ETag as text (always ASCII).
    pub fn etag_str(&self) -> &str {
        std::str::from_utf8(&self.etag).unwrap_or_default()
    }
}

/// The strong ETag of `body`: `"` + hex of the first 12 bytes of SHA-256(body) + `"`.
pub fn etag_of(body: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut tag = Vec::with_capacity(26);
    tag.push(b'"');
    for b in &digest[..12] {
        tag.push(HEX[usize::from(b >> 4)]);
        tag.push(HEX[usize::from(b & 0xf)]);
    }
    tag.push(b'"');
    tag
}

/// One entity-tag of a header list: its opaque tag (quotes included) and whether it was
/// weak (`W/` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    pub opaque: String,
}

/// A parsed `If-Match` (RFC 9110 §13.1.1): `*`, or a list of entity-tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current representation.
    Any,
    Tags(Vec<EntityTag>),
}

impl IfMatch {
    /// Parses the header value: `*` or `#entity-tag` (`"x"`, `W/"x"`, comma-separated).
    /// Error: `"must be * or a list of ETags"`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match parse_list(value) {
            Some(List::Any) => Ok(Self::Any),
            Some(List::Tags(tags)) => Ok(Self::Tags(tags)),
            None => Err("must be * or a list of ETags".into()),
        }
    }

    /// Whether the current representation's `etag` satisfies the condition: `*` always (a
    /// current representation exists), else a listed tag equal to it under the strong
    /// comparison (a weak tag never matches).
    pub fn matches(&self, etag: &[u8]) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| !t.weak && t.opaque.as_bytes() == etag),
        }
    }
}

/// Whether `If-None-Match: value` matches the current `etag` (RFC 9110 §13.1.2: `*`, or
/// any listed tag equal under the weak comparison), so a GET answers 304. A malformed
/// value matches nothing (the full response is sent).
pub fn none_match(value: &[u8], etag: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else { return false };
    // Fast path: the single tag a client echoes back.
    if value.as_bytes() == etag {
        return true;
    }
    match parse_list(value) {
        Some(List::Any) => true,
        Some(List::Tags(tags)) => tags.iter().any(|t| t.opaque.as_bytes() == etag),
        None => false,
    }
}

enum List {
    Any,
    Tags(Vec<EntityTag>),
}

/// `*` or `1#entity-tag` with optional whitespace and empty elements (RFC 9110 §5.6.1).
/// An opaque tag may contain commas, so the list is scanned, not split.
fn parse_list(value: &str) -> Option<List> {
    let v = value.trim_matches([' ', '\t']);
    if v == "*" {
        return Some(List::Any);
    }
    let mut tags = Vec::new();
    let mut rest = v;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let inner = r.strip_prefix('"')?;
        let end = inner.find('"')?;
        let opaque = &inner[..end];
        if !opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
            return None;
        }
        tags.push(EntityTag { weak, opaque: format!("\"{opaque}\"") });
        rest = &inner[end + 1..];
        let after = rest.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with(',')) {
            return None;
        }
        rest = after;
    }
    if tags.is_empty() { None } else { Some(List::Tags(tags)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_changes_with_any_byte_of_the_body() {
        let a = Representation::new(Bytes::from_static(br#"{"available":5}"#));
        let b = Representation::new(Bytes::from_static(br#"{"available":4}"#));
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, Representation::new(a.body.clone()).etag);
        assert_eq!(a.etag.len(), 26);
        assert!(a.etag_str().starts_with('"') && a.etag_str().ends_with('"'));
    }

    #[test]
    fn if_match_uses_the_strong_comparison_and_star_matches_anything() {
        let tag = br#""abc""#;
        assert!(IfMatch::parse("*").unwrap().matches(tag));
        assert!(IfMatch::parse(r#""x", "abc""#).unwrap().matches(tag));
        assert!(!IfMatch::parse(r#"W/"abc""#).unwrap().matches(tag), "a weak tag never matches strongly");
        assert!(!IfMatch::parse(r#""abd""#).unwrap().matches(tag));
        assert!(IfMatch::parse(r#""a,b", "abc""#).unwrap().matches(tag), "commas inside a tag");
        for bad in ["", "abc", r#""abc"x"#, r#""unterminated"#, "**"] {
            assert!(IfMatch::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let tag = br#""abc""#;
        assert!(none_match(br#""abc""#, tag));
        assert!(none_match(br#"W/"abc""#, tag));
        assert!(none_match(br#""x" , W/"abc""#, tag));
        assert!(none_match(b"*", tag));
        assert!(!none_match(br#""abd""#, tag));
        assert!(!none_match(b"garbage", tag));
    }
}
