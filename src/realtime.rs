//! Live streams, whatever the transport: which topics exist, who may follow them, and how a
//! subscription delivers every published event of its topic exactly once, in publish order,
//! across a reconnect.
//!
//! Topics: `order:<uuid>` (the order's own events, for its owner or staff) and `feed` (every
//! event, for staff), each optionally narrowed to some event types. SSE (`http/events.rs`)
//! and WebSocket (`http/ws.rs`) are thin adapters over [`Subscriptions`]; authorization is
//! [`Realtime::authorize`], the same rule as the REST reads (`orders::get`, the staff
//! order list).
//!
//! Delivery ([`Subscriptions`]): subscribe to this replica's [`Hub`] first, then read
//! what was missed from the outbox (`events::replay`, seq > the client's last id), then
//! deliver live events, skipping any `seq` the replay already sent. Because the relay
//! publishes on the hub only after its commit, an event is either visible to the replay or
//! arrives on the hub after the subscription: no gap, no duplicate. A subscriber that falls
//! more than `events.hub_capacity` events behind ([`Next::Lagged`]) is cut off; the hub is
//! a broadcast ring, so the others never wait for it.

pub mod subscriptions;

use std::sync::Arc;

use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::Db;
use crate::error::{Error, FieldError, Result};
use crate::events::CATALOG;
use crate::events::bus::{Envelope, Hub};
use crate::events::replay::Selection;
use crate::orders::{self, Orders};
use crate::ratelimit::Class;

pub use subscriptions::{Delivery, Live, Next, Subscriptions, drained};

/// What a topic follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// One order's events (`order.*` with this order as aggregate).
    Order(Uuid),
    /// Every published event (staff).
    Feed,
}

/// A stream of events a client may follow: `order:<uuid>` or `feed`, optionally narrowed
/// to a set of event types (`order.paid`, …; docs/EVENTS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub reach: Reach,
    /// Only these types; empty: all. Each is a catalogued event type.
    types: Vec<String>,
}

impl Topic {
    /// One order's events.
    pub fn order(id: Uuid) -> Self {
        Self { reach: Reach::Order(id), types: Vec::new() }
    }

    /// The staff feed.
    pub fn feed() -> Self {
        Self { reach: Reach::Feed, types: Vec::new() }
    }

    /// Parses a topic name: `order:<uuid>` or `feed`. Errors: 422 on `field`.
    pub fn parse(name: &str, field: &str) -> Result<Self> {
        if name == "feed" {
            return Ok(Self::feed());
        }
        name.strip_prefix("order:")
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(Self::order)
            .ok_or_else(|| invalid(field, "must be `feed` or `order:<uuid>`"))
    }

    /// The same topic, narrowed to `types` (each a catalogued event type, at most one of
    /// each; none: every type). Errors: 422 on `field` naming the unknown type.
    pub fn with_types<S: AsRef<str>>(mut self, types: &[S], field: &str) -> Result<Self> {
        let mut out: Vec<String> = Vec::with_capacity(types.len());
        for t in types.iter().map(|t| t.as_ref().trim()).filter(|t| !t.is_empty()) {
            if !CATALOG.iter().any(|(known, _)| *known == t) {
                return Err(invalid(field, &format!("`{t}` is not an event type (see docs/EVENTS.md)")));
            }
            if !out.iter().any(|o| o == t) {
                out.push(t.to_owned());
            }
        }
        self.types = out;
        Ok(self)
    }

    /// The topic's name: `order:<uuid>` or `feed`.
    pub fn name(&self) -> String {
        match self.reach {
            Reach::Order(id) => format!("order:{id}"),
            Reach::Feed => "feed".to_owned(),
        }
    }

    /// Whether `event` belongs to this topic.
    pub fn matches(&self, event: &Envelope) -> bool {
        let in_scope = match self.reach {
            Reach::Order(id) => event.aggregate_id == id && event.is_order_event(),
            Reach::Feed => true,
        };
        in_scope && (self.types.is_empty() || self.types.contains(&event.event_type))
    }

