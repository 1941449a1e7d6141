//! Who is calling, whatever the transport: the [`Principal`] every service function takes.
//!
//! REST, GraphQL, gRPC and WebSocket resolve it the same way ([`super::credentials`]) from
//! a bearer token or an API-key string, then pass it to the service, which decides what the
//! caller may do. Nothing here knows about HTTP.

use std::net::{IpAddr, Ipv4Addr};

use uuid::Uuid;

use super::Role;
use super::scopes::{Scope, Scopes};
use crate::error::{Error, Result};
use crate::ratelimit::{Admission, Class, Identity, Limits};

/// An authenticated caller: a user session, or an API key acting as its owner with the
/// owner's current role narrowed to the key's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The user (for an API key: its owner).
    pub id: Uuid,
    pub role: Role,
    /// `None` for user sessions (everything the role allows); an API key's scopes otherwise.
    pub scopes: Option<Scopes>,
    /// The API key the call came with, if any.
    pub api_key_id: Option<Uuid>,
    /// The session (refresh-token family) of a user session's access token; `None` for API
    /// keys and for actors made without a token (CLI, tests).
    pub session_id: Option<Uuid>,
}

impl Actor {
    /// A user session with everything `role` allows.
    pub fn session(id: Uuid, role: Role) -> Self {
        Self { id, role, scopes: None, api_key_id: None, session_id: None }
    }

    /// The same actor, in session `session_id`.
    pub fn in_session(mut self, session_id: Uuid) -> Self {
        self.session_id = Some(session_id);
        self
    }

    pub fn is_staff(&self) -> bool {
        self.role >= Role::Staff
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may use `scope`: a session may use every scope, an API key those
    /// it was given (a `:write` includes its `:read`). Scopes never widen a role.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.is_none_or(|s| s.allows(scope))
    }
}

/// Who is calling: an [`Actor`], or nobody (anonymous), and from which network address.
///
/// Services authorize with the `require_*` methods; each returns the actor on success and
/// otherwise the error every transport reports alike: `Unauthenticated` (no actor),
/// `InsufficientScope` (an API key without the scope, or any API key where a person must be
/// logged in), `Forbidden` (the role does not allow it).
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Option<Actor>,
    /// The client's address as the transport determined it (after trusted proxies), for
    /// rate limits of anonymous callers and the login lockout; `None` when not networked
    /// (CLI, workers, tests).
    pub client_ip: Option<IpAddr>,
    /// The rate limits this caller's operations draw from; `None`: unlimited (workers, the
    /// CLI, direct calls in tests).
    admission: Option<Admission>,
}

impl Principal {
    /// Nobody logged in.
    pub fn anonymous() -> Self {
        Self { actor: None, client_ip: None, admission: None }
    }

    /// An authenticated caller.
    pub fn actor(actor: Actor) -> Self {
        Self { actor: Some(actor), client_ip: None, admission: None }
    }

    /// The same principal, seen from `ip`.
    pub fn from_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// The same principal, drawing from `limits` (see [`admit`](Self::admit)).
    pub fn limited_by(mut self, limits: Limits) -> Self {
        self.admission = Some(Admission::new(limits, self.rate_identity()));
        self
    }

    /// The rate-limit admission attached by the transport, if any.
    pub fn admission(&self) -> Option<&Admission> {
        self.admission.as_ref()
    }

    /// Admits one operation of `class` (src/ratelimit.rs): what every service operation does
    /// first. `RateLimited` when over the caller's budget; always `Ok` without limits.
    pub async fn admit(&self, class: Class) -> Result<()> {
        match &self.admission {
            Some(a) => a.admit(class).await,
            None => Ok(()),
        }
    }

