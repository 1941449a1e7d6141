//! The per-request HTTP metrics as two tower layers (no boxed futures, no per-request label
//! lookups): [`TagRouteLayer`] on the routes finds the route's [`RouteMetrics`] once per
//! route, and [`TrackHttpLayer`] outside everything that answers on its own counts and times
//! each response through the handles that route resolved on its first response of each
//! (method, status).

use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use ::metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use tower::{Layer, Service};

use super::{HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS, UNMATCHED, intern};

/// One route template's series: a counter and a histogram per (method, status), registered
/// with the recorder on first use and reused by every later request.
pub struct RouteMetrics {
    route: &'static str,
    series: RwLock<Vec<(u32, Counter, Histogram)>>,
}

static UNMATCHED_ROUTE: RouteMetrics = RouteMetrics { route: UNMATCHED, series: RwLock::new(Vec::new()) };

impl RouteMetrics {
    /// The series of `route` (a template), created once per distinct template.
    fn of(route: &str) -> &'static RouteMetrics {
        static ROUTES: OnceLock<RwLock<Vec<&'static RouteMetrics>>> = OnceLock::new();
        let routes = ROUTES.get_or_init(Default::default);
        let find = |v: &[&'static RouteMetrics]| v.iter().find(|r| r.route == route).copied();
        if let Some(r) = find(routes.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_slice()) {
            return r;
        }
        let mut w = routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = find(w.as_slice()) {
            return r;
        }
        let r: &'static RouteMetrics =
            Box::leak(Box::new(RouteMetrics { route: intern(route), series: RwLock::new(Vec::new()) }));
        w.push(r);
        r
    }

    fn record(&self, method: &Method, status: u16, started: Instant) {
        let (method_label, m) = method_label(method);
        let key = (m << 16) | u32::from(status);
        let elapsed = started.elapsed();
        let read = self.series.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c, h)) = read.iter().find(|s| s.0 == key) {
            c.increment(1);
            h.record(elapsed);
            return;
        }
        drop(read);
        let mut w = self.series.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !w.iter().any(|s| s.0 == key) {
            let status = axum::http::StatusCode::from_u16(status).map_or("other", |s| intern(s.as_str()));
            let labels = [("method", method_label), ("route", self.route), ("status", status)];
            w.push((key, counter!(HTTP_REQUESTS, &labels), histogram!(HTTP_DURATION, &labels)));
        }
        if let Some((_, c, h)) = w.iter().find(|s| s.0 == key) {
            c.increment(1);
            h.record(elapsed);
        }
    }
}

/// The method label and a small index for it.
fn method_label(m: &Method) -> (&'static str, u32) {
    match *m {
        Method::GET => ("GET", 0),
        Method::POST => ("POST", 1),
        Method::PUT => ("PUT", 2),
        Method::PATCH => ("PATCH", 3),
        Method::DELETE => ("DELETE", 4),
        Method::HEAD => ("HEAD", 5),
        Method::OPTIONS => ("OPTIONS", 6),
        _ => ("other", 7),
    }
}

/// The matched route, carried from the router out to [`TrackHttpLayer`] on the response.
#[derive(Clone, Copy)]
struct RouteLabel(&'static RouteMetrics);

/// Route layer: puts the route template (never the raw path) on the request span for the
/// log line, and the route's metrics on the response for [`TrackHttpLayer`]. Each route's
/// service remembers its template's metrics after its first request.
#[derive(Clone, Copy, Default)]
pub struct TagRouteLayer;

impl<S> Layer<S> for TagRouteLayer {
    type Service = TagRoute<S>;

    fn layer(&self, inner: S) -> TagRoute<S> {
        TagRoute { inner, known: Arc::default() }
    }
}

#[derive(Clone)]
pub struct TagRoute<S> {
    inner: S,
    /// The `MatchedPath` text (by address: axum shares one per route) and its metrics.
    known: Arc<OnceLock<(usize, &'static RouteMetrics)>>,
}

impl<S> TagRoute<S> {
    fn resolve(&self, path: &str) -> &'static RouteMetrics {
        let addr = path.as_ptr() as usize;
        match self.known.get() {
            Some((a, r)) if *a == addr && r.route == path => r,
            Some(_) => RouteMetrics::of(path),
            None => self.known.get_or_init(|| (addr, RouteMetrics::of(path))).1,
        }
    }
}

impl<S> Service<Request> for TagRoute<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tagged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().map(|p| self.resolve(p.as_str()));
        if let Some(r) = route {
            tracing::Span::current().record("route", r.route);
        }
        Tagged { inner: self.inner.call(req), route }
    }
}

pin_project_lite::pin_project! {
    pub struct Tagged<F> {
        #[pin]
        inner: F,
        route: Option<&'static RouteMetrics>,
    }
}

impl<F, E> Future for Tagged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx));
        if let (Ok(res), Some(r)) = (&mut res, *this.route) {
            res.extensions_mut().insert(RouteLabel(r));
        }
        Poll::Ready(res)
    }
}

/// Counts and times every request, and tracks how many are in flight. Place it inside the
/// trace layer and outside everything that can answer on its own (timeouts, panics, body
/// limits), so those answers are counted too.
#[derive(Clone, Copy, Default)]
pub struct TrackHttpLayer;

impl<S> Layer<S> for TrackHttpLayer {
    type Service = TrackHttp<S>;

    fn layer(&self, inner: S) -> TrackHttp<S> {
        TrackHttp { inner }
    }
}

#[derive(Clone)]
pub struct TrackHttp<S> {
    inner: S,
}

impl<S, B, ResB> Service<axum::http::Request<B>> for TrackHttp<S>
where
    S: Service<axum::http::Request<B>, Response = axum::http::Response<ResB>>,
{
    type Response = axum::http::Response<ResB>;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let method = req.method().clone();
        let in_flight = InFlight::enter();
        Tracked { inner: self.inner.call(req), method, started: Instant::now(), _in_flight: in_flight }
    }
}

pin_project_lite::pin_project! {
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        method: Method,
        started: Instant,
        _in_flight: InFlight,
    }
}

impl<F, ResB, E> Future for Tracked<F>
where
    F: Future<Output = Result<axum::http::Response<ResB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &res {
            let route = res.extensions().get::<RouteLabel>().map_or(&UNMATCHED_ROUTE, |r| r.0);
            route.record(this.method, res.status().as_u16(), *this.started);
        }
        Poll::Ready(res)
    }
}

fn in_flight_gauge() -> &'static Gauge {
    static GAUGE: OnceLock<Gauge> = OnceLock::new();
    GAUGE.get_or_init(|| gauge!(HTTP_IN_FLIGHT))
}

/// Raises the in-flight gauge; lowers it when dropped, also when the request is abandoned.
pub struct InFlight(());

impl InFlight {
    fn enter() -> Self {
        in_flight_gauge().increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight_gauge().decrement(1.0);
    }
}
