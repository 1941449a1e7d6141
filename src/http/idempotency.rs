//! The REST side of idempotency keys (src/idempotency.rs has the rules and the store): a
//! route layer that, for a covered `POST` with an `Idempotency-Key` by an authenticated
//! caller, replays a stored answer with `Idempotent-Replayed: true`, refuses a reused key
//! (422) or one still running (409), or runs the request and stores its whole answer
//! (status, `Content-Type`/`Location`/`ETag`, body), unless the answer is an error marked
//! [`NotRecorded`] by `problem.rs` (the request never started: the key is released).
//!
//! Covered: every `POST` under `/api/v1` except those in [`EXCLUDED`] (see [`covers`]);
//! `contract.rs` documents the header on exactly these operations.

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::principal::{self, Resolved};
use super::problem::NotRecorded;
use crate::error::{Error, FieldError};
use crate::idempotency::{Begin, Claim, IdempotencyKey, Owner, StoredResponse};
use crate::services::AppState;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Sent on a replayed answer (as Stripe does).
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `POST` routes whose answers are never stored, and why (docs/API.md): `/auth/*` is called
/// anonymously (no caller to scope a key to) and answers with tokens; creating or rotating
/// an API key and issuing a password-reset token answer with a secret shown once, which
/// must never be kept in plaintext; so do creating a webhook endpoint and rotating its
/// signing secret. A product-image upload streams its body to storage, which a stored
/// answer would have to buffer first. Imports stream their bodies too and keep their own
/// key (one job per key, src/imports/upload.rs). A trailing `/` marks a prefix.
pub const EXCLUDED: [&str; 8] = [
    "/api/v1/auth/",
    "/api/v1/imports/",
    "/api/v1/api-keys",
    "/api/v1/api-keys/{id}/rotate",
    "/api/v1/users/{id}/password-reset",
    "/api/v1/webhooks/endpoints",
    "/api/v1/webhooks/endpoints/{id}/rotate-secret",
    "/api/v1/products/{id}/images",
];

/// Whether a `POST` to the route template `path` honours `Idempotency-Key`.
pub fn covers(path: &str) -> bool {
    path.starts_with("/api/v1/")
        && !EXCLUDED.iter().any(|e| if e.ends_with('/') { path.starts_with(e) } else { path == *e })
}

/// The headers of an answer that are stored and replayed with it.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// The route layer; see the module docs. Runs after `limits::enforce` has resolved the
/// principal (resolves it itself when that layer is off).
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let covered = req.method() == Method::POST
        && req.extensions().get::<MatchedPath>().is_some_and(|p| covers(p.as_str()))
        && req.headers().contains_key(IDEMPOTENCY_KEY);
    if !covered {
        return next.run(req).await;
    }
    let key = match req.headers().get(IDEMPOTENCY_KEY).map(|v| IdempotencyKey::parse(v.as_bytes())) {
        Some(Ok(key)) => key,
        Some(Err(e)) => return e.into_response(),
        None => return next.run(req).await,
    };
    let (mut parts, body) = req.into_parts();
    let resolved = match parts.extensions.get::<Resolved>() {
        Some(r) => r.clone(),
        None => match principal::resolve(&parts, &state, false).await {
            Ok((r, _)) => {
                parts.extensions.insert(r.clone());
                r
            }
            Err(e) => return e.into_response(),
        },
    };
    // Anonymous or refused credentials: nothing to scope the key to (the handler answers).
    let Resolved::Principal(principal) = resolved else { return next.run(Request::from_parts(parts, body)).await };
    let Some(actor) = principal.actor.as_ref() else { return next.run(Request::from_parts(parts, body)).await };
    let owner = Owner::of(actor);

    let limit = usize::try_from(state.config.http.max_body_bytes).unwrap_or(usize::MAX);
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return Error::PayloadTooLarge.into_response(),
        Err(_) => return Error::BadRequest("the request body could not be read".into()).into_response(),
    };
    // The path as sent, also inside nested routers (which strip their prefix).
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    let fingerprint =
        state.idempotency.fingerprint(parts.method.as_str(), uri.path(), uri.query().unwrap_or(""), &bytes);
    let claim = match state.idempotency.begin(&owner, &key, &fingerprint).await {
        Err(e) => return e.into_response(),
        Ok(Begin::Replay(stored)) => return replay(stored),
        Ok(Begin::Mismatch) => {
            return Error::Validation(vec![FieldError::new(
                crate::idempotency::HEADER,
                "was already used for a different request; use a new key for a new request",
            )])
            .into_response();
        }
        Ok(Begin::InProgress) => {
            let mut res = Error::conflict(
                "idempotency-key-in-use",
                "the first request with this Idempotency-Key is still being processed; retry shortly",
            )
            .into_response();
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            return res;
        }
        Ok(Begin::Started(claim)) => claim,
    };
    let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    finish(&state, claim, res).await
}

/// Stores the answer of a started request (or releases its key), and sends it.
async fn finish(state: &AppState, claim: Claim, res: Response) -> Response {
    if res.extensions().get::<NotRecorded>().is_some() {
        if let Err(e) = state.idempotency.release(&claim).await {
            tracing::warn!(error = ?e, "releasing an idempotency key failed; it frees itself when its lease ends");
        }
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let _ = state.idempotency.release(&claim).await;
            return Error::Internal(anyhow::anyhow!("reading the answer to store it: {e}")).into_response();
        }
    };
    match std::str::from_utf8(&bytes) {
        Ok(text) => {
            let headers = KEPT_HEADERS
                .iter()
                .filter_map(|h| {
                    let v = parts.headers.get(h)?.to_str().ok()?;
                    Some((h.as_str().to_owned(), v.to_owned()))
                })
                .collect();
            let stored = StoredResponse { status: parts.status.as_u16(), headers, body: text.to_owned() };
            if let Err(e) = state.idempotency.complete(&claim, &stored).await {
                // The answer still goes out; a retry after the lease ends runs again
                // (checkout's own key in the orders table still prevents a second order).
                tracing::error!(error = ?e, "storing an idempotent answer failed");
            }
        }
        Err(_) => {
            tracing::warn!("an answer to a covered POST is not UTF-8; its idempotency key is released");
            let _ = state.idempotency.release(&claim).await;
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A stored answer, sent again with `Idempotent-Replayed: true`.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, Bytes::from(stored.body)).into_response();
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(n, v);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    res
}

/// Whether reading a body failed on the body limit (ours, or `RequestBodyLimitLayer`'s).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_post_is_covered_except_anonymous_and_secret_bearing_ones() {
        for p in ["/api/v1/orders", "/api/v1/orders/{id}/refunds", "/api/v1/products", "/api/v1/users"] {
            assert!(covers(p), "{p}");
        }
        for p in ["/api/v1/auth/login", "/api/v1/api-keys", "/api/v1/api-keys/{id}/rotate", "/healthz"] {
            assert!(!covers(p), "{p}");
        }
        assert!(!covers("/api/v1/users/{id}/password-reset"));
        assert!(!covers("/api/v1/webhooks/endpoints"));
        assert!(!covers("/api/v1/webhooks/endpoints/{id}/rotate-secret"));
        assert!(covers("/api/v1/webhooks/deliveries/{id}/replay"));
    }
}