    /// Whose rate-limit budget this caller draws from: the API key, else the user, else the
    /// address (callers with no address share the unspecified one's budget).
    pub fn rate_identity(&self) -> Identity {
        match self.actor {
            Some(Actor { api_key_id: Some(k), .. }) => Identity::ApiKey(k),
            Some(a) => Identity::User(a.id),
            None => Identity::Ip(self.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
        }
    }

    /// Whether the caller is staff or admin (anonymous: no).
    pub fn is_staff(&self) -> bool {
        self.actor.is_some_and(|a| a.is_staff())
    }

    /// The actor, or 401 `unauthenticated`.
    pub fn authenticated(&self) -> Result<Actor> {
        self.actor.ok_or(Error::Unauthenticated)
    }

    /// The actor, if it may use `scope` (any role).
    pub fn require(&self, scope: Scope) -> Result<Actor> {
        let a = self.authenticated()?;
        if a.has_scope(scope) { Ok(a) } else { Err(Error::InsufficientScope(scope.as_str())) }
    }

    /// The actor, if staff or admin and allowed `scope`.
    pub fn require_staff(&self, scope: Scope) -> Result<Actor> {
        let a = self.require(scope)?;
        if a.is_staff() { Ok(a) } else { Err(Error::Forbidden("this action needs the staff role")) }
    }

    /// The actor, if a person is logged in (no API key): managing users, roles, API keys,
    /// flags and one's own password needs a session, so a leaked key can never mint more
    /// access.
    pub fn require_session(&self) -> Result<Actor> {
        let a = self.authenticated()?;
        if a.api_key_id.is_some() { Err(Error::InsufficientScope("session")) } else { Ok(a) }
    }

    /// The actor, if staff or admin logged in with a session (support tools that act on
    /// people's accounts are not for keys).
    pub fn require_staff_session(&self) -> Result<Actor> {
        let a = self.require_session()?;
        if a.is_staff() { Ok(a) } else { Err(Error::Forbidden("this action needs the staff role")) }
    }

    /// The actor, if an admin logged in with a session.
    pub fn require_admin_session(&self) -> Result<Actor> {
        let a = self.require_session()?;
        if a.is_admin() { Ok(a) } else { Err(Error::Forbidden("this action needs the admin role")) }
    }

    /// For public reads: anonymous callers and sessions pass; an API key needs `scope`.
    pub fn allow_public(&self, scope: Scope) -> Result<()> {
        match self.actor {
            Some(a) if !a.has_scope(scope) => Err(Error::InsufficientScope(scope.as_str())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role, scopes: &[Scope]) -> Principal {
        Principal::actor(Actor {
            id: Uuid::nil(),
            role,
            scopes: Some(scopes.iter().copied().collect()),
            api_key_id: Some(Uuid::nil()),
            session_id: None,
        })
    }

    #[test]
    fn scopes_narrow_but_never_widen_a_role() {
        let customer_key = key(Role::Customer, &[Scope::CatalogWrite]);
        assert!(matches!(customer_key.require_staff(Scope::CatalogWrite), Err(Error::Forbidden(_))));
        let staff_key = key(Role::Staff, &[Scope::CatalogRead]);
        assert!(matches!(staff_key.require_staff(Scope::CatalogWrite), Err(Error::InsufficientScope(_))));
        assert!(key(Role::Staff, &[Scope::CatalogWrite]).require_staff(Scope::CatalogRead).is_ok());
    }

    #[test]
    fn sessions_are_required_where_keys_must_not_reach() {
        assert!(matches!(key(Role::Admin, &[]).require_admin_session(), Err(Error::InsufficientScope("session"))));
        let admin = Principal::actor(Actor::session(Uuid::nil(), Role::Admin));
        assert!(admin.require_admin_session().is_ok());
        let staff = Principal::actor(Actor::session(Uuid::nil(), Role::Staff));
        assert!(matches!(staff.require_admin_session(), Err(Error::Forbidden(_))));
        assert!(matches!(Principal::anonymous().require_session(), Err(Error::Unauthenticated)));
    }

    #[test]
    fn public_reads_refuse_only_keys_without_the_scope() {
        assert!(Principal::anonymous().allow_public(Scope::CatalogRead).is_ok());
        assert!(key(Role::Customer, &[Scope::OrdersRead]).allow_public(Scope::CatalogRead).is_err());
        assert!(key(Role::Customer, &[Scope::CatalogRead]).allow_public(Scope::CatalogRead).is_ok());
    }
}
