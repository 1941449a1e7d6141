//! Who sent a request, for REST: the credential it carries (`Authorization: Bearer <access
//! token or API key>`, or `X-Api-Key: ok_…`; `Authorization` wins when both are sent) and
//! the client address, resolved once per request into a transport-free [`Principal`] by
//! [`resolve`]. Services decide what the principal may do; nothing here authorizes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::services::{App, AppState};

pub use crate::auth::resolve::{Resolved, X_API_KEY};

/// Resolves the request's principal (credentials and client address), drawing from the
/// rate limits when `limited` (see [`crate::auth::resolve::resolve`]).
pub async fn resolve(parts: &Parts, app: &App, limited: bool) -> Result<(Resolved, IpAddr)> {
    crate::auth::resolve::resolve(&parts.headers, peer(parts), &app.auth, &app.limits, limited).await
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
