//! Who is calling: credentials from the call's metadata (`authorization: Bearer <access
//! token or API key>`, or `x-api-key: ok_…`), resolved once per call by [`CallerLayer`]
//! through the same `auth::resolve` as REST, with the rate limits attached. Adapters take
//! the result with [`principal`]; nothing here authorizes (services do). Health and
//! reflection calls are not resolved.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Request;
use tonic::Status;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use crate::auth::Principal;
use crate::services::App;

/// The outcome of resolving a call's credentials, kept in the request's extensions.
#[derive(Clone)]
struct Caller(Result<Principal, Status>);

/// The caller of an `orderly.v1` call (taken out of its extensions): the principal, or
/// UNAUTHENTICATED for a non-Bearer `authorization` (`unauthenticated`) or a malformed,
/// unknown, expired or revoked token or key (`invalid-token`), UNAVAILABLE if the
/// database failed during an API-key lookup.
pub fn principal<T>(req: &mut tonic::Request<T>) -> Result<Principal, Status> {
    match req.extensions_mut().remove::<Caller>() {
        Some(Caller(result)) => result,
        // Only if the layer is not installed: a bug, never the client's fault.
        None => Err(Status::internal("internal error")),
    }
}

/// Resolves the caller of every `orderly.v1` call before it reaches its service.
#[derive(Clone)]
pub struct CallerLayer {
    app: Arc<App>,
}

impl CallerLayer {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

impl<S> Layer<S> for CallerLayer {
    type Service = Resolve<S>;
    fn layer(&self, inner: S) -> Resolve<S> {
        Resolve { inner, app: self.app.clone() }
    }
}

#[derive(Clone)]
pub struct Resolve<S> {
    inner: S,
    app: Arc<App>,
}

impl<S, B> Service<Request<B>> for Resolve<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this call (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !req.uri().path().starts_with("/orderly.") {
            return Box::pin(inner.call(req));
        }
        let app = self.app.clone();
        Box::pin(async move {
            let peer = req
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
                .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
            let resolved = crate::auth::resolve::resolve(req.headers(), peer, &app.auth, &app.limits, true).await;
            let caller = match resolved {
                Ok((resolved, _)) => resolved.into_result().map_err(Status::from),
                Err(e) => Err(Status::from(e)),
            };
            if let Ok(p) = &caller
                && let Some(actor) = &p.actor
            {
                tracing::Span::current().record("user.id", tracing::field::display(actor.id));
            }
            req.extensions_mut().insert(Caller(caller));
            inner.call(req).await
        })
    }
}
