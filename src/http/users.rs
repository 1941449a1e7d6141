//! `/users`: user management (admin) and support tools (staff: search, deactivate,
//! reactivate, unlock). The rules live in [`crate::auth::accounts::Accounts`].

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::accounts::support::UserSearchParams;
use crate::auth::accounts::{CreateUserRequest, PasswordResetToken};
use crate::auth::users::User;
use crate::auth::{Principal, Role};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(issue_password_reset))
        .routes(routes!(search_users))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(unlock_user))
}

/// List users, newest first.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<User>), (status = 403, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<User>>> {
    Ok(Json(state.accounts.list_users(&principal, &q).await?))
}

/// Create a user with any role.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(state.accounts.create_user(&principal, &body).await?)))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
async fn get_user(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<User>> {
    Ok(Json(state.accounts.get_user(&principal, id).await?))
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
    Ok(Json(state.accounts.set_role(&principal, id, body.role).await?))
}

/// Issue a one-time password-reset token (e.g. for imported customers who have none).
#[utoipa::path(post, path = "/users/{id}/password-reset", tag = "users", security(("bearer" = [])),
    responses((status = 201, body = PasswordResetToken), (status = 404, body = Problem)))]
async fn issue_password_reset(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<PasswordResetToken>)> {
    Ok((StatusCode::CREATED, Json(state.accounts.issue_password_reset(&principal, id).await?)))
}

/// Find users by part of their email or name (case-insensitive), newest first. Staff or
/// admin session.
#[utoipa::path(get, path = "/users/search", tag = "users", security(("bearer" = [])), params(UserSearchParams),
    responses((status = 200, body = Page<User>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, description = "bad `q`, `limit` or `cursor`", body = Problem)))]
async fn search_users(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<UserSearchParams>,
) -> Result<Json<Page<User>>> {
    Ok(Json(state.accounts.search_users(&principal, &q).await?))
}

/// Deactivate a user: no login, sessions ended, tokens and API keys refused from the next
/// request. Staff for customers, admins for anyone but themselves. Idempotent.
#[utoipa::path(post, path = "/users/{id}/deactivate", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the user")),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn deactivate_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<User>> {
    Ok(Json(state.accounts.deactivate_user(&principal, id).await?))
}

/// Let a deactivated user log in again. Who may: as for deactivating. Idempotent.
#[utoipa::path(post, path = "/users/{id}/reactivate", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the user")),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn reactivate_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<User>> {
    Ok(Json(state.accounts.reactivate_user(&principal, id).await?))
}

/// Lift a user's login lockout (the account's failure count and every address's wait for
/// it). Staff or admin session.
#[utoipa::path(post, path = "/users/{id}/unlock", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the user")),
    responses((status = 204, description = "unlocked"), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, description = "the lockout store is unreachable", body = Problem)))]
async fn unlock_user(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    state.accounts.unlock_user(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
