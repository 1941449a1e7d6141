//! The accounts service: registration, sessions, the caller's own profile, user
//! management, and API keys; their SQL lives in the stores ([`super::users`],
//! [`super::api_keys`]). Every operation takes the caller's [`Principal`], admits itself in
//! its rate-limit class first, then authorizes and validates its input, so every transport
//! gets the same rules and the same errors.
//!
//! Who may do what: registering, logging in, refreshing and resetting a password are open
//! to anyone (rate class `login`; logging in also runs the brute-force lockout). Reading
//! one's own account needs any credential; changing it needs a user session (API keys are
//! refused), and changing the password also the current one. Managing users and API keys
//! needs an admin logged in with a session; the support tools ([`support`]: search,
//! deactivate, reactivate, unlock) need staff logged in with a session.
//!
//! Every change to a user's sessions, role or status forgets the user's cached session
//! state ([`SessionStates`]), so it applies from the user's next request.

mod keys;
pub mod support;

pub use self::keys::{CreateApiKeyRequest, Overlap, RotateApiKeyRequest};

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::credentials::SessionStates;
use super::sessions::{self, Session};
use super::tokens::TokenKeys;
use super::users::{self, User};
use super::{Email, Password, Principal, Role, parse_name};
use crate::db::Db;
use crate::error::{Error, FieldError, Result};
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
    /// The authenticator's cache of users' session states, forgotten on every change.
    states: Arc<SessionStates>,
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
    /// A new password, 8 to 128 characters; needs `current_password`. Changing it ends
    /// every other session of the account.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// The password now in use; required with `password`.
    pub current_password: Option<String>,
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
    /// logins with `limits`, forgetting users' cached session `states` when it changes them
    /// (pass the authenticator's, [`Authenticator::session_states`](super::credentials::Authenticator::session_states)).
    pub fn new(db: Db, tokens: Arc<TokenKeys>, limits: Limits, states: Arc<SessionStates>) -> Self {
        Self { db, tokens, limits, states }
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
        sessions::start_session(&self.db, &self.tokens, user.id).await
    }

    /// Logs in with email and password and starts a session. Rate class `login`, then the
    /// brute-force lockout (src/ratelimit/lockout.rs) per account and address pair, per
    /// account (the submitted email) and per client address (`principal.client_ip`;
    /// callers without one share the unspecified address).
    ///
    /// Errors: 401 `InvalidCredentials` (wrong email or password, or a deactivated account:
    /// the same answer for all), 429 `RateLimited` (policy `login`, `login-account-address`,
    /// `login-account` or `login-ip`), 503 `Unavailable` while a configured Redis is
    /// unreachable (login fails closed).
    pub async fn login(&self, principal: &Principal, req: &LoginRequest) -> Result<Session> {
        principal.admit(Class::Login).await?;
        let attempt = users::authenticate(&self.db, &req.email, &req.password);
        let user = self.limits.guard_login(client_ip(principal), &req.email, attempt).await?;
        sessions::start_session(&self.db, &self.tokens, user.id).await
    }

    /// Exchanges a refresh token for a new session of the same family (see
    /// [`sessions::refresh`]). Anyone holding the token may. Rate class `login`.
    ///
    /// Errors: 401 `InvalidToken` (unknown, expired, revoked, deactivated user), 401
    /// `RefreshTokenReused` (the whole family is revoked, and its access tokens are refused
    /// from their next request), 429 `RateLimited`.
    pub async fn refresh(&self, principal: &Principal, req: &RefreshRequest) -> Result<Session> {
        principal.admit(Class::Login).await?;
        let r = sessions::refresh(&self.db, &self.tokens, &req.refresh_token).await;
        if let Err(Error::RefreshTokenReused) = &r {
            // Rare; which user it was is not returned, so forget everyone's state.
            self.states.forget_all();
        }
        r
    }

    /// Ends the session the refresh token belongs to; its access tokens are refused from
    /// their next request. Idempotent: unknown tokens are ignored. Anyone holding the token
    /// may. Rate class `api`; errors: 429 only.
    pub async fn logout(&self, principal: &Principal, req: &RefreshRequest) -> Result<()> {
        principal.admit(Class::Api).await?;
        if let Some(user) = sessions::logout(&self.db, &req.refresh_token).await? {
            self.states.forget(user);
        }
        Ok(())
    }

    /// Sets a password with a one-time reset token and ends every session of the account.
    /// Anyone holding the token may. Rate class `login`.
    ///
    /// Errors: 422 `Validation` on `new_password`, 401 `InvalidToken` (unknown, used or
    /// expired token), 429 `RateLimited`.
    pub async fn reset_password(&self, principal: &Principal, req: &ResetPasswordRequest) -> Result<()> {
        principal.admit(Class::Login).await?;
        validate! { password <- "new_password" => Password::parse(&req.new_password); }
        let user = sessions::reset_password(&self.db, &req.token, &password).await?;
        self.states.forget(user);
        Ok(())
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
    /// session. A new password needs the current one (checked under the login lockout of
    /// the caller's account and address, so a stolen session cannot guess it freely) and
    /// ends every other session of the account: their refresh tokens are revoked and their
    /// access tokens refused from their next request. The caller's session goes on. Rate
    /// class `api`.
    ///
    /// Errors: 401 `Unauthenticated`, 403 `InsufficientScope("session")` for API keys, 422
    /// `Validation` on `name`, `password`, or `current_password` (missing with `password`,
    /// or wrong), 429 `RateLimited` (the lockout), 503 `Unavailable` (lockout store down).
    pub async fn update_me(&self, principal: &Principal, req: &UpdateMeRequest) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_session()?;
        let current_required = || match (&req.password, &req.current_password) {
            (Some(_), None) => Err("is required to change the password".to_owned()),
            _ => Ok(()),
        };
        validate! {
            name <- "name" => req.name.as_deref().map(parse_name).transpose();
            password <- "password" => req.password.as_deref().map(Password::parse).transpose();
            _current <- "current_password" => current_required();
        }
        if let (Some(new), Some(current)) = (&password, &req.current_password) {
            let me = users::get(&self.db, caller.id).await?;
            let check = users::verify_password(&self.db, caller.id, current);
            match self.limits.guard_login(client_ip(principal), &me.email, check).await {
                Err(Error::InvalidCredentials) => {
                    return Err(Error::Validation(vec![FieldError::new(
                        "current_password",
                        "does not match your current password",
                    )]));
                }
                other => other?,
            }
            sessions::change_password(&self.db, caller.id, new, caller.session_id).await?;
            self.states.forget(caller.id);
        }
        match name {
            Some(name) => users::rename(&self.db, caller.id, &name).await,
            None => users::get(&self.db, caller.id).await,
        }
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
    /// the last admin cannot lock everyone out by accident. The user's access tokens are
    /// refused from their next request; their sessions refresh into the new role. Rate
    /// class `api`.
    ///
    /// Errors: 401, 403 as for [`list_users`](Self::list_users), 403 `Forbidden` for one's
    /// own role, 404 `NotFound("user")`.
    pub async fn set_role(&self, principal: &Principal, id: Uuid, role: Role) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_admin_session()?;
        let user = users::set_role(&self.db, caller.id, id, role).await?;
        self.states.forget(id);
        Ok(user)
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

/// The caller's address for the login lockout; callers without one (CLI, direct calls)
/// share the unspecified address.
fn client_ip(principal: &Principal) -> IpAddr {
    principal.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}
