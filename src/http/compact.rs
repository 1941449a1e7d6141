//! Keeps tower-http's compression encoders off the responses that are not compressed.
//!
//! `CompressionBody` holds every encoder's state inline (brotli's alone is > 5 KiB), so every
//! response body, compressed or not, was a > 5 KiB allocation, copied through each outer
//! layer and, for an SSE stream, kept for the stream's whole life. [`compact_body`] runs
//! right outside the compression layer: a response it did not compress (no
//! `Content-Encoding`: the layer sets one whenever it compresses) goes on with its inner
//! body alone; a compressed one keeps its encoder, boxed once.

use axum::body::{Body, HttpBody};
use axum::http::{Response, header};
use bytes::Bytes;
use tower_http::compression::CompressionBody;

/// The response with the compression layer's body replaced by the inner body when nothing
/// was compressed; for `ServiceBuilder::map_response` right outside `CompressionLayer`.
pub fn compact_body<B>(res: Response<CompressionBody<B>>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + Send,
{
    let (parts, body) = res.into_parts();
    // Without `Content-Encoding` the compression layer left the body as it was (it never
    // compresses a response that already had one); with it, the body may be an encoder.
    let body = if parts.headers.contains_key(header::CONTENT_ENCODING) {
        Body::new(body)
    } else {
        Body::new(body.into_inner())
    };
    Response::from_parts(parts, body)
}
