//! The durable consumer `webhooks`: each published event becomes one `pending` delivery per
//! enabled endpoint subscribed to its type. The (endpoint, event) pair is unique, so an
//! event handled twice (at-least-once consumption) creates its deliveries once.

use crate::events::bus::Envelope;
use crate::events::consumers::{HandleFuture, Handler, HandlerError};

use super::{Webhooks, store};

/// The durable name: offsets and dead letters are kept under it. Never change it.
pub const NAME: &str = "webhooks";

/// The [`Handler`] that fans events out to endpoints.
pub struct Fanout {
    webhooks: Webhooks,
}

impl Fanout {
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }

    async fn fan_out(&self, event: &Envelope) -> Result<(), HandlerError> {
        let endpoints = store::enabled_endpoints(&self.webhooks.db).await?;
        let ids: Vec<_> = endpoints.iter().filter(|e| e.wants(&event.event_type)).map(|e| e.id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        store::insert_deliveries(&self.webhooks.db, &ids, event.id, &event.event_type, &event.to_json()).await?;
        self.webhooks.wake.notify_one();
        Ok(())
    }
}

impl Handler for Fanout {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, _event_type: &str) -> bool {
        // Subscriptions change at run time: every event is looked at.
        true
    }

    fn handle<'a>(&'a self, event: &'a Envelope) -> HandleFuture<'a> {
        Box::pin(self.fan_out(event))
    }
}
