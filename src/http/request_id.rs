//! `X-Request-Id` in one layer: a client-sent id is kept only if well-formed (1–128
//! characters of `A–Z a–z 0–9 - _ . :`, so ids are safe to log and echo), otherwise one is
//! generated (a UUID v4, formatted on the stack); the id is set on the request before the
//! trace layer reads it and echoed on the response unless the response has one already.
//! Replaces three layers (a `map_request`, tower-http's `SetRequestId` and
//! `PropagateRequestId`) and the per-request `String` of `MakeRequestUuid`.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn well_formed(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// A random UUID v4 from the thread's fast generator (request ids need to be unique, not
/// unguessable: they are echoed to the client and written to logs).
pub(crate) fn generate() -> HeaderValue {
    let bytes = fastrand::u128(..).to_le_bytes();
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

#[derive(Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId { inner }
    }
}

#[derive(Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B, ResB> Service<Request<B>> for RequestId<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    /// An axum `Body` (boxed once), which the CORS layer outside needs (`Default`).
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = WithRequestId<S::Future>;

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
        WithRequestId { inner: self.inner.call(req), id: Some(id) }
    }
}

pin_project_lite::pin_project! {
    pub struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, ResB, E> Future for WithRequestId<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            res.headers_mut().entry(REQUEST_ID).or_insert(id);
        }
        Poll::Ready(Ok(res.map(Body::new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_uuids_and_well_formed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert!(well_formed(&a));
        assert!(!well_formed(&HeaderValue::from_static("has space")));
        assert!(!well_formed(&HeaderValue::from_bytes(&[b'a'; 129]).unwrap()));
    }
}
