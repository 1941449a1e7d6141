//! The cast of principals every authorization table test runs through: anonymous, a
//! customer, another customer, staff, an admin, and API keys with narrow and broad scopes.

#![allow(dead_code)]

use orderly::auth::scopes::Scope;
use orderly::auth::users;
use orderly::auth::{Actor, Email, Password, Principal, Role};
use orderly::db::Db;
use orderly::error::{Error, ErrorKind};
use uuid::Uuid;

use crate::helpers::PASSWORD;

pub struct Cast {
    pub anonymous: Principal,
    pub customer: Principal,
    pub other_customer: Principal,
    pub staff: Principal,
    pub admin: Principal,
    /// A staff member's key with `catalog:read orders:read dashboard:read`.
    pub staff_read_key: Principal,
    /// A staff member's key with every scope.
    pub staff_write_key: Principal,
    /// An admin's key with every scope (still no session).
    pub admin_key: Principal,
    /// A customer's key with `orders:write`.
    pub customer_key: Principal,
}

async fn user(db: &Db, email: &str, role: Role) -> Actor {
    let email = Email::parse(email).unwrap();
    let user = users::create(db, &email, Some(&Password::parse(PASSWORD).unwrap()), "Cast Member", role).await.unwrap();
    Actor::session(user.id, role)
}

fn key(owner: Actor, scopes: &[Scope]) -> Principal {
    Principal::actor(Actor {
        id: owner.id,
        role: owner.role,
        scopes: Some(scopes.iter().copied().collect()),
        api_key_id: Some(Uuid::now_v7()),
        session_id: None,
    })
}

impl Cast {
    /// Creates the users in `db`.
    pub async fn new(db: &Db) -> Cast {
        let customer = user(db, "cast-customer@example.com", Role::Customer).await;
        let other = user(db, "cast-other@example.com", Role::Customer).await;
        let staff = user(db, "cast-staff@example.com", Role::Staff).await;
        let admin = user(db, "cast-admin@example.com", Role::Admin).await;
        Cast {
            anonymous: Principal::anonymous(),
            customer: Principal::actor(customer),
            other_customer: Principal::actor(other),
            staff: Principal::actor(staff),
            admin: Principal::actor(admin),
            staff_read_key: key(staff, &[Scope::CatalogRead, Scope::OrdersRead, Scope::DashboardRead]),
            staff_write_key: key(staff, &Scope::ALL),
            admin_key: key(admin, &Scope::ALL),
            customer_key: key(customer, &[Scope::OrdersWrite]),
        }
    }

    /// Every principal with its name, for table tests.
    pub fn all(&self) -> Vec<(&'static str, &Principal)> {
        vec![
            ("anonymous", &self.anonymous),
            ("customer", &self.customer),
            ("other_customer", &self.other_customer),
            ("staff", &self.staff),
            ("admin", &self.admin),
            ("staff_read_key", &self.staff_read_key),
            ("staff_write_key", &self.staff_write_key),
            ("admin_key", &self.admin_key),
            ("customer_key", &self.customer_key),
        ]
    }
}

/// What a table test expects of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The operation ran (any answer that is not an authorization refusal).
    Allowed,
    /// 401: nobody logged in.
    Unauthenticated,
    /// 403: the role or the key's scope does not allow it.
    Denied,
    /// 404: not the caller's to see.
    NotFound,
}

/// Classifies a service result for table tests: authorization refusals by kind, everything
/// else (success, validation, conflicts) as `Allowed`, since the rule under test let it
/// through.
pub fn outcome<T>(r: &Result<T, Error>) -> Outcome {
    match r {
        Err(e) if e.kind() == ErrorKind::Unauthenticated => Outcome::Unauthenticated,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Outcome::Denied,
        Err(e) if e.kind() == ErrorKind::NotFound => Outcome::NotFound,
        Err(e) if e.kind() == ErrorKind::Internal => panic!("internal error in a table test: {e:?}"),
        _ => Outcome::Allowed,
    }
}
