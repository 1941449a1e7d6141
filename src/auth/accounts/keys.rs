//! The accounts service's API-key operations (admin sessions only) and their request types.

use std::time::Duration as StdDuration;

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Accounts;
use crate::auth::Principal;
use crate::auth::api_keys::{self, ApiKey, CreatedApiKey};
use crate::auth::parse_name;
use crate::auth::scopes::{Scope, Scopes};
use crate::error::{Error, Result};
use crate::pagination::{Page, PageParams, PageRequest};
use crate::ratelimit::Class;
use crate::validate;

/// A new API key as an admin asks for it; checked by [`Accounts::create_api_key`].
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// What the key is for, e.g. `warehouse sync`.
    #[schema(schema_with = crate::auth::name_schema)]
    pub name: String,
    /// At least one; a `:write` scope includes its `:read`.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// The user the key acts as (default: the admin creating it). The key has that user's
    /// role, narrowed to `scopes`.
    pub owner_id: Option<Uuid>,
}

/// How long a rotated key keeps working; checked by [`Accounts::rotate_api_key`].
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyRequest {
    /// How long the old key keeps working, 0 to 2592000 (30 days).
    #[schema(maximum = 2592000)]
    pub overlap_secs: u64,
}

/// How long the old key keeps working after a rotation: 0 to [`Overlap::MAX_SECS`] seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Overlap(StdDuration);

impl Overlap {
    /// The longest overlap a rotation may grant: 30 days, in seconds.
    pub const MAX_SECS: u64 = 30 * 24 * 3600;

    /// `secs` seconds, if at most [`MAX_SECS`](Self::MAX_SECS).
    pub fn parse(secs: u64) -> Result<Self, String> {
        if secs <= Self::MAX_SECS {
            Ok(Self(StdDuration::from_secs(secs)))
        } else {
            Err(format!("must be at most {}", Self::MAX_SECS))
        }
    }

    /// The overlap as a duration (whole seconds).
    pub fn as_duration(self) -> StdDuration {
        self.0
    }
}

impl TryFrom<u64> for Overlap {
    type Error = String;
    fn try_from(secs: u64) -> Result<Self, String> {
        Self::parse(secs)
    }
}

/// The scopes of a new key: at least one.
fn key_scopes(scopes: &[Scope]) -> Result<Scopes, String> {
    let set: Scopes = scopes.iter().copied().collect();
    if set.is_empty() { Err("must name at least one scope".into()) } else { Ok(set) }
}

/// API keys: every operation needs an admin logged in with a session (a key can never
/// create, list, rotate or revoke keys, so a leaked key cannot mint more access). Rate
/// class `api`. Each may fail with 401 `Unauthenticated`, 403 `InsufficientScope("session")`
/// (any API key) or 403 `Forbidden` (not an admin), and 429 `RateLimited`.
impl Accounts {
    /// Creates a key acting as `req.owner_id` (default: the caller) with `req.scopes`; the
    /// answer holds the secret, shown this once.
    ///
    /// Errors: 422 `Validation` on `name` (1 to 200 characters), `scopes` (empty) or
    /// `owner_id` (no such user).
    pub async fn create_api_key(&self, principal: &Principal, req: &CreateApiKeyRequest) -> Result<CreatedApiKey> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_admin_session()?;
        validate! {
            name <- "name" => parse_name(&req.name);
            scopes <- "scopes" => key_scopes(&req.scopes);
        }
        let owner = req.owner_id.unwrap_or(caller.id);
        api_keys::create(&self.db, &name, owner, scopes, caller.id).await
    }

    /// Every key, newest first (revoked and expired ones too), never a secret;
    /// `page.limit` 1 to 100 (default 20).
    ///
    /// Errors: 422 `Validation` on `limit` or `cursor`.
    pub async fn list_api_keys(&self, principal: &Principal, page: &PageParams) -> Result<Page<ApiKey>> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        let page = PageRequest::parse(page.limit, page.cursor.as_deref(), "-created_at").map_err(Error::Validation)?;
        api_keys::list(&self.db, &page).await
    }

    /// One key. Errors: 404 `NotFound("api key")`.
    pub async fn get_api_key(&self, principal: &Principal, id: Uuid) -> Result<ApiKey> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        api_keys::get(&self.db, id).await
    }

    /// Revokes a key at once. Idempotent. Errors: 404 `NotFound("api key")`.
    pub async fn revoke_api_key(&self, principal: &Principal, id: Uuid) -> Result<()> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        api_keys::revoke(&self.db, id).await
    }

    /// Replaces key `id` by a new one with the same name, owner and scopes; the old one
    /// keeps working for `req.overlap_secs` more (see [`api_keys::rotate`]).
    ///
    /// Errors: 422 `Validation` on `overlap_secs` (over [`Overlap::MAX_SECS`]), 404
    /// `NotFound("api key")`, 409 `api-key-inactive` (revoked, expired or rotated already).
    pub async fn rotate_api_key(
        &self,
        principal: &Principal,
        id: Uuid,
        req: &RotateApiKeyRequest,
    ) -> Result<CreatedApiKey> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_admin_session()?;
        validate! { overlap <- "overlap_secs" => Overlap::parse(req.overlap_secs); }
        api_keys::rotate(&self.db, id, overlap.as_duration(), caller.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_of_up_to_thirty_days_parse_and_longer_ones_do_not() {
        assert_eq!(Overlap::parse(0).unwrap().as_duration(), StdDuration::ZERO);
        assert_eq!(Overlap::parse(2_592_000).unwrap().as_duration(), StdDuration::from_secs(2_592_000));
        assert_eq!(Overlap::parse(2_592_001).unwrap_err(), "must be at most 2592000");
        assert!(serde_json::from_str::<Overlap>("2592001").is_err());
        assert_eq!(serde_json::from_str::<Overlap>("60").unwrap().as_duration(), StdDuration::from_secs(60));
    }

    #[test]
    fn a_key_needs_at_least_one_scope() {
        assert_eq!(key_scopes(&[]).unwrap_err(), "must name at least one scope");
        assert!(key_scopes(&[Scope::CatalogRead, Scope::CatalogRead]).is_ok());
    }
}
