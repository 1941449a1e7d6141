//! Runtime feature flags: behaviour that operators switch on and off without a restart.
//!
//! Every flag is declared in [`FLAGS`] with its default. Overrides live in the
//! `feature_flags` table, so they are shared by all replicas; each process keeps an
//! in-memory copy, refreshed every `flags.refresh_interval_ms` and at once when changed
//! through this process. Reading a flag is a lock-free-ish read of that copy, never a query.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::ratelimit::Class;

/// A flag and its default.
#[derive(Debug, Clone, Copy)]
pub struct FlagDef {
    pub key: &'static str,
    pub default: bool,
    pub description: &'static str,
}

/// Every flag orderly knows.
pub const FLAGS: &[FlagDef] = &[FlagDef {
    key: REQUIRE_SHIPPING_ADDRESS,
    default: false,
    description: "Checkout rejects orders without a shipping_address (422).",
}];

/// New checkout rule: an order must say where it ships.
pub const REQUIRE_SHIPPING_ADDRESS: &str = "checkout.require_shipping_address";

/// A flag's current state, as the admin API and `/readyz` show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlagState {
    pub key: &'static str,
    pub enabled: bool,
    pub default: bool,
    pub description: &'static str,
    /// When it was last set; `null` while it has its default.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Each flag's value and when it was last set (`None`: its default).
type Values = HashMap<&'static str, (bool, Option<DateTime<Utc>>)>;

/// The process's copy of the flags.
pub struct Flags {
    values: RwLock<Values>,
}

impl Default for Flags {
    fn default() -> Self {
        Self { values: RwLock::new(FLAGS.iter().map(|f| (f.key, (f.default, None))).collect()) }
    }
}

fn def(key: &str) -> Option<&'static FlagDef> {
    FLAGS.iter().find(|f| f.key == key)
}

impl Flags {
    /// Whether `key` is on. Unknown keys are off.
    pub fn is_enabled(&self, key: &str) -> bool {
        self.values.read().map(|v| v.get(key).is_some_and(|(on, _)| *on)).unwrap_or(false)
    }

    /// Every flag with its state, in declaration order.
    pub fn snapshot(&self) -> Vec<FlagState> {
        let values = self.values.read().map(|v| v.clone()).unwrap_or_default();
        FLAGS
            .iter()
            .map(|f| {
                let (enabled, updated_at) = values.get(f.key).copied().unwrap_or((f.default, None));
                FlagState { key: f.key, enabled, default: f.default, description: f.description, updated_at }
            })
            .collect()
    }

    /// Reloads overrides from the database.
    pub async fn refresh(&self, db: &Db) -> Result<()> {
        let rows = sqlx::query("SELECT key, enabled, updated_at FROM feature_flags").fetch_all(db.pool()).await?;
        let mut next: Values = FLAGS.iter().map(|f| (f.key, (f.default, None))).collect();
        for r in &rows {
            let key: String = r.try_get("key")?;
            if let Some(d) = def(&key) {
                let on: i64 = r.try_get("enabled")?;
                let at = db::parse_ts(&r.try_get::<String, _>("updated_at")?)?;
                next.insert(d.key, (on == 1, Some(at)));
            }
        }
        if let Ok(mut v) = self.values.write() {
            *v = next;
        }
        Ok(())
    }

    /// Every flag with its state, for an admin logged in with a session. Rate class `api`.
    ///
    /// Errors: 401 `Unauthenticated`, 403 `InsufficientScope("session")` (API keys) or
    /// `Forbidden` (not an admin), 429 `RateLimited`.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<FlagState>> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        Ok(self.snapshot())
    }

    /// Turns flag `key` on or off for every replica (in `db`; this process at once, the
    /// others within `flags.refresh_interval_ms`). Admin session. Rate class `api`.
    ///
    /// Errors: 401, 403 and 429 as for [`list`](Self::list), 404 `NotFound("flag")` for a
    /// key not in [`FLAGS`].
    pub async fn set(&self, principal: &Principal, db: &Db, key: &str, enabled: bool) -> Result<FlagState> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_admin_session()?;
        self.store(db, key, enabled, caller.id).await
    }

    /// Stores `key`'s new value, attributed to `actor`, and reloads. 404 for unknown flags.
    async fn store(&self, db: &Db, key: &str, enabled: bool, actor: Uuid) -> Result<FlagState> {
        let d = def(key).ok_or(Error::NotFound("flag"))?;
        sqlx::query(
            "INSERT INTO feature_flags (key, enabled, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET enabled = $2, updated_by = $3, updated_at = $4",
        )
        .bind(d.key)
        .bind(i64::from(enabled))
        .bind(actor.to_string())
        .bind(db::now())
        .execute(db.pool())
        .await?;
        tracing::info!(flag = d.key, enabled, user.id = %actor, "feature flag changed");
        self.refresh(db).await?;
        self.snapshot().into_iter().find(|f| f.key == d.key).ok_or(Error::NotFound("flag"))
    }
}

/// Refreshes `flags` from the database every `interval` until `shutdown` turns true.
pub async fn run_refresher(flags: Arc<Flags>, db: Db, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                if let Err(e) = flags.refresh(&db).await {
                    tracing::warn!(error = ?e, "feature flag refresh failed; keeping the last values");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_start_at_their_defaults_and_unknown_ones_are_off() {
        let f = Flags::default();
        assert!(!f.is_enabled(REQUIRE_SHIPPING_ADDRESS));
        assert!(!f.is_enabled("no.such.flag"));
        assert_eq!(f.snapshot().len(), FLAGS.len());
    }
}
