//! The GraphQL transport at `/graphql` (docs/GRAPHQL.md): thin resolvers over the same
//! services as REST, one file per resource. Nothing here authorizes or validates: every
//! resolver calls the service function REST calls, with the caller's `Principal`, and
//! maps its `Error` in one place (`error.rs`).
//!
//! - `POST /graphql`: one operation per request (`application/json`), body capped at
//!   `http.max_body_bytes`; the caller is resolved once from `Authorization: Bearer …` or
//!   `X-Api-Key` and rate-limited like REST (`http::limits::EnforceLayer`).
//! - `GET /graphql`: GraphiQL, served from vendored files (`assets/graphiql/`, no CDN),
//!   or, with `Upgrade: websocket`, subscriptions over `graphql-transport-ws` (and
//!   `graphql-ws`), authenticated by the `connection_init` payload
//!   (`{"authorization": "Bearer …"}` or `{"x-api-key": "ok_…"}`) or the upgrade headers.
//! - `GET /graphql/assets/{file}`: the GraphiQL files, cached for a year (names carry
//!   versions).

mod accounts;
mod assets;
mod dashboard;
pub mod error;
mod loaders;
mod orders;
mod products;
pub mod schema;
mod subscriptions;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, UPGRADE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;

use crate::auth::resolve::{Resolved, X_API_KEY};
use crate::db::counter::{self, QueryCount};
use crate::services::AppState;

pub use schema::{OrderlySchema, sdl};

/// `/graphql` (POST queries and mutations, GET GraphiQL or the subscription WebSocket)
/// and `/graphql/assets/{file}`, for `http::router_with`.
pub fn router(state: AppState) -> Router<AppState> {
    let schema = schema::builder(&state.config.graphql, state.config.mode).data(state.clone()).finish();
    let body_limit = usize::try_from(state.config.http.max_body_bytes).unwrap_or(usize::MAX);
    let full = state.config.http.middleware == crate::config::Middleware::Full;
    let post_schema = schema.clone();
    let post = axum::routing::post(move |State(state): State<AppState>, req: Request| execute(state, post_schema, req));
    let get_schema = schema;
    let page = get(move |State(state): State<AppState>, req: Request| page_or_socket(state, get_schema, req));
    let post = post.route_layer(RequestBodyLimitLayer::new(body_limit));
    // The same route layer as `/api/v1`: credentials resolved once, rate limits attached,
    // database breaker honoured.
    let post = if full { post.route_layer(crate::http::limits::EnforceLayer(state)) } else { post };
    Router::new().route("/graphql", post.merge(page)).route("/graphql/assets/{file}", get(assets::serve))
}

/// The caller of this request: as the limits layer resolved it, or resolved here (without
/// rate limits) when the middleware is off.
async fn caller(state: &AppState, parts: &axum::http::request::Parts) -> crate::error::Result<Resolved> {
    if let Some(r) = parts.extensions.get::<Resolved>() {
        return Ok(r.clone());
    }
    crate::http::principal::resolve(parts, state, false).await.map(|(r, _)| r)
}

/// Runs one query or mutation. Errors of the request itself (unreadable JSON) are answered
/// as async-graphql does (400); everything else is a GraphQL response.
async fn execute(state: AppState, schema: OrderlySchema, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let resolved = match caller(&state, &parts).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let request = match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
        Request::from_parts(parts, body),
        &state,
    )
    .await
    {
        Ok(r) => r.into_inner(),
        Err(rejection) => return rejection.into_response(),
    };
    if let Resolved::Principal(p) = &resolved
        && let Some(a) = p.actor
    {
        tracing::Span::current().record("user.id", tracing::field::display(a.id));
    }
    let count = QueryCount::default();
    let loader = loaders::products(state.clone(), resolved.clone(), Some(count.clone()));
    let request = request.data(resolved).data(loader);
    let mut response = counter::counting(count.clone(), schema.execute(request)).await;
    if state.config.graphql.report_sql_queries {
        response.extensions.insert("sqlQueries".to_owned(), async_graphql::Value::from(count.get()));
    }
    GraphQLResponse::from(response).into_response()
}

/// GraphiQL, or the subscription WebSocket when the request asks to upgrade.
async fn page_or_socket(state: AppState, schema: OrderlySchema, req: Request) -> Response {
    if !req.headers().get(UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        return assets::graphiql_page();
    }
    let (mut parts, _) = req.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &state).await {
        Ok(p) => p,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let peer =
        parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let limited = state.limits.enabled();
    let from_headers =
        match crate::auth::resolve::resolve(&parts.headers, peer, &state.auth, &state.limits, limited).await {
            Ok((r, _)) => r,
            Err(e) => return e.into_response(),
        };
    let headers = parts.headers;
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).max_message_size(64 * 1024).on_upgrade(move |socket| async move {
        GraphQLWebSocket::new(socket, schema, protocol)
            .on_connection_init(move |payload| async move {
                let resolved = match credentials_in(&payload, &headers) {
                    None => from_headers,
                    Some(creds) => {
                        let found = crate::auth::resolve::resolve(&creds, peer, &state.auth, &state.limits, limited)
                            .await
                            .map_err(|e| error::to_graphql(&e))?;
                        found.0
                    }
                };
                let mut data = Data::default();
                data.insert(resolved);
                Ok(data)
            })
            .serve()
            .await;
    })
}

/// The credentials of a `connection_init` payload as headers (`authorization` or
/// `x-api-key`, any case; copied from the upgrade request otherwise absent), or `None`
/// when the payload carries none. A value that cannot be a header is a refused credential.
fn credentials_in(payload: &serde_json::Value, upgrade: &HeaderMap) -> Option<HeaderMap> {
    let obj = payload.as_object()?;
    let mut headers = HeaderMap::new();
    for (k, v) in obj {
        let name = if k.eq_ignore_ascii_case("authorization") {
            AUTHORIZATION
        } else if k.eq_ignore_ascii_case("x-api-key") {
            X_API_KEY
        } else {
            continue;
        };
        let value = v.as_str().and_then(|s| HeaderValue::from_str(s).ok());
        // Not a string: a credential that is refused (`Authorization` without `Bearer`).
        headers.insert(name, value.unwrap_or(HeaderValue::from_static("invalid")));
    }
    if headers.is_empty() {
        return None;
    }
    // Trusted-proxy forwarding headers still come from the upgrade request.
    for (name, value) in upgrade {
        if !headers.contains_key(name) && name != AUTHORIZATION && name != X_API_KEY {
            headers.insert(name.clone(), value.clone());
        }
    }
    Some(headers)
}
