//! The HTTP surface: one router whose route table also generates the OpenAPI document,
//! one middleware stack, and problem+json for every error, including the ones axum and
//! tower-http produce themselves (404, 405, 413, timeouts, panics).

mod auth;
mod catalog;
mod dashboard;
pub mod extract;
mod health;
mod orders;
mod users;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{map_request, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use crate::error::{Error, PROBLEM_JSON, Problem, problem_response};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderly",
        description = "A commerce backend: customers, a product catalog with inventory, and orders with a \
            checkout saga. Errors are RFC 9457 problem+json. Lists use cursor pagination: pass \
            `next_cursor` back as `cursor`. Money is integer minor units with an ISO 4217 currency."
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
            );
        }
    }
}

/// The whole HTTP application, ready to serve or to `oneshot` in tests.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/api/v1",
            OpenApiRouter::new()
                .merge(auth::routes())
                .merge(users::routes())
                .merge(catalog::routes())
                .merge(orders::routes())
                .merge(dashboard::routes()),
        )
        .route_layer(map_request(record_route))
        .split_for_parts();

    let config = &state.config.http;
    let body_limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
    let middleware = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("http", method = %req.method(), route = Empty, request_id = %id, status = Empty, duration_ms = Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                    span.record("duration_ms", latency.as_secs_f64() * 1000.0);
                    tracing::info!("request handled");
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(map_response(problem_for_bare_errors))
        .layer(CatchPanicLayer::custom(|_| Error::Internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(RequestBodyLimitLayer::new(body_limit));

    Router::new()
        .merge(api)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(|| async { Error::NotFound("route") })
        // Our own limit covers every body, streamed or not; axum's default would cap at 2 MiB.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware)
        .with_state(state)
}

/// Puts the route template (never the raw path) on the request span.
async fn record_route(req: Request) -> Request {
    if let Some(path) = req.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", path.as_str());
    }
    req
}

/// Error responses that did not come from our `Error` (axum's 405, the body limit's 413,
/// the timeout's 503) get the same problem+json shape as ours.
async fn problem_for_bare_errors<B>(res: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res.map(axum::body::Body::new);
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return res.map(axum::body::Body::new);
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "this method is not allowed on this resource"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "the request body is too large"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "the request took too long or the service is unavailable"),
        StatusCode::NOT_FOUND => ("not-found", "route not found"),
        s if s.is_server_error() => ("internal-error", "internal error"),
        _ => ("bad-request", "the request is not acceptable"),
    };
    let problem = Problem {
        type_uri: format!("/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
        code: code.to_owned(),
        errors: Vec::new(),
        extensions: Default::default(),
    };
    let mut out = problem_response(status, &problem);
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
