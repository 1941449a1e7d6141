//! A client's live subscriptions (one for an SSE stream, any number for a WebSocket
//! session) over one hub receiver: replay from the outbox, then live, without gap or
//! duplicate (see the module docs of `realtime`).

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use super::{Realtime, Topic};
use crate::auth::Principal;
use crate::error::{Error, FieldError, Result};
use crate::events::bus::Envelope;
use crate::events::replay;

/// Events read from the outbox per replay query; a long replay is paged.
const REPLAY_PAGE: i64 = 256;

/// Topics one client may follow at once (a WebSocket session); more is a 422.
pub const MAX_TOPICS: usize = 64;

/// One event for one of the client's topics.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: Arc<Topic>,
    pub event: Arc<Envelope>,
}

/// An item of [`Subscriptions::until_drained`].
#[derive(Debug)]
pub enum Live {
    Event(Delivery),
    /// The client fell too far behind and lost events: the stream's last item; the client
    /// may reconnect and resume from its last id.
    Lagged,
}

/// Completes once `drain` is (or turns) true; never if its sender (the application) is gone.
pub async fn drained(drain: &mut watch::Receiver<bool>) {
    if drain.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What [`Subscriptions::next`] gives.
#[derive(Debug)]
pub enum Next {
    Event(Delivery),
    /// The client fell more than `events.hub_capacity` events behind: events were lost to
    /// it, so it must be cut off (it may reconnect and resume from its last id).
    Lagged,
    /// The hub is gone (the application is stopping).
    Closed,
}

struct Active {
    topic: Arc<Topic>,
    /// The highest `seq` replayed (or the client's last id): live events at or under it
    /// were sent already.
    after: i64,
    /// Whether outbox rows after `after` may still wait to be replayed.
    replaying: bool,
}

/// A client's subscriptions. Built by [`Realtime::subscriptions`], attached to the hub at
/// once. [`next`](Self::next) is cancel-safe (it may lose a replay page, never an event).
pub struct Subscriptions {
    realtime: Realtime,
    rx: broadcast::Receiver<Arc<Envelope>>,
    active: Vec<Active>,
    queue: VecDeque<Delivery>,
}

impl Subscriptions {
    pub(super) fn new(realtime: Realtime, rx: broadcast::Receiver<Arc<Envelope>>) -> Self {
        Self { realtime, rx, active: Vec::new(), queue: VecDeque::new() }
    }

    /// Follows `topic` if `principal` may ([`Realtime::authorize`]: 401, 403, 404), replacing
    /// a subscription to the topic of the same name. With `last_event_id` n (a `seq` the
    /// client saw), first delivers every published event of the topic with `seq > n`, read
    /// from the outbox; without, only events published from now on. Errors: 422 on
    /// `last_event_id` if negative, on `topic` beyond [`MAX_TOPICS`].
    pub async fn add(&mut self, principal: &Principal, topic: Topic, last_event_id: Option<i64>) -> Result<()> {
        if last_event_id.is_some_and(|n| n < 0) {
            return Err(Error::Validation(vec![FieldError::new("last_event_id", "must be a seq (0 or more)")]));
        }
        self.realtime.authorize(principal, &topic).await?;
        let name = topic.name();
        self.remove(&name);
        if self.active.len() >= MAX_TOPICS {
            return Err(Error::Validation(vec![FieldError::new(
                "topic",
                format!("at most {MAX_TOPICS} topics per connection"),
            )]));
        }
        self.active.push(Active {
            topic: Arc::new(topic),
            after: last_event_id.unwrap_or(0),
            replaying: last_event_id.is_some(),
        });
        Ok(())
    }

    /// Stops following the topic named `name`, dropping its undelivered events; false if it
    /// was not followed.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.active.len();
        self.active.retain(|a| a.topic.name() != name);
        self.queue.retain(|d| d.topic.name() != name);
        self.active.len() != before
    }

    /// How many topics are followed.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The subscription as a stream for a live transport (SSE, gRPC, GraphQL): its events,
    /// then at most one last item, [`Live::Lagged`] or the error of a failed replay read.
    /// It ends there, when the hub closes, or when `drain` turns true (server shutdown).
    pub fn until_drained(self, drain: watch::Receiver<bool>) -> impl Stream<Item = Result<Live>> + Send {
        stream::unfold(Some((self, drain)), |state| async move {
            let (mut subs, mut drain) = state?;
            let next = tokio::select! {
                biased;
                () = drained(&mut drain) => return None,
                next = subs.next() => next,
            };
            match next {
                Ok(Next::Event(d)) => Some((Ok(Live::Event(d)), Some((subs, drain)))),
                Ok(Next::Lagged) => Some((Ok(Live::Lagged), None)),
                Ok(Next::Closed) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// The next event for any followed topic: replayed ones first (per topic, in `seq`
    /// order), then live ones in the order the hub publishes them. Waits while there is none.
    pub async fn next(&mut self) -> Result<Next> {
        loop {
            if let Some(d) = self.queue.pop_front() {
                return Ok(Next::Event(d));
            }
            if let Some(a) = self.active.iter_mut().find(|a| a.replaying) {
                // Boxed: the query's future is large, and without the box every idle
                // subscriber (waiting on the hub below) would carry its size.
                let page =
                    Box::pin(replay::after(self.realtime.db(), a.topic.selection(), a.after, REPLAY_PAGE)).await?;
                a.replaying = page.len() as i64 >= REPLAY_PAGE;
                if let Some(last) = page.last() {
                    a.after = last.seq;
                }
                let topic = &a.topic;
                self.queue.extend(page.into_iter().map(|e| Delivery { topic: topic.clone(), event: Arc::new(e) }));
                continue;
            }
            match self.rx.recv().await {
                Ok(event) => {
                    for a in self.active.iter().filter(|a| event.seq > a.after && a.topic.matches(&event)) {
                        self.queue.push_back(Delivery { topic: a.topic.clone(), event: event.clone() });
                    }
                }
                Err(RecvError::Lagged(_)) => return Ok(Next::Lagged),
                Err(RecvError::Closed) => return Ok(Next::Closed),
            }
        }
    }
}
