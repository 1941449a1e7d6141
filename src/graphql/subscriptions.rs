//! Subscriptions over `graphql-transport-ws` (or the older `graphql-ws`): `orderEvents`
//! (one order's events, for its owner or staff) and `events` (the staff feed, optionally
//! narrowed to some types). Built on `realtime::Subscriptions`: the same topics,
//! authorization (`Realtime::authorize`: NOT_FOUND for another customer's order,
//! FORBIDDEN for a customer's feed), replay from `lastEventId` and hub as SSE and
//! WebSocket. A subscriber that falls more than `events.hub_capacity` events behind gets
//! an UNAVAILABLE error (`reason: lagged`) and its stream ends: resubscribe with
//! `lastEventId`. Streams end when the server starts draining.

use async_graphql::{Context, ID, Json, Object, Subscription as SubscriptionMacro};
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;

use super::error::{Gql, to_graphql};
use super::schema::{Long, app, principal, uuid};
use crate::error::Error;
use crate::events::bus::Envelope;
use crate::realtime::{Live, Subscriptions, Topic};

/// A published domain event (docs/EVENTS.md).
pub struct EventNode(std::sync::Arc<Envelope>);

#[Object(name = "Event")]
impl EventNode {
    /// The publish sequence: pass the last one seen as `lastEventId` to resume.
    async fn seq(&self) -> Long {
        Long(self.0.seq)
    }
    /// Stable across redeliveries.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `order.paid`, `inventory.low`, …
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The payload schema version of `type`.
    async fn version(&self) -> i32 {
        i32::try_from(self.0.version).unwrap_or(i32::MAX)
    }
    /// The order or product the event is about.
    async fn aggregate_id(&self) -> ID {
        ID(self.0.aggregate_id.to_string())
    }
    /// RFC 3339 UTC with microseconds.
    async fn occurred_at(&self) -> &str {
        &self.0.occurred_at
    }
    /// The payload (its schema depends on `type`).
    async fn data(&self) -> Json<&serde_json::Value> {
        Json(&self.0.data)
    }
}

pub struct Subscription;

#[SubscriptionMacro]
impl Subscription {
    /// One order's events: its owner or staff (NOT_FOUND for another customer's order).
    /// With `lastEventId`, first every event after it, then live ones.
    async fn order_events(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        last_event_id: Option<Long>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<EventNode>> + use<>> {
        let topic = Topic::order(uuid("orderId", &order_id)?);
        follow(ctx, topic, last_event_id).await
    }

    /// Every published event (staff), or only those of `types` (`order.paid`, …).
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
        last_event_id: Option<Long>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<EventNode>> + use<>> {
        let topic = Topic::feed().with_types(types.as_deref().unwrap_or_default(), "types").gql()?;
        follow(ctx, topic, last_event_id).await
    }
}

async fn follow(
    ctx: &Context<'_>,
    topic: Topic,
    last_event_id: Option<Long>,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<EventNode>> + use<>> {
    let app = app(ctx);
    let principal = principal(ctx)?;
    let mut subs = app.realtime.subscriptions();
    subs.add(&principal, topic, last_event_id.map(|l| l.0))
        .await
        .map_err(|e| super::error::rename_fields(e, &[("last_event_id", "lastEventId")]))
        .gql()?;
    Ok(deliver(subs, app.drain_signal()))
}

/// The subscription's events until it lags, fails, or the server drains.
fn deliver(
    subs: Subscriptions,
    drain: watch::Receiver<bool>,
) -> impl Stream<Item = async_graphql::Result<EventNode>> + use<> {
    subs.until_drained(drain).map(|item| match item {
        Ok(Live::Event(d)) => Ok(EventNode(d.event)),
        Ok(Live::Lagged) => {
            let mut e = to_graphql(&Error::Unavailable(
                "this subscriber fell too far behind; subscribe again with lastEventId",
            ));
            if let Some(ext) = e.extensions.as_mut() {
                ext.set("reason", "lagged");
            }
            Err(e)
        }
        Err(e) => Err(to_graphql(&e)),
    })
}
