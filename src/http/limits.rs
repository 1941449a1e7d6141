//! The route layer that resolves the caller once, attaches the rate limits to its
//! principal (each service operation then draws from its own class: src/ratelimit.rs), and
//! sends the `RateLimit` headers of the decision.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::principal::{self, Resolved};
use super::problem::DatabaseUnreachable;
use crate::db::breaker::OPEN_FOR;
use crate::error::Error;
use crate::ratelimit::{Class, Identity};
use crate::services::AppState;

/// [`enforce`] as a tower layer for `route_layer`: a plain service around the route (one
/// boxed future per request), where axum's `from_fn` also boxed and cloned the route into a
/// `Next` and ran the `State` extractor per request.
#[derive(Clone)]
pub struct EnforceLayer(pub AppState);

impl<S> Layer<S> for EnforceLayer {
    type Service = Enforce<S>;

    fn layer(&self, inner: S) -> Enforce<S> {
        Enforce { inner, state: self.0.clone() }
    }
}

/// The service of [`EnforceLayer`].
#[derive(Clone)]
pub struct Enforce<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Enforce<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready handles this request; a clone stays for the next.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Box::pin(async move { Ok(enforce(&state, req, inner).await) })
    }
}

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
async fn enforce<S>(state: &AppState, req: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let probe_for = Duration::from_millis(state.config.database.acquire_timeout_ms).saturating_add(OPEN_FOR);
    if !state.db.breaker.admit(probe_for) {
        return Error::Unavailable("the database is unavailable; try again shortly").into_response();
    }
    let res = limited(state, req, inner).await;
    if res.extensions().get::<DatabaseUnreachable>().is_some() {
        state.db.breaker.record_unreachable();
    } else {
        state.db.breaker.record_reachable();
    }
    res
}

async fn limited<S>(state: &AppState, req: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
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
    let mut res = match inner.call(Request::from_parts(parts, body)).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
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