    /// The outbox selection of the same events, for replay.
    fn selection(&self) -> Selection<'_> {
        match self.reach {
            Reach::Order(id) => Selection { aggregate_id: Some(id), order_events: true, types: &self.types },
            Reach::Feed => Selection { aggregate_id: None, order_events: false, types: &self.types },
        }
    }
}

fn invalid(field: &str, message: &str) -> Error {
    Error::Validation(vec![FieldError::new(field, message)])
}

/// The live-stream service: the database (replay), this replica's hub and the orders
/// service (authorization). Cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    hub: Hub,
    orders: Orders,
}

impl Realtime {
    pub fn new(db: Db, hub: Hub, orders: Orders) -> Self {
        Self { inner: Arc::new(Inner { db, hub, orders }) }
    }

    /// Whether `principal` may follow `topic` (`api` rate-limit class):
    /// - `order:<id>`: exactly `GET /api/v1/orders/{id}` (`orders::get`): the owner or staff,
    ///   scope `orders:read`; another customer's order is 404 `not-found`, as in REST;
    /// - `feed`: staff with scope `orders:read` (the rule of the staff order list); 403
    ///   `forbidden` for customers.
    ///
    /// 401 `unauthenticated` without an actor.
    pub async fn authorize(&self, principal: &Principal, topic: &Topic) -> Result<()> {
        match topic.reach {
            Reach::Order(id) => orders::get(&self.inner.orders, principal, id).await.map(drop),
            Reach::Feed => {
                principal.admit(Class::Api).await?;
                principal.require_staff(Scope::OrdersRead).map(drop)
            }
        }
    }

    /// A new, empty set of subscriptions, already attached to the hub (so anything published
    /// from now on reaches it); add topics with [`Subscriptions::add`].
    pub fn subscriptions(&self) -> Subscriptions {
        Subscriptions::new(self.clone(), self.inner.hub.subscribe())
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event_type: &str, aggregate_id: Uuid) -> Envelope {
        Envelope {
            seq: 1,
            id: Uuid::nil(),
            event_type: event_type.into(),
            version: 1,
            aggregate_id,
            occurred_at: "2026-01-01T00:00:00.000000Z".into(),
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn topic_names_parse_and_print_back() {
        let id = Uuid::now_v7();
        assert_eq!(Topic::parse(&format!("order:{id}"), "topic").unwrap(), Topic::order(id));
        assert_eq!(Topic::parse("feed", "topic").unwrap().name(), "feed");
        assert_eq!(Topic::order(id).name(), format!("order:{id}"));
        for bad in ["", "order:", "order:42", "orders", "feed:all"] {
            assert!(matches!(Topic::parse(bad, "topic"), Err(Error::Validation(_))), "{bad}");
        }
    }

    #[test]
    fn an_order_topic_matches_only_that_orders_order_events() {
        let id = Uuid::now_v7();
        let topic = Topic::order(id);
        assert!(topic.matches(&envelope("order.paid", id)));
        assert!(!topic.matches(&envelope("order.paid", Uuid::now_v7())));
        assert!(!topic.matches(&envelope("inventory.low", id)), "a product event with a colliding id");
    }

    #[test]
    fn type_filters_accept_catalogued_types_only_and_narrow_the_feed() {
        let feed = Topic::feed().with_types(&["order.paid", " order.placed", "order.paid", ""], "types").unwrap();
        assert!(feed.matches(&envelope("order.placed", Uuid::nil())));
        assert!(!feed.matches(&envelope("inventory.low", Uuid::nil())));
        assert!(Topic::feed().with_types(&["order.paid"; 0], "types").unwrap().matches(&envelope("x.y", Uuid::nil())));
        let err = Topic::feed().with_types(&["order.teleported"], "types").unwrap_err();
        assert!(matches!(err, Error::Validation(ref f) if f[0].field == "types"));
    }
}
