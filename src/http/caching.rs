//! HTTP caching for REST reads and writes: `ETag` and `If-None-Match` → 304 (RFC 9110
//! §13.1.2, weak comparison, a list of tags or `*`), `If-Match` parsed for the services
//! (which evaluate it: RFC 9110 §13.1.1), and `Cache-Control`/`Vary` per resource.
//! Representations come from the services ([`Representation`]: JSON bytes and strong ETag).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::conditional::{self, IfMatch, Representation};
use crate::error::{Error, FieldError, Result};

/// Who may store a response, and for how long without asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheability {
    /// Anonymous catalog reads: any cache may store them, revalidating with the ETag each
    /// time (`public, no-cache`).
    Public,
    /// The caller's own data (orders): only the caller's browser may store it,
    /// revalidating each time (`private, no-cache`).
    Private,
    /// Authenticated catalog reads: the stack's default `no-store` stays (a staff view may
    /// hold archived products); the ETag still answers `If-None-Match`.
    NoStore,
}

const VARY: HeaderValue = HeaderValue::from_static("authorization, x-api-key");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// 200 with `rep`, or 304 (no body) when `If-None-Match` in `headers` matches its ETag.
/// Both carry the `ETag`, `Cache-Control` and `Vary` (the body depends on the caller's
/// credentials), as RFC 9110 §15.4.5 asks of a 304.
pub fn respond(headers: &HeaderMap, rep: Representation, cacheability: Cacheability) -> Response {
    let not_modified =
        headers.get(header::IF_NONE_MATCH).is_some_and(|v| conditional::none_match(v.as_bytes(), &rep.etag));
    let mut res = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = rep.body.into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, JSON);
        res
    };
    let h = res.headers_mut();
    if let Ok(tag) = HeaderValue::from_maybe_shared(rep.etag) {
        h.insert(header::ETAG, tag);
    }
    let directives = match cacheability {
        Cacheability::Public => Some("public, no-cache"),
        Cacheability::Private => Some("private, no-cache"),
        Cacheability::NoStore => None,
    };
    if let Some(d) = directives {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(d));
    }
    h.insert(header::VARY, VARY);
    res
}

/// `value` serialized with its ETag, answered like [`respond`] (for reads that are not
/// cached server-side, such as orders).
pub fn respond_json<T: Serialize>(headers: &HeaderMap, value: &T, cacheability: Cacheability) -> Result<Response> {
    Ok(respond(headers, Representation::json(value)?, cacheability))
}

/// A write's answer: `status` and `value` as JSON with the new representation's `ETag`
/// (the one a following GET sends), never stored (`no-store` from the stack).
pub fn written<T: Serialize>(status: StatusCode, value: &T) -> Result<Response> {
    let rep = Representation::json(value)?;
    let mut res = (status, rep.body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, JSON);
    if let Ok(tag) = HeaderValue::from_maybe_shared(rep.etag) {
        res.headers_mut().insert(header::ETAG, tag);
    }
    Ok(res)
}

/// The request's `If-Match`, parsed; `None` when absent. 422 on `If-Match` when it is
/// neither `*` nor a list of entity-tags.
pub fn if_match(headers: &HeaderMap) -> Result<Option<IfMatch>> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let bad = |m: String| Error::Validation(vec![FieldError::new("If-Match", m)]);
    let text = v.to_str().map_err(|_| bad("must be * or a list of ETags".into()))?;
    IfMatch::parse(text).map(Some).map_err(bad)
}

/// The `Cache-Control` class of a catalog read: public for anonymous callers, else not
/// stored.
pub fn catalog_cacheability(anonymous: bool) -> Cacheability {
    if anonymous { Cacheability::Public } else { Cacheability::NoStore }
}

/// `If-None-Match` (RFC 9110 §13.1.2): `*` or ETags; any match (weak comparison) → 304.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "only documents the header in the OpenAPI document; handlers read HeaderMap")]
pub(super) struct IfNoneMatch {
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// `If-Match` (RFC 9110 §13.1.1): `*` (any current product) or ETags (strong comparison);
/// no match → 412.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "only documents the header in the OpenAPI document; handlers read HeaderMap")]
pub(super) struct IfMatchHeader {
    #[param(rename = "If-Match")]
    pub if_match: Option<String>,
}
