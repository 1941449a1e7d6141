//! The accounts service: registration, sessions, the caller's own profile, user
//! management, and API keys; their SQL lives in the stores ([`super::users`],
//! [`super::api_keys`]). Every operation takes the caller's [`Principal`], admits itself in
//! its rate-limit class first, then authorizes and validates its input, so every transport
//! gets the same rules and the same errors.
//!
//! Who may do what: registering, logging in, refreshing and resetting a password are open
//! to anyone (rate class `login`; logging in also runs the brute-force lockout). Reading
//! one's own account needs any credential; changing it needs a user session (API keys are
//! refused). Managing users and API keys needs an admin logged in with a session.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::api_keys::{self, ApiKey, CreatedApiKey};
use super::scopes::{Scope, Scopes};
use super::tokens::TokenKeys;
use super::users::{self, Session, User};
use super::{Email, Password, Principal, Role, parse_name};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::pagination::{Page, PageParams, PageRequest};
use crate::ratelimit::{Class, Limits};
use crate::validate;

/// The accounts service: what users, sessions and API keys need, and nothing else.
/// Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
    tokens: Arc<TokenKeys>,
    /// For the login lockout (the per-operation limits come with the principal).
    limits: Limits,
}

/// A new customer account. Every field is checked and every bad one reported at once.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Becomes the login; case-insensitive.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(schema_with = crate::auth::name_schema)]
    pub name: String,
}

/// Credentials for a session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// A refresh token, to renew or end a session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A one-time reset token and the password to set with it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The one-time token an admin issued (`POST /users/{id}/password-reset`).
    pub token: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Fields a user may change on their own account. There is no `role`: sending one is a 422.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[schema(schema_with = crate::auth::optional_name_schema)]
    pub name: Option<String>,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
}

/// A user created by an admin, with any role.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Omit to create an account that cannot log in until a password is set; else 8 to 128
    /// characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    #[schema(schema_with = crate::auth::name_schema)]
    pub name: String,
    pub role: Role,
}

