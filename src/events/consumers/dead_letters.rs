//! The dead-letter admin operations: list the events consumers gave up on, and replay one
//! through its consumer's handler. Admin sessions only (`Principal::require_admin_session`):
//! envelopes carry customer and order data, and a replay has the consumer's side effects.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Consumers, runner, store};
use crate::auth::Principal;
use crate::db::{self, Arg, SqlBuilder};
use crate::error::{Error, FieldError, Result};
use crate::events::bus::Envelope;
use crate::pagination::{Cursor, Page, PageRequest};
use crate::ratelimit::Class;

/// An event a consumer gave up on, with why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    /// The consumer's durable name (`stock-alerts`, `webhooks`, …).
    pub consumer: String,
    pub event_id: Uuid,
    /// `inventory.low`, `order.paid`, … (docs/EVENTS.md).
    pub event_type: String,
    /// The event as the consumer received it (the envelope of docs/EVENTS.md).
    #[schema(value_type = Object)]
    pub envelope: serde_json::Value,
    /// The last failure, as the handler reported it.
    pub error: String,
    /// Handler calls made so far (retries and failed replays included).
    pub attempts: i64,
    /// When it was (last) dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// When a replay handled it; `null` while it is open.
    pub replayed_at: Option<DateTime<Utc>>,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Not replayed yet.
    Open,
    /// Handled by a replay.
    Replayed,
}

/// The query of the dead-letter list: filters and the page.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// Only this consumer's dead letters (its durable name).
    #[param(max_length = 100)]
    pub consumer: Option<String>,
    /// Only open or only replayed ones (default: both).
    #[param(inline)]
    pub status: Option<DeadLetterStatus>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque, base64url).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// How a replay went.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// The handler succeeded: the dead letter is marked replayed.
    Handled,
    /// The handler failed again: `error` and `attempts` are updated; it stays open.
    Failed,
}

/// The answer to a replay.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replay {
    pub outcome: ReplayOutcome,
    /// The dead letter after the replay.
    pub dead_letter: DeadLetter,
}

const COLUMNS: &str = "id, consumer, event_id, event_type, envelope, error, attempts, failed_at, replayed_at";

impl Consumers {
    /// Dead letters, newest failure first, filtered by `consumer` and `status`.
    ///
    /// Errors: 401/403 unless an admin session; 422 `Validation` on `limit`, `cursor` or a
    /// `consumer` longer than 100 characters.
    pub async fn list_dead_letters(&self, principal: &Principal, q: &DeadLetterParams) -> Result<Page<DeadLetter>> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        let mut errors = Vec::new();
        if q.consumer.as_ref().is_some_and(|c| c.chars().count() > 100) {
            errors.push(FieldError::new("consumer", "must be at most 100 characters"));
        }
        let page = match PageRequest::parse(q.limit, q.cursor.as_deref(), "-failed_at") {
            Ok(p) if errors.is_empty() => p,
            Ok(_) => return Err(Error::Validation(errors)),
            Err(mut e) => {
                errors.append(&mut e);
                return Err(Error::Validation(errors));
            }
        };
        let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM dead_letters WHERE 1 = 1"));
        if let Some(c) = &q.consumer {
            let p = b.arg(Arg::Text(c.clone()));
            b.push(&format!(" AND consumer = {p}"));
        }
        match q.status {
            Some(DeadLetterStatus::Open) => b.push(" AND replayed_at IS NULL"),
            Some(DeadLetterStatus::Replayed) => b.push(" AND replayed_at IS NOT NULL"),
            None => &mut b,
        };
        if let Some(c) = &page.cursor {
            let k = b.arg(Arg::Text(c.key_text()?.to_owned()));
            let id = b.arg(Arg::Text(c.id.clone()));
            b.push(&format!(" AND (failed_at < {k} OR (failed_at = {k} AND id < {id}))"));
        }
        let lim = b.arg(Arg::Int(page.fetch_limit()));
        b.push(&format!(" ORDER BY failed_at DESC, id DESC LIMIT {lim}"));
        let rows = b.build().fetch_all(self.db.pool()).await?;
        let items = rows.iter().map(from_row).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |d| Cursor::text(db::ts(d.failed_at), d.id.to_string())))
    }

    /// Runs dead letter `id`'s consumer handler on its event again, now, once. Handled: the
    /// event is recorded as processed and the dead letter as replayed. Failed: the dead
    /// letter keeps the new error and one more attempt. Either way 200 with the outcome.
    ///
    /// Errors: 401/403 unless an admin session; 404 `NotFound("dead letter")`; 409
    /// `dead-letter-replayed` when a replay handled it already; 409 `consumer-unavailable`
    /// when this process does not run the consumer.
    pub async fn replay_dead_letter(&self, principal: &Principal, id: Uuid) -> Result<Replay> {
        principal.admit(Class::Api).await?;
        let actor = principal.require_admin_session()?;
        let letter = self.dead_letter(id).await?;
        if letter.replayed_at.is_some() {
            return Err(Error::conflict("dead-letter-replayed", "this dead letter was replayed already"));
        }
        let Some(handler) = self.handler(&letter.consumer) else {
            return Err(Error::conflict(
                "consumer-unavailable",
                "this replica does not run the dead letter's consumer",
            ));
        };
        let event: Envelope = serde_json::from_value(letter.envelope.clone())
            .map_err(|e| Error::Internal(anyhow::anyhow!("dead letter {id} holds an unreadable envelope: {e}")))?;
        let outcome = match runner::call(handler.as_ref(), &event).await {
            Ok(()) => {
                store::mark_processed(&self.db, &letter.consumer, event.id).await?;
                sqlx::query("UPDATE dead_letters SET replayed_at = $1, attempts = attempts + 1 WHERE id = $2")
                    .bind(db::now())
                    .bind(id.to_string())
                    .execute(self.db.pool())
                    .await?;
                ReplayOutcome::Handled
            }
            Err(e) => {
                sqlx::query("UPDATE dead_letters SET error = $1, attempts = attempts + 1 WHERE id = $2")
                    .bind(e.to_string())
                    .bind(id.to_string())
                    .execute(self.db.pool())
                    .await?;
                ReplayOutcome::Failed
            }
        };
        tracing::info!(dead_letter.id = %id, consumer = %letter.consumer, event.id = %event.id, user.id = %actor.id,
            outcome = ?outcome, "dead letter replayed");
        Ok(Replay { outcome, dead_letter: self.dead_letter(id).await? })
    }

    async fn dead_letter(&self, id: Uuid) -> Result<DeadLetter> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(Error::NotFound("dead letter"))?;
        Ok(from_row(&row)?)
    }
}

fn from_row(r: &sqlx::any::AnyRow) -> std::result::Result<DeadLetter, sqlx::Error> {
    let envelope: String = r.try_get("envelope")?;
    Ok(DeadLetter {
        id: db::parse_id(&r.try_get::<String, _>("id")?)?,
        consumer: r.try_get("consumer")?,
        event_id: db::parse_id(&r.try_get::<String, _>("event_id")?)?,
        event_type: r.try_get("event_type")?,
        envelope: serde_json::from_str(&envelope).map_err(|e| sqlx::Error::Decode(e.into()))?,
        error: r.try_get("error")?,
        attempts: r.try_get("attempts")?,
        failed_at: db::parse_ts(&r.try_get::<String, _>("failed_at")?)?,
        replayed_at: r.try_get::<Option<String>, _>("replayed_at")?.map(|t| db::parse_ts(&t)).transpose()?,
    })
}
