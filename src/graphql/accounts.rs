//! `me`: the caller's own account (the same `Accounts::me` as `GET /api/v1/users/me`).

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::error::Gql;
use super::schema::{app, principal};
use crate::auth::users::User;

/// A user account.
pub struct UserNode(User);

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `customer`, `staff` or `admin`.
    async fn role(&self) -> &'static str {
        self.0.role.as_str()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct AccountQueries;

#[Object]
impl AccountQueries {
    /// The caller's account (UNAUTHENTICATED without credentials).
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<UserNode> {
        Ok(UserNode(app(ctx).accounts.me(&principal(ctx)?).await.gql()?))
    }
}
