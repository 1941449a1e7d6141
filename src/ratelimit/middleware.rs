//! The route layer that checks credentials once and enforces the route's limit.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::{self, ClientIp};
use super::{Class, Identity};
use crate::app::AppState;
use crate::auth::credentials::{self, Caller};
use crate::error::Error;

/// For every `/api/v1` route: resolves the caller (stored in the request extensions for the
/// `AuthUser` extractor, so a token is verified and a key looked up once per request) and
/// the client IP, then takes one request from the caller's bucket for the route's class.
/// Over the limit: 429 `rate-limited` with `Retry-After`. Allowed or not, the response
/// carries `RateLimit-Policy` and `RateLimit`.
pub async fn enforce(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match credentials::resolve(req.headers(), &state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(caller);
    let (mut parts, body) = req.into_parts();
    let ip = client_ip::resolve(client_ip::peer(&parts), &parts.headers, state.limits.trusted_proxies());
    parts.extensions.insert(ClientIp(ip));
    let req = Request::from_parts(parts, body);
    if !state.limits.enabled() {
        return next.run(req).await;
    }
    let route = req.extensions().get::<MatchedPath>().map_or("", |p| p.as_str());
    let class = Class::of(req.method(), route);
    let identity = match caller {
        Caller::Authenticated(u) => u.api_key_id.map_or(Identity::User(u.id), Identity::ApiKey),
        _ => Identity::Ip(ip),
    };
    let decision = match state.limits.check(class, identity).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let mut res = if decision.allowed {
        next.run(req).await
    } else {
        crate::metrics::rate_limited(class.name());
        Error::RateLimited { policy: class.name(), retry_after_secs: decision.reset_secs.max(1) }.into_response()
    };
    decision.apply(res.headers_mut());
    res
}
