//! The route layer that resolves the caller once, attaches the rate limits to its
//! principal (each service operation then draws from its own class: src/ratelimit.rs), and
//! sends the `RateLimit` headers of the decision.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::principal::{self, Resolved};
use crate::error::Error;
use crate::ratelimit::{Class, Identity};
use crate::services::AppState;

/// For every `/api/v1` route: resolves the principal (kept in the request extensions for the
/// `Principal` extractor, so a token is verified and a key looked up once per request) with
/// the rate limits attached, and runs the handler, whose service operation admits itself in
/// its class (`api`, `login`, `checkout`). A request that reached no operation (refused
/// credentials, a malformed body) is charged to `api` afterwards, and answered 429 if that
/// budget was already spent, so floods of bad requests are limited too. Every response
/// carries `RateLimit-Policy` and `RateLimit` of the decision taken.
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limited = state.limits.enabled();
    let (mut parts, body) = req.into_parts();
    let (resolved, ip) = match principal::resolve(&parts, &state, limited).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let admission = match &resolved {
        Resolved::Principal(p) => p.admission().cloned(),
        _ => None,
    };
    parts.extensions.insert(resolved);
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if !limited {
        return res;
    }
    let decision = match admission.as_ref().and_then(|a| a.last_decision()) {
        Some(d) => d,
        None => {
            let identity = admission.as_ref().map_or(Identity::Ip(ip), |a| a.identity());
            let d = match state.limits.check(Class::Api, identity).await {
                Ok(d) => d,
                Err(e) => return e.into_response(),
            };
            if !d.allowed {
                crate::metrics::rate_limited(Class::Api.name());
                res = Error::RateLimited { policy: Class::Api.name(), retry_after_secs: d.reset_secs.max(1) }
                    .into_response();
            }
            d
        }
    };
    decision.apply(res.headers_mut());
    res
}
