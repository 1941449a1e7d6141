//! The route layer that resolves the caller once, attaches the rate limits to its
//! principal (each service operation then draws from its own class: src/ratelimit.rs), and
//! sends the `RateLimit` headers of the decision.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::time::Duration;

use super::principal::{self, Resolved};
use super::problem::DatabaseUnreachable;
use crate::db::breaker::OPEN_FOR;
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
///
/// While the database is unreachable (`db::breaker`), requests are answered 503
/// `unavailable` with `Retry-After` at once instead of each waiting for the pool's timeout.
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let probe_for = Duration::from_millis(state.config.database.acquire_timeout_ms).saturating_add(OPEN_FOR);
    if !state.db.breaker.admit(probe_for) {
        return Error::Unavailable("the database is unavailable; try again shortly").into_response();
    }
    let res = limited(&state, req, next).await;
    if res.extensions().get::<DatabaseUnreachable>().is_some() {
        state.db.breaker.record_unreachable();
    } else {
        state.db.breaker.record_reachable();
    }
    res
}

async fn limited(state: &AppState, req: Request, next: Next) -> Response {
    let limited = state.limits.enabled();
    let (mut parts, body) = req.into_parts();
    let (resolved, ip) = match principal::resolve(&parts, state, limited).await {
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
