//! The gRPC server's tracing and metrics, as one tower layer around every service (health
//! and reflection included): the same `x-request-id` convention as REST (a well-formed
//! client id is kept, otherwise one is generated; echoed in the response headers), one
//! `grpc` span per call with the method and request id (continuing a W3C `traceparent`
//! sent in metadata), one `rpc handled` log line with the status code and `duration_ms`,
//! and `orderly_grpc_requests_total{method,code}` with a duration histogram.
//!
//! A call's status is read where gRPC puts it: the response headers of a trailers-only
//! answer (errors), else the trailers at the end of the body, so a stream is timed until
//! it ends. A call dropped before its status (deadline passed, client cancelled) counts as
//! `CANCELLED`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use prost::Message;
use tonic::Code;
use tower::{Layer, Service};
use tracing::field::Empty;

use crate::http::request_id::{REQUEST_ID, generate, well_formed};

/// The label of calls to a method this server does not serve.
const UNKNOWN_METHOD: &str = "unknown";

/// Every served method's path (`/orderly.v1.CatalogService/GetProduct`, the health and
/// reflection methods), read once from the descriptor sets: the closed set of `method`
/// labels.
fn served_methods() -> &'static HashSet<String> {
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut out = HashSet::new();
        for fds in [
            super::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(fds) else { continue };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = service.name.unwrap_or_default();
                    for method in service.method {
                        out.insert(format!("/{package}.{service_name}/{}", method.name.unwrap_or_default()));
                    }
                }
            }
        }
        out
    })
}

/// The `method` label of a request path: the path itself if served, else `unknown`.
pub fn method_label(path: &str) -> &'static str {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    let labels =
        LABELS.get_or_init(|| served_methods().iter().map(|m| &*Box::leak(m.clone().into_boxed_str())).collect());
    labels.iter().find(|m| **m == path).copied().unwrap_or(UNKNOWN_METHOD)
}

/// The upper-case name of a status code, as the spec spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn status_in(headers: &HeaderMap) -> Option<Code> {
    headers.get("grpc-status").map(|v| Code::from_bytes(v.as_bytes()))
}

/// Adds [`Observe`] around a service.
#[derive(Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
}

/// What is known about a call until its status arrives.
struct Call {
    span: tracing::Span,
    method: &'static str,
    started: Instant,
}

impl Call {
    fn finish(self, code: Code) {
        let elapsed = self.started.elapsed();
        let name = code_name(code);
        crate::metrics::grpc_call(self.method, name, elapsed);
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        if crate::telemetry::is_traced(&self.span) {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            self.span.set_attribute("rpc.grpc.status_code", i64::from(code as i32));
        }
        let _entered = self.span.enter();
        tracing::info!(grpc.code = name, duration_ms, "rpc handled");
    }
}

impl<S, B, ResB> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    type Response = Response<Tracked<ResB>>;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match req.headers().get(REQUEST_ID) {
            Some(v) if well_formed(v) => v.clone(),
            _ => {
                let v = generate();
                req.headers_mut().insert(REQUEST_ID, v.clone());
                v
            }
        };
        let method = method_label(req.uri().path());
        let request_id = id.to_str().unwrap_or_default();
        let span = if crate::telemetry::traced(req.headers()) {
            let span = tracing::info_span!("grpc", rpc.method = method, request_id, user.id = Empty);
            crate::telemetry::set_remote_parent(&span, req.headers());
            span
        } else {
            tracing::info_span!(target: crate::telemetry::LOCAL_SPANS, "grpc", rpc.method = method, request_id, user.id = Empty)
        };
        let inner = span.in_scope(|| self.inner.call(req));
        Observed { inner, call: Some(Call { span, method, started: Instant::now() }), id: Some(id) }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Observe`].
    pub struct Observed<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
        id: Option<axum::http::HeaderValue>,
    }

    impl<F> PinnedDrop for Observed<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before an answer: the deadline passed or the client went away.
            if let Some(call) = this.project().call.take() {
                call.finish(Code::Cancelled);
            }
        }
    }
}

impl<F, ResB, E> Future for Observed<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<Tracked<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.call.as_ref() {
            Some(call) => call.span.in_scope(|| this.inner.poll(cx)),
            None => this.inner.poll(cx),
        };
        let res = match std::task::ready!(polled) {
            Ok(res) => res,
            Err(e) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown);
                }
                return Poll::Ready(Err(e));
            }
        };
        let (mut parts, body) = res.into_parts();
        if let Some(id) = this.id.take() {
            parts.headers.entry(REQUEST_ID).or_insert(id);
        }
        let mut call = this.call.take();
        if let Some(code) = status_in(&parts.headers)
            && let Some(c) = call.take()
        {
            // Trailers-only: the status is already here.
            c.finish(code);
        }
        Poll::Ready(Ok(Response::from_parts(parts, Tracked { inner: body, call })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when the status trailers pass by.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for Tracked<B> {
        fn drop(this: Pin<&mut Self>) {
            // The stream was dropped before its status: the client went away.
            if let Some(call) = this.project().call.take() {
                call.finish(Code::Cancelled);
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(code) = f.trailers_ref().and_then(status_in)
                    && let Some(call) = this.call.take()
                {
                    call.finish(code);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Internal);
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_the_served_methods_or_unknown() {
        assert_eq!(method_label("/orderly.v1.CatalogService/GetProduct"), "/orderly.v1.CatalogService/GetProduct");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(method_label("/orderly.v1.CatalogService/Nope"), UNKNOWN_METHOD);
        assert_eq!(method_label("/x"), UNKNOWN_METHOD);
    }
}
