//! Customers and staff: identities, roles, passwords, tokens, and the extractors that
//! authenticate a request (`AuthUser`, `MaybeAuthUser`).

pub mod api_keys;
pub mod credentials;
pub mod password;
pub mod scopes;
pub mod tokens;
pub mod users;

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use self::credentials::Caller;
use self::scopes::{Scope, Scopes};
use crate::app::AppState;
use crate::error::Error;

/// What a user may do. `customer`: own orders; `staff`: catalog, inventory, all orders,
/// dashboard; `admin`: everything staff may, plus users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Staff,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "customer" => Ok(Role::Customer),
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?}; expected customer, staff or admin")),
        }
    }
}

/// An email address, trimmed and lower-cased. Accepts `local@domain.tld` with no spaces,
/// at most 254 characters (RFC 5321 §4.5.3.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid { Ok(Self(s)) } else { Err("must be an email address like name@example.com".into()) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters (NIST SP 800-63B §5.1.1.2; the upper bound keeps
/// hashing cost bounded).
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let n = raw.chars().count();
        if n < 8 {
            Err("must be at least 8 characters".into())
        } else if n > 128 {
            Err("must be at most 128 characters".into())
        } else {
            Ok(Self(raw.to_owned()))
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A display name: 1 to 200 characters after trimming.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    match s.chars().count() {
        0 => Err("must not be empty".into()),
        n if n > 200 => Err("must be at most 200 characters".into()),
        _ => Ok(s.to_owned()),
    }
}

/// The authenticated caller: a user session (`Authorization: Bearer <access token>`) or an
/// API key acting as its owner (see [`credentials`]). Rejects with 401 problem+json when
/// missing or invalid.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
    /// `None` for user sessions (everything the role allows); an API key's scopes otherwise.
    pub scopes: Option<Scopes>,
    /// The API key the request came with, if any.
    pub api_key_id: Option<Uuid>,
}

impl AuthUser {
    pub fn is_staff(&self) -> bool {
        self.role >= Role::Staff
    }

    /// 403 unless the caller is staff or admin.
    pub fn require_staff(&self) -> Result<(), Error> {
        if self.is_staff() { Ok(()) } else { Err(Error::Forbidden("this action needs the staff role")) }
    }

    /// 403 unless the caller is admin.
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.role == Role::Admin { Ok(()) } else { Err(Error::Forbidden("this action needs the admin role")) }
    }

    /// 403 `insufficient-scope` unless the caller may use `scope`: a user session may use
    /// every scope, an API key those it was given (a `:write` includes its `:read`). The
    /// role check still applies on top: scopes never widen a role.
    pub fn require_scope(&self, scope: Scope) -> Result<(), Error> {
        match self.scopes {
            Some(s) if !s.allows(scope) => Err(Error::InsufficientScope(scope.as_str())),
            _ => Ok(()),
        }
    }

    /// 403 `insufficient-scope` for API keys: managing users, roles, API keys and one's own
    /// password needs a person logged in, so a leaked key can never mint more access.
    pub fn require_session(&self) -> Result<(), Error> {
        if self.scopes.is_some() { Err(Error::InsufficientScope("session")) } else { Ok(()) }
    }
}

/// The caller as the rate-limit middleware resolved it, or resolved here when no middleware
/// did (routes outside `/api/v1`, or tests that call the router directly).
async fn caller(parts: &mut Parts, state: &AppState) -> Result<Option<AuthUser>, Error> {
    let caller = match parts.extensions.get::<Caller>() {
        Some(c) => *c,
        None => {
            let c = credentials::resolve(&parts.headers, state).await?;
            parts.extensions.insert(c);
            c
        }
    };
    let user = caller.into_result()?;
    if let Some(u) = &user {
        tracing::Span::current().record("user.id", tracing::field::display(u.id));
    }
    Ok(user)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        caller(parts, state).await?.ok_or(Error::Unauthenticated)
    }
}

/// The caller if a valid token or key was sent, `None` for anonymous requests. An invalid
/// token or key is still a 401: a client that sends one wants to know.
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        caller(parts, state).await.map(MaybeAuthUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_have_bounds_and_never_print() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Admin > Role::Staff && Role::Staff > Role::Customer);
        assert!("root".parse::<Role>().is_err());
    }
}
