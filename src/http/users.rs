//! `/users`: user management, admin only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Query};
use super::problem::Problem;
use crate::auth::users::{self, User};
use crate::auth::{Email, Password, Principal, Role, parse_name};
use crate::error::{Error, Result};
use crate::pagination::{Page, PageParams, PageRequest};
use crate::services::AppState;
use crate::validate;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(issue_password_reset))
}

/// List users, newest first.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<User>), (status = 403, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<User>>> {
    let _ = principal.require_admin_session()?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref(), "-created_at").map_err(Error::Validation)?;
    Ok(Json(users::list(&state.db, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    email: String,
    /// Omit to create an account that cannot log in until a password is set.
    password: Option<String>,
    name: String,
    role: Role,
}

/// Create a user with any role.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>)> {
    let _ = principal.require_admin_session()?;
    validate! {
        email <- "email" => Email::parse(&body.email);
        password <- "password" => body.password.as_deref().map(Password::parse).transpose();
        name <- "name" => parse_name(&body.name);
    }
    let user = users::create(&state.db, &email, password.as_ref(), &name, body.role).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
async fn get_user(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<User>> {
    let _ = principal.require_admin_session()?;
    Ok(Json(users::get(&state.db, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    role: Role,
}

/// Change a user's role. Admins cannot change their own.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])), request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateUserRequest>,
) -> Result<Json<User>> {
    let caller = principal.require_admin_session()?;
    Ok(Json(users::set_role(&state.db, caller.id, id, body.role).await?))
}

#[derive(Serialize, ToSchema)]
pub struct PasswordResetToken {
    /// Shown once. Hand it to the user; they set a password with `POST /auth/password-reset`.
    token: String,
    expires_at: DateTime<Utc>,
}

/// Issue a one-time password-reset token (e.g. for imported customers who have none).
#[utoipa::path(post, path = "/users/{id}/password-reset", tag = "users", security(("bearer" = [])),
    responses((status = 201, body = PasswordResetToken), (status = 404, body = Problem)))]
async fn issue_password_reset(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<PasswordResetToken>)> {
    let _ = principal.require_admin_session()?;
    let (token, expires_at) = users::create_password_reset(&state.db, id).await?;
    Ok((StatusCode::CREATED, Json(PasswordResetToken { token, expires_at })))
}
