//! Server-Sent Events: `GET /api/v1/orders/{id}/events` (one order, for its owner or
//! staff) and `GET /api/v1/events` (the staff feed). A thin adapter over
//! [`crate::realtime::Subscriptions`]: authorization, replay and delivery happen there.
//!
//! Each event is `id: <seq>`, `event: <type>`, `data: <envelope JSON>` (docs/EVENTS.md,
//! "Envelope"); `Last-Event-ID` (sent by `EventSource` on reconnect) resumes after that
//! `seq`. A comment goes out every `realtime.keepalive_secs` so proxies keep the connection.
//! The stream ends when the client lags more than `events.hub_capacity` events behind
//! (it reconnects with `Last-Event-ID` and resumes) and when the server drains.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::{Error, FieldError, Result};
use crate::realtime::{Live, Subscriptions, Topic};
use crate::services::AppState;

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(order_events)).routes(routes!(feed_events))
}

/// The staff feed's filter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Comma-separated event types to receive (`order.paid,order.placed`); absent: all.
    pub types: Option<String>,
}

/// One order's events as they are published (`text/event-stream`): `order.placed`,
/// `order.paid`, … For the order's owner or staff (scope `orders:read`); another customer's
/// order is 404, as for `GET /orders/{id}`. `Last-Event-ID: <seq>` first replays the
/// order's events published after that `seq`. Never ends on its own: the server ends it when
/// the client falls too far behind or when it shuts down.
#[utoipa::path(get, path = "/orders/{id}/events", tag = "streams", security(("bearer" = []), ("api_key" = ["orders:read"])),
    params(("id" = Uuid, Path, description = "The order"),
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` (seq) of the last event received: resume after it", pattern = "^[0-9]{1,18}$")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "An endless event stream: `id: <seq>`, `event: <type>`, `data: <envelope JSON>` per event, keep-alive comments"),
        (status = 404, body = Problem)))]
async fn order_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let after = last_event_id(&headers)?;
    stream(&state, &principal, Topic::order(id), after).await
}

/// Every published event (`text/event-stream`), for staff (scope `orders:read`; customers
/// 403), optionally only the `types` listed. `Last-Event-ID: <seq>` first replays what was
/// published after that `seq`. Never ends on its own.
#[utoipa::path(get, path = "/events", tag = "streams", security(("bearer" = []), ("api_key" = ["orders:read"])),
    params(FeedQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` (seq) of the last event received: resume after it", pattern = "^[0-9]{1,18}$")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "An endless event stream: `id: <seq>`, `event: <type>`, `data: <envelope JSON>` per event, keep-alive comments"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn feed_events(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let after = last_event_id(&headers)?;
    let types: Vec<&str> = query.types.as_deref().map(|t| t.split(',').collect()).unwrap_or_default();
    let topic = Topic::feed().with_types(&types, "types")?;
    stream(&state, &principal, topic, after).await
}

/// `Last-Event-ID` as a seq; absent or empty (the HTML spec's reset): none. 422 otherwise.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get(LAST_EVENT_ID) else { return Ok(None) };
    let text = v.to_str().map(str::trim).unwrap_or("-");
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(Error::Validation(vec![FieldError::new(
            "Last-Event-ID",
            "must be an event id (a seq) from this stream",
        )])),
    }
}

/// Subscribes (errors before any byte is sent are problem+json), then streams.
async fn stream(state: &AppState, principal: &Principal, topic: Topic, after: Option<i64>) -> Result<Response> {
    let mut subs = state.realtime.subscriptions();
    subs.add(principal, topic, after).await?;
    let keepalive = Duration::from_secs(state.config.realtime.keepalive_secs.max(1));
    let events = events(subs, state.drain_signal());
    let mut res = Sse::new(events).keep_alive(KeepAlive::new().interval(keepalive)).into_response();
    // Proxies (nginx) must not buffer the stream.
    res.headers_mut().insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    Ok(res)
}

/// The SSE events of `subs` until it lags (a last comment says so), the hub closes, a
/// replay read fails (logged), or the server drains.
fn events(subs: Subscriptions, drain: watch::Receiver<bool>) -> impl Stream<Item = Result<Event, Infallible>> {
    subs.until_drained(drain).filter_map(|item| async move {
        match item {
            Ok(Live::Event(d)) => {
                let e = &d.event;
                Some(Ok(Event::default().id(e.seq.to_string()).event(&e.event_type).data(e.to_json())))
            }
            Ok(Live::Lagged) => {
                tracing::info!(transport = "sse", "a live client fell behind the hub; its stream ends");
                Some(Ok(Event::default().comment("lagged: reconnect with Last-Event-ID")))
            }
            Err(e) => {
                e.log_if_internal();
                None
            }
        }
    })
}