/// A one-time password-reset token, as issued to an admin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetToken {
    /// Shown once. Hand it to the user; they set a password with `POST /auth/password-reset`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl Accounts {
    /// The service over `db`, issuing sessions with `tokens`, locking out brute-force
    /// logins with `limits`.
    pub fn new(db: Db, tokens: Arc<TokenKeys>, limits: Limits) -> Self {
        Self { db, tokens, limits }
    }

    /// Registers a customer account (never any other role: roles are granted by an admin)
    /// and starts its session. Anyone may register. Rate class `login`.
    ///
    /// Errors: 422 `Validation` naming each bad field (`email`, `password`, `name`), 409
    /// `email-taken`, 429 `RateLimited`.
    pub async fn register(&self, principal: &Principal, req: &RegisterRequest) -> Result<Session> {
        principal.admit(Class::Login).await?;
        validate! {
            email <- "email" => Email::parse(&req.email);
            password <- "password" => Password::parse(&req.password);
            name <- "name" => parse_name(&req.name);
        }
        let user = users::create(&self.db, &email, Some(&password), &name, Role::Customer).await?;
        users::start_session(&self.db, &self.tokens, user).await
    }

    /// Logs in with email and password and starts a session. Rate class `login`, then the
    /// brute-force lockout per account (the submitted email) and per client address
    /// (`principal.client_ip`; callers without one share the unspecified address).
    ///
    /// Errors: 401 `InvalidCredentials` (wrong email or password, the same answer for
    /// both), 429 `RateLimited` (policy `login`, `login-account` or `login-ip`), 503
    /// `Unavailable` while a configured Redis is unreachable (login fails closed).
    pub async fn login(&self, principal: &Principal, req: &LoginRequest) -> Result<Session> {
        principal.admit(Class::Login).await?;
        let ip = principal.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let attempt = users::authenticate(&self.db, &req.email, &req.password);
        let user = self.limits.guard_login(ip, &req.email, attempt).await?;
        users::start_session(&self.db, &self.tokens, user).await
    }

    /// Exchanges a refresh token for a new session of the same family (see
    /// [`users::refresh`]). Anyone holding the token may. Rate class `login`.
    ///
    /// Errors: 401 `InvalidToken` (unknown, expired, revoked), 401 `RefreshTokenReused`
    /// (the whole family is revoked), 429 `RateLimited`.
    pub async fn refresh(&self, principal: &Principal, req: &RefreshRequest) -> Result<Session> {
        principal.admit(Class::Login).await?;
        users::refresh(&self.db, &self.tokens, &req.refresh_token).await
    }

    /// Ends the session the refresh token belongs to. Idempotent: unknown tokens are
    /// ignored. Anyone holding the token may. Rate class `api`; errors: 429 only.
    pub async fn logout(&self, principal: &Principal, req: &RefreshRequest) -> Result<()> {
        principal.admit(Class::Api).await?;
        users::logout(&self.db, &req.refresh_token).await
    }

    /// Sets a password with a one-time reset token and ends every session of the account.
    /// Anyone holding the token may. Rate class `login`.
    ///
    /// Errors: 422 `Validation` on `new_password`, 401 `InvalidToken` (unknown, used or
    /// expired token), 429 `RateLimited`.
    pub async fn reset_password(&self, principal: &Principal, req: &ResetPasswordRequest) -> Result<()> {
        principal.admit(Class::Login).await?;
        validate! { password <- "new_password" => Password::parse(&req.new_password); }
        users::reset_password(&self.db, &req.token, &password).await
    }

    /// The caller's own account (for an API key: its owner's). Rate class `api`.
    ///
    /// Errors: 401 `Unauthenticated`.
    pub async fn me(&self, principal: &Principal) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.authenticated()?;
        users::get(&self.db, caller.id).await
    }

    /// Changes the caller's own name and/or password, never the role. Needs a user
    /// session. Rate class `api`.
    ///
    /// Errors: 401 `Unauthenticated`, 403 `InsufficientScope("session")` for API keys, 422
    /// `Validation` on `name` or `password`.
    pub async fn update_me(&self, principal: &Principal, req: &UpdateMeRequest) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_session()?;
        validate! {
            name <- "name" => req.name.as_deref().map(parse_name).transpose();
            password <- "password" => req.password.as_deref().map(Password::parse).transpose();
        }
        users::update_profile(&self.db, caller.id, name.as_deref(), password.as_ref()).await
    }

    /// Users, newest first; `page.limit` 1 to 100 (default 20). Admin session. Rate class
    /// `api`.
    ///
    /// Errors: 401, 403 (`Forbidden` for other roles, `InsufficientScope("session")` for
    /// API keys), 422 `Validation` on `limit` or `cursor`.
    pub async fn list_users(&self, principal: &Principal, page: &PageParams) -> Result<Page<User>> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        let page = PageRequest::parse(page.limit, page.cursor.as_deref(), "-created_at").map_err(Error::Validation)?;
        users::list(&self.db, &page).await
    }

    /// Creates a user with any role (without a password, the account cannot log in until
    /// one is set with a reset token). Admin session. Rate class `api`.
    ///
    /// Errors: 401, 403 as for [`list_users`](Self::list_users), 422 `Validation` naming
    /// each bad field (`email`, `password`, `name`), 409 `email-taken`.
    pub async fn create_user(&self, principal: &Principal, req: &CreateUserRequest) -> Result<User> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        validate! {
            email <- "email" => Email::parse(&req.email);
            password <- "password" => req.password.as_deref().map(Password::parse).transpose();
            name <- "name" => parse_name(&req.name);
        }
        users::create(&self.db, &email, password.as_ref(), &name, req.role).await
    }

    /// One user. Admin session. Rate class `api`.
    ///
    /// Errors: 401, 403 as for [`list_users`](Self::list_users), 404 `NotFound("user")`.
    pub async fn get_user(&self, principal: &Principal, id: Uuid) -> Result<User> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        users::get(&self.db, id).await
    }

    /// Changes another user's role. Admin session; admins cannot change their own role, so
    /// the last admin cannot lock everyone out by accident. Rate class `api`.
    ///
    /// Errors: 401, 403 as for [`list_users`](Self::list_users), 403 `Forbidden` for one's
    /// own role, 404 `NotFound("user")`.
    pub async fn set_role(&self, principal: &Principal, id: Uuid, role: Role) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_admin_session()?;
        users::set_role(&self.db, caller.id, id, role).await
    }

    /// Issues a single-use password-reset token for user `id`, valid for 24 hours, for the
    /// admin to hand over. Admin session. Rate class `api`.
    ///
    /// Errors: 401, 403 as for [`list_users`](Self::list_users), 404 `NotFound("user")`.
    pub async fn issue_password_reset(&self, principal: &Principal, id: Uuid) -> Result<PasswordResetToken> {
        principal.admit(Class::Api).await?;
        principal.require_admin_session()?;
        let (token, expires_at) = users::create_password_reset(&self.db, id).await?;
        Ok(PasswordResetToken { token, expires_at })
    }
}

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
