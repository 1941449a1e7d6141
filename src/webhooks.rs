//! Webhooks: admin-managed endpoints that receive published events as signed HTTP POSTs,
//! retried with backoff, logged per attempt, dead-lettered and replayable (issue 8 §7).
//!
//! - this file: the types and the service operations (admin sessions only);
//! - `store.rs`: the SQL; `ssrf.rs`: which URLs and addresses may be called;
//! - `signing.rs`: `Orderly-Signature` (Stripe's scheme);
//! - `consumer.rs`: the durable consumer `webhooks` that turns each published event into one
//!   delivery per subscribed, enabled endpoint;
//! - `delivery.rs`: the worker that claims due deliveries and POSTs them.

pub mod consumer;
pub mod delivery;
pub mod signing;
pub mod ssrf;
pub mod store;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::config::WebhooksConfig;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::pagination::{Page, PageParams, PageRequest};
use crate::ratelimit::Class;
use crate::validate;

/// The type that subscribes an endpoint to every event type.
pub const ALL_EVENTS: &str = "*";
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 500;

/// A receiver of events. Its secret is never part of it: it is shown once, in
/// [`CreatedEndpoint`], at creation and at rotation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    /// Where deliveries are POSTed (`http`/`https`, a public address).
    pub url: String,
    pub description: String,
    /// Event types from the catalog (docs/EVENTS.md), or `["*"]` for all.
    pub event_types: Vec<String>,
    /// A disabled endpoint gets no new deliveries; its pending ones wait.
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    /// Whether the endpoint subscribes to `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == ALL_EVENTS || t == event_type)
    }
}

/// An endpoint with its signing secret, answered once at creation and at rotation.
/// `Debug` redacts the secret, so it cannot reach a log line by accident.
#[derive(Serialize, ToSchema)]
pub struct CreatedEndpoint {
    /// `whsec_` and 64 hex digits: the HMAC-SHA256 key of `Orderly-Signature`. Not shown again.
    pub secret: String,
    pub endpoint: Endpoint,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint").field("secret", &"[redacted]").field("endpoint", &self.endpoint).finish()
    }
}

/// A new endpoint; checked by [`Webhooks::create_endpoint`].
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// `http://` or `https://`, at most 2048 characters; must resolve to public addresses.
    #[schema(max_length = 2048)]
    pub url: String,
    /// What it is for (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// At least one event type from the catalog, or `"*"`.
    #[schema(min_items = 1)]
    pub event_types: Vec<String>,
}

/// Changes to an endpoint; absent fields stay as they are. Checked by
/// [`Webhooks::update_endpoint`].
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(min_items = 1)]
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not attempted yet (or replayed).
    Pending,
    /// The last attempt failed; the next is at `next_attempt_at`.
    Failed,
    /// A 2xx answer came back.
    Succeeded,
    /// Every attempt failed (`webhooks.max_attempts`); replayable.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Failed, Self::Succeeded, Self::Dead].into_iter().find(|v| v.as_str() == s)
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event id (`Orderly-Event-Id`), the same for every endpoint and attempt.
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts since the delivery was created or last replayed.
    pub attempts: u32,
    /// When the next attempt is due (`pending`, `failed`); `null` once settled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt; `null` when none came back (timeout, refused).
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt ever (numbering continues across replays).
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub attempted_at: DateTime<Utc>,
}

/// A delivery with every attempt, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: Delivery,
    pub attempts: Vec<Attempt>,
}

/// The filters of the delivery log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only this endpoint's deliveries.
    pub endpoint_id: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque, base64url).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// The webhooks service: endpoint management and the delivery log. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    pub(crate) db: Db,
    pub(crate) config: WebhooksConfig,
    /// Wakes the delivery worker when new deliveries are due (new events, replays).
    pub(crate) wake: Arc<Notify>,
}

fn parse_event_types(types: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err("must name at least one event type, or \"*\"".into());
    }
    let mut set = BTreeSet::new();
    for t in types {
        if t != ALL_EVENTS && !crate::events::CATALOG.iter().any(|(name, _)| name == t) {
            return Err(format!("`{t}` is not an event type (see docs/EVENTS.md), nor \"*\""));
        }
        set.insert(t.clone());
    }
    if set.contains(ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_owned()]);
    }
    Ok(set.into_iter().collect())
}

fn parse_description(d: &str) -> Result<String, String> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(format!("must be at most {MAX_DESCRIPTION} characters"));
    }
    Ok(d.to_owned())
}

/// Every operation needs an admin logged in with a session (an API key never manages
/// webhooks: a leaked key must not be able to send events elsewhere). Rate class `api`.
/// Each may fail with 401 `Unauthenticated`, 403 `InsufficientScope("session")` (an API
/// key), 403 `Forbidden` (not an admin), 429 `RateLimited`.
impl Webhooks {
    pub fn new(db: Db, config: &WebhooksConfig) -> Self {
        Self { db, config: config.clone(), wake: Arc::new(Notify::new()) }
    }

