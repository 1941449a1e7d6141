//! Who sent a request, for REST: the credential it carries (`Authorization: Bearer <access
//! token or API key>`, or `X-Api-Key: ok_…`; `Authorization` wins when both are sent) and
//! the client address, resolved once per request into a transport-free [`Principal`] by
//! [`resolve`]. Services decide what the principal may do; nothing here authorizes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

use crate::auth::Principal;
use crate::auth::api_keys::KEY_PREFIX;
use crate::error::{Error, Result};
use crate::ratelimit::client_ip;
use crate::services::{App, AppState};

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

/// Resolves the request's principal (credentials and client address), drawing from the
/// rate limits when `limited`. Errors only when the database fails during an API-key
/// lookup.
pub async fn resolve(parts: &Parts, app: &App, limited: bool) -> Result<(Resolved, IpAddr)> {
    let ip = client_ip::resolve(peer(parts), &parts.headers, app.limits.trusted_proxies());
    let principal = match credential(&parts.headers) {
        Err(refused) => return Ok((refused, ip)),
        Ok(None) => Principal::anonymous().from_ip(ip),
        Ok(Some(c)) => match app.auth.authenticate(c).await {
            Ok(actor) => Principal::actor(actor).from_ip(ip),
            Err(Error::InvalidToken) => return Ok((Resolved::Invalid, ip)),
            Err(e) => return Err(e),
        },
    };
    let principal = if limited { principal.limited_by(app.limits.clone()) } else { principal };
    Ok((Resolved::Principal(principal), ip))
}

/// The socket peer; `0.0.0.0` when the server did not record it (a router called directly,
/// as in unit tests), so such requests share one bucket rather than escape limits.
pub fn peer(parts: &Parts) -> IpAddr {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The caller of a REST handler: anonymous or authenticated. Invalid credentials are a 401
/// here (a client that sends a token wants to know it failed); whether an anonymous
/// principal may do something is the service's decision.
impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let resolved = match parts.extensions.get::<Resolved>() {
            Some(r) => r.clone(),
            None => {
                let (r, _) = resolve(parts, state, false).await?;
                parts.extensions.insert(r.clone());
                r
            }
        };
        let principal = resolved.into_result()?;
        if let Some(a) = principal.actor {
            tracing::Span::current().record("user.id", tracing::field::display(a.id));
        }
        Ok(principal)
    }
}
