//! The HTTP surface: one router whose route table also generates the OpenAPI document,
//! one middleware stack, and problem+json for every error, including the ones axum and
//! tower-http produce themselves (404, 405, 413, timeouts, panics).

mod api_keys;
mod auth;
mod batch;
mod caching;
mod catalog;
mod compact;
mod contract;
mod dashboard;
mod dead_letters;
mod events;
mod exports;
pub mod extract;
mod flags;
mod health;
mod idempotency;
mod images;
mod imports;
mod jobs;
pub mod limits;
mod orders;
pub mod principal;
pub mod problem;
mod range;
pub(crate) mod request_id;
pub mod server;
mod stock_alerts;
mod users;
mod webhooks;
mod ws;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use self::problem::{PROBLEM_JSON, Problem, problem_response};
use crate::config::HttpConfig;
use crate::error::Error;
use crate::services::AppState;

use self::principal::X_API_KEY;
use self::request_id::{REQUEST_ID, RequestIdLayer};

fn hsts(config: &HttpConfig) -> Option<SetResponseHeaderLayer<HeaderValue>> {
    (config.hsts_max_age_secs > 0).then(|| {
        let value = format!("max-age={}; includeSubDomains", config.hsts_max_age_secs);
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("max-age=31536000")),
        )
    })
}

/// CORS from `http.cors_allowed_origins`; none configured means no CORS headers at all.
fn cors(config: &HttpConfig) -> Option<CorsLayer> {
    if config.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = if config.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_credentials(config.cors_allow_credentials)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                REQUEST_ID,
                X_API_KEY,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                header::ETAG,
                header::RETRY_AFTER,
                REQUEST_ID,
                crate::ratelimit::RATELIMIT,
                crate::ratelimit::RATELIMIT_POLICY,
                idempotency::IDEMPOTENT_REPLAYED,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderly",
        description = "A commerce backend: customers, a product catalog with inventory, and orders with a \
            checkout saga. Errors are RFC 9457 problem+json. Lists use cursor pagination: pass \
            `next_cursor` back as `cursor`. Money is integer minor units with an ISO 4217 currency."
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem, crate::catalog::products::ProductSort, crate::exports::Format, crate::exports::Kind))
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
            // Machine clients: `X-Api-Key: ok_…` (or the key as a bearer token), see docs/API.md.
            c.add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                    utoipa::openapi::security::ApiKeyValue::with_description(
                        "X-Api-Key",
                        "An API key `ok_<prefix>_<secret>` created by an admin; limited to its scopes.",
                    ),
                )),
            );
        }
    }
}

/// The whole HTTP application, ready to serve or to `oneshot` in tests.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The REST router plus `extra` routes (GraphQL, from the composition root: transports do
/// not import each other) under the same production middleware. `extra` routes get no body
/// limit from here: each sets its own.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let full = state.config.http.middleware == crate::config::Middleware::Full;
    let body_limit = usize::try_from(state.config.http.max_body_bytes).unwrap_or(usize::MAX);
    // JSON bodies: capped at `http.max_body_bytes` before a handler runs.
    let bounded = OpenApiRouter::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(catalog::routes())
        .merge(batch::routes())
        .merge(exports::routes())
        .merge(orders::routes())
        .merge(dashboard::routes())
        .merge(flags::routes())
        .merge(api_keys::routes())
        .merge(dead_letters::routes())
        .merge(stock_alerts::routes())
        .merge(events::routes())
        .merge(ws::routes())
        .merge(webhooks::routes())
        .merge(jobs::routes())
        .route_layer(RequestBodyLimitLayer::new(body_limit));
    // Streamed uploads (files, import jobs): each handler enforces its own limit while it
    // streams the body to storage, so none is set here.
    let streamed = OpenApiRouter::new().merge(images::routes()).merge(imports::routes());
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", bounded.merge(streamed));
    // Stores and replays answers to POSTs with an `Idempotency-Key`; inside the limits layer,
    // which resolves the principal the keys are scoped to.
    let api = api.route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::enforce));
    let (api, openapi) = if full {
        // Checks credentials once and applies the route's rate limit (src/ratelimit.rs).
        api.route_layer(limits::EnforceLayer(state.clone())).split_for_parts()
    } else {
        api.split_for_parts()
    };
    let openapi = complete_contract(openapi);

    let config = &state.config.http;
    let middleware = ServiceBuilder::new()
        // Security headers go on every response, errors and early rejections included.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        // Nothing is cacheable unless its handler says so (public catalog reads do).
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .option_layer(hsts(config))
        .option_layer(cors(config))
        // Uncompressed responses (every SSE stream) drop the compression layer's encoders.
        .map_response(compact::compact_body)
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(config.compression_min_bytes))),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, X_API_KEY]))
        // Keeps a well-formed client id or makes one; echoed on every response.
        .layer(RequestIdLayer)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(|res: &Response, latency: Duration, span: &tracing::Span| {
                    let status = res.status().as_u16();
                    let duration_ms = latency.as_secs_f64() * 1000.0;
                    // Status and duration go on the log line itself: recording them on the
                    // span made the JSON log layer re-parse and re-serialize the span's
                    // fields once per field. Exported spans get them as attributes.
                    if crate::telemetry::is_traced(span) {
                        use tracing_opentelemetry::OpenTelemetrySpanExt;
                        span.set_attribute("status", i64::from(status));
                        span.set_attribute("duration_ms", duration_ms);
                    }
                    tracing::info!(status, duration_ms, "request handled");
                })
                .on_failure(()),
        )
        // Counts every answer, including the timeout's, the panic catcher's and the body limit's.
        .layer(crate::metrics::TrackHttpLayer)
        .layer(map_response(problem_for_bare_errors))
        .layer(CatchPanicLayer::custom(|_| Error::Internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ));

    let routes = Router::new()
        .merge(api)
        .merge(extra)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready));
    let routes = if full {
        // The route template for the log line and the metrics; routes added later go unlabelled.
        routes.route_layer(crate::metrics::TagRouteLayer)
    } else {
        routes
    };
    let routes = routes
        .fallback(|method: Method| async move {
            // TRACE echoes requests back (cross-site tracing); no route of ours accepts it.
            if method == Method::TRACE {
                StatusCode::METHOD_NOT_ALLOWED.into_response()
            } else {
                Error::NotFound("route").into_response()
            }
        })
        // Our own limit covers every body, streamed or not; axum's default would cap at 2 MiB.
        .layer(DefaultBodyLimit::disable());
    if full { routes.layer(middleware).with_state(state) } else { routes.with_state(state) }
}

/// The request's span: `http` with the method and request id (the route and the user are
/// recorded when known). Only a request that continues a trace or may be exported gets an
/// OpenTelemetry span (`telemetry::traced`); the others are logged all the same.
fn request_span(req: &Request) -> tracing::Span {
    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let method = req.method().as_str();
    if crate::telemetry::traced(req.headers()) {
        let span = tracing::info_span!("http", method, route = Empty, request_id = id, user.id = Empty);
        // Continue the caller's trace (W3C `traceparent`), if it sent one.
        crate::telemetry::set_remote_parent(&span, req.headers());
        span
    } else {
        tracing::info_span!(target: crate::telemetry::LOCAL_SPANS, "http", method, route = Empty, request_id = id, user.id = Empty)
    }
}

/// The generated document, completed by [`contract::complete`].
fn complete_contract(openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let Ok(mut doc) = serde_json::to_value(&openapi) else { return openapi };
    contract::complete(&mut doc);
    serde_json::from_value(doc).unwrap_or(openapi)
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
    let is_problem =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
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