    async fn admin(&self, principal: &Principal) -> Result<()> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        Ok(())
    }

    /// `url` checked against the SSRF rules: the field error's message on failure.
    async fn check_target(&self, url: &str) -> Result<String, String> {
        let allow = self.config.allow_private_targets;
        let parsed = ssrf::check_url(url, allow)?;
        ssrf::resolve_public(&parsed, allow).await?;
        Ok(parsed.to_string())
    }

    /// Creates an enabled endpoint with a new secret, answered this once.
    ///
    /// Errors: 422 `Validation` on `url` (not http/https, user info, does not resolve, or a
    /// non-public address, see [`ssrf`]), `description` (over 500 characters) or
    /// `event_types` (empty, or not in `events::CATALOG` nor `*`).
    pub async fn create_endpoint(&self, principal: &Principal, req: &CreateEndpointRequest) -> Result<CreatedEndpoint> {
        self.admin(principal).await?;
        let target = self.check_target(&req.url).await;
        validate! {
            url <- "url" => target;
            description <- "description" => parse_description(&req.description);
            event_types <- "event_types" => parse_event_types(&req.event_types);
        }
        let secret = signing::new_secret()?;
        let endpoint = store::insert_endpoint(&self.db, &url, &description, &event_types, &secret).await?;
        Ok(CreatedEndpoint { secret, endpoint })
    }

    /// Endpoints newest first, never a secret; `page.limit` 1 to 100 (default 20).
    /// Errors: 422 `Validation` on `limit` or `cursor`.
    pub async fn list_endpoints(&self, principal: &Principal, page: &PageParams) -> Result<Page<Endpoint>> {
        self.admin(principal).await?;
        let page = PageRequest::parse(page.limit, page.cursor.as_deref(), "-created_at").map_err(Error::Validation)?;
        store::list_endpoints(&self.db, &page).await
    }

    /// One endpoint, never its secret. Errors: 404 `NotFound("webhook endpoint")`.
    pub async fn get_endpoint(&self, principal: &Principal, id: Uuid) -> Result<Endpoint> {
        self.admin(principal).await?;
        store::get_endpoint(&self.db, id).await
    }

    /// Changes an endpoint's URL, description, event types or enabled state.
    /// Errors: 404; 422 `Validation` as for [`create_endpoint`](Self::create_endpoint).
    pub async fn update_endpoint(
        &self,
        principal: &Principal,
        id: Uuid,
        req: &UpdateEndpointRequest,
    ) -> Result<Endpoint> {
        self.admin(principal).await?;
        let mut endpoint = store::get_endpoint(&self.db, id).await?;
        let target = match &req.url {
            Some(url) => self.check_target(url).await.map(Some),
            None => Ok(None),
        };
        validate! {
            url <- "url" => target;
            description <- "description" => req.description.as_deref().map(parse_description).transpose();
            event_types <- "event_types" => req.event_types.as_deref().map(parse_event_types).transpose();
        }
        if let Some(url) = url {
            endpoint.url = url;
        }
        if let Some(description) = description {
            endpoint.description = description;
        }
        if let Some(types) = event_types {
            endpoint.event_types = types;
        }
        if let Some(enabled) = req.enabled {
            endpoint.enabled = enabled;
        }
        let updated = store::update_endpoint(&self.db, &endpoint).await?;
        self.wake.notify_one();
        Ok(updated)
    }

    /// Deletes an endpoint with its deliveries and their log.
    /// Errors: 404 `NotFound("webhook endpoint")`.
    pub async fn delete_endpoint(&self, principal: &Principal, id: Uuid) -> Result<()> {
        self.admin(principal).await?;
        store::delete_endpoint(&self.db, id).await
    }

    /// Replaces the endpoint's secret at once (deliveries from now on are signed with the
    /// new one) and answers it this once. Errors: 404 `NotFound("webhook endpoint")`.
    pub async fn rotate_secret(&self, principal: &Principal, id: Uuid) -> Result<CreatedEndpoint> {
        self.admin(principal).await?;
        let secret = signing::new_secret()?;
        store::set_secret(&self.db, id, &secret).await?;
        Ok(CreatedEndpoint { secret, endpoint: store::get_endpoint(&self.db, id).await? })
    }

    /// The delivery log, newest first, narrowed by endpoint and status.
    /// Errors: 422 `Validation` on `limit` or `cursor`.
    pub async fn list_deliveries(&self, principal: &Principal, filter: &DeliveryFilter) -> Result<Page<Delivery>> {
        self.admin(principal).await?;
        let page =
            PageRequest::parse(filter.limit, filter.cursor.as_deref(), "-created_at").map_err(Error::Validation)?;
        store::list_deliveries(&self.db, filter, &page).await
    }

    /// One delivery with its attempts. Errors: 404 `NotFound("webhook delivery")`.
    pub async fn get_delivery(&self, principal: &Principal, id: Uuid) -> Result<DeliveryDetail> {
        self.admin(principal).await?;
        let delivery = store::get_delivery(&self.db, id).await?;
        let attempts = store::attempts(&self.db, id).await?;
        Ok(DeliveryDetail { delivery, attempts })
    }

    /// Sends a `dead` or `failed` delivery again now, with a fresh attempt budget; answers
    /// it as `pending`. Errors: 404 `NotFound("webhook delivery")`; 409
    /// `delivery-not-replayable` when it is `pending` or `succeeded`.
    pub async fn replay_delivery(&self, principal: &Principal, id: Uuid) -> Result<Delivery> {
        self.admin(principal).await?;
        let current = store::get_delivery(&self.db, id).await?;
        if !store::replay(&self.db, id).await? {
            return Err(Error::conflict(
                "delivery-not-replayable",
                format!("only dead or failed deliveries can be replayed; this one is {}", current.status.as_str()),
            ));
        }
        self.wake.notify_one();
        store::get_delivery(&self.db, id).await
    }
}
