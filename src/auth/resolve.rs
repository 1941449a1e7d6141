//! From a request's headers to a [`Principal`], for every transport that carries HTTP-style
//! headers (REST, GraphQL, gRPC metadata, the WebSocket upgrade): the credential in
//! `Authorization: Bearer <access token or API key>` or `X-Api-Key: ok_…` (`Authorization`
//! wins when both are sent) and the client address. Nothing here authorizes: services
//! decide what the principal may do.

use std::net::IpAddr;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderName};

use super::Principal;
use super::api_keys::KEY_PREFIX;
use super::credentials::Authenticator;
use crate::error::{Error, Result};
use crate::ratelimit::{Limits, client_ip};

pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// What checking a request's credentials gave, kept in the request extensions so it is
/// done once: the principal, or why its credentials were refused.
#[derive(Debug, Clone)]
pub enum Resolved {
    Principal(Principal),
    /// `Authorization` with a scheme other than `Bearer` (401 `unauthenticated`).
    Unsupported,
    /// A token or key that is malformed, unknown, expired or revoked (401 `invalid-token`).
    Invalid,
}

impl Resolved {
    /// The principal, or the 401 its credentials earned.
    pub fn into_result(self) -> Result<Principal> {
        match self {
            Resolved::Principal(p) => Ok(p),
            Resolved::Unsupported => Err(Error::Unauthenticated),
            Resolved::Invalid => Err(Error::InvalidToken),
        }
    }
}

/// The credential string in `headers`, if any: `Err(Unsupported)` for a non-Bearer
/// `Authorization`, `Err(Invalid)` for an `X-Api-Key` that is not a key.
fn credential(headers: &HeaderMap) -> Result<Option<&str>, Resolved> {
    if let Some(v) = headers.get(AUTHORIZATION) {
        let bearer = v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        return bearer.map(|t| Some(t.trim())).ok_or(Resolved::Unsupported);
    }
    match headers.get(X_API_KEY).map(|v| v.to_str().map(str::trim)) {
        None => Ok(None),
        Some(Ok(key)) if key.starts_with(KEY_PREFIX) => Ok(Some(key)),
        Some(_) => Err(Resolved::Invalid),
    }
}

/// Resolves the principal of a request with `headers` from the socket peer `peer` (the
/// client address honours `X-Forwarded-For` only from trusted proxies), drawing from the
/// rate limits when `limited`. Errors only when the database fails during an API-key
/// lookup.
pub async fn resolve(
    headers: &HeaderMap,
    peer: IpAddr,
    auth: &Authenticator,
    limits: &Limits,
    limited: bool,
) -> Result<(Resolved, IpAddr)> {
    let ip = client_ip::resolve(peer, headers, limits.trusted_proxies());
    let principal = match credential(headers) {
        Err(refused) => return Ok((refused, ip)),
        Ok(None) => Principal::anonymous().from_ip(ip),
        Ok(Some(c)) => match auth.authenticate(c).await {
            Ok(actor) => Principal::actor(actor).from_ip(ip),
            Err(Error::InvalidToken) => return Ok((Resolved::Invalid, ip)),
            Err(e) => return Err(e),
        },
    };
    let principal = if limited { principal.limited_by(limits.clone()) } else { principal };
    Ok((Resolved::Principal(principal), ip))
}
