//! What a shop's support team does with people's accounts: find a user by email or name,
//! deactivate and reactivate an account, and lift a login lockout. Each needs staff or an
//! admin logged in with a session (never an API key: these act on people's accounts).
//! Staff act on customers' accounts only; admins on anyone's but their own. Rate class
//! `api`; each may fail with 401 `Unauthenticated`, 403 `InsufficientScope("session")` (any
//! API key) or 403 `Forbidden` (a customer), and 429 `RateLimited`.

use serde::Deserialize;
use uuid::Uuid;

use super::Accounts;
use crate::auth::users::{self, User};
use crate::auth::{Actor, Principal, Role};
use crate::error::{Error, FieldError, Result};
use crate::pagination::{Page, PageRequest};
use crate::ratelimit::Class;

/// What to look for: 1 to 200 characters after trimming, matched case-insensitively
/// anywhere in a user's email or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

impl SearchTerm {
    /// The longest term, in characters.
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        match s.chars().count() {
            0 => Err("must not be empty".into()),
            n if n > Self::MAX_CHARS => Err(format!("must be at most {} characters", Self::MAX_CHARS)),
            _ => Ok(Self(s.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The query of a user search: the term and the page.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserSearchParams {
    /// Part of an email or name, 1 to 200 characters, case-insensitive.
    #[param(min_length = 1, max_length = 200)]
    pub q: String,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (of the same search).
    pub cursor: Option<String>,
}

/// Whether `caller` may deactivate, reactivate or otherwise act on `target`'s account:
/// admins on anyone's but their own, staff on customers' only.
fn may_act_on(caller: &Actor, target: &User) -> Result<()> {
    if caller.id == target.id {
        Err(Error::Forbidden("you cannot deactivate or reactivate your own account"))
    } else if caller.is_admin() || target.role == Role::Customer {
        Ok(())
    } else {
        Err(Error::Forbidden("staff may act on customers' accounts only"))
    }
}

impl Accounts {
    /// Users whose email or name contains `params.q` (case-insensitive), newest first,
    /// keyset-paged like [`list_users`](Self::list_users). Staff or admin session.
    ///
    /// Errors: 422 `Validation` on `q`, `limit` or `cursor`.
    pub async fn search_users(&self, principal: &Principal, params: &UserSearchParams) -> Result<Page<User>> {
        principal.admit(Class::Api).await?;
        principal.require_staff_session()?;
        let term = SearchTerm::parse(&params.q);
        let page = PageRequest::parse(params.limit, params.cursor.as_deref(), "-created_at");
        match (term, page) {
            (Ok(term), Ok(page)) => users::search(&self.db, term.as_str(), &page).await,
            (term, page) => {
                let mut errors: Vec<FieldError> = term.err().map(|m| FieldError::new("q", m)).into_iter().collect();
                errors.extend(page.err().unwrap_or_default());
                Err(Error::Validation(errors))
            }
        }
    }

    /// Deactivates user `id` (idempotent): they cannot log in (the same 401 as a wrong
    /// password), their sessions end, and their access tokens and API keys are refused
    /// from the next request. Staff session for customers, admin session for anyone but
    /// oneself.
    ///
    /// Errors: 403 `Forbidden` (staff on staff or admin, anyone on themselves), 404
    /// `NotFound("user")`.
    pub async fn deactivate_user(&self, principal: &Principal, id: Uuid) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_staff_session()?;
        may_act_on(&caller, &users::get(&self.db, id).await?)?;
        let user = users::deactivate(&self.db, id).await?;
        self.states.forget(id);
        Ok(user)
    }

    /// Lets a deactivated user log in again (idempotent; sessions ended by the deactivation
    /// stay ended). Who may: as for [`deactivate_user`](Self::deactivate_user).
    ///
    /// Errors: 403 `Forbidden`, 404 `NotFound("user")`.
    pub async fn reactivate_user(&self, principal: &Principal, id: Uuid) -> Result<User> {
        principal.admit(Class::Api).await?;
        let caller = principal.require_staff_session()?;
        may_act_on(&caller, &users::get(&self.db, id).await?)?;
        let user = users::reactivate(&self.db, id).await?;
        self.states.forget(id);
        Ok(user)
    }

    /// Lifts user `id`'s login lockout: the account's failure count and every address's
    /// wait for it (src/ratelimit/lockout.rs). Staff or admin session, for any user.
    ///
    /// Errors: 404 `NotFound("user")`, 503 `Unavailable` while a configured Redis is
    /// unreachable.
    pub async fn unlock_user(&self, principal: &Principal, id: Uuid) -> Result<()> {
        principal.admit(Class::Api).await?;
        principal.require_staff_session()?;
        let user = users::get(&self.db, id).await?;
        self.limits.unlock_login(&user.email).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_trimmed_and_bounded() {
        assert_eq!(SearchTerm::parse("  ann@ ").unwrap().as_str(), "ann@");
        assert_eq!(SearchTerm::parse("   ").unwrap_err(), "must not be empty");
        assert!(SearchTerm::parse(&"x".repeat(200)).is_ok());
        assert_eq!(SearchTerm::parse(&"x".repeat(201)).unwrap_err(), "must be at most 200 characters");
    }

    #[test]
    fn staff_act_on_customers_and_admins_on_anyone_but_themselves() {
        let user = |role| User {
            id: Uuid::now_v7(),
            email: "u@example.com".into(),
            name: "U".into(),
            role,
            can_log_in: true,
            external_ref: None,
            created_at: chrono::Utc::now(),
            deactivated_at: None,
        };
        let staff = Actor::session(Uuid::now_v7(), Role::Staff);
        let admin = Actor::session(Uuid::now_v7(), Role::Admin);
        assert!(may_act_on(&staff, &user(Role::Customer)).is_ok());
        assert!(may_act_on(&staff, &user(Role::Staff)).is_err());
        assert!(may_act_on(&staff, &user(Role::Admin)).is_err());
        assert!(may_act_on(&admin, &user(Role::Admin)).is_ok());
        let me = User { id: admin.id, ..user(Role::Admin) };
        assert!(may_act_on(&admin, &me).is_err());
    }
}
