//! `/auth/*` and `/me`: registration, sessions, the caller's own profile. Thin adapters over
//! [`crate::auth::accounts::Accounts`], which holds the rules.

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Json;
use super::problem::Problem;
use crate::auth::Principal;
use crate::auth::accounts::{LoginRequest, RefreshRequest, RegisterRequest, ResetPasswordRequest, UpdateMeRequest};
use crate::auth::sessions::Session;
use crate::auth::users::User;
use crate::error::{Error, Result};
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(reset_password))
        .routes(routes!(me, update_me))
}

/// Register a customer account and start a session.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = Session), (status = 409, description = "email taken", body = Problem),
              (status = 422, description = "invalid fields", body = Problem)))]
async fn register(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<Session>)> {
    Ok((StatusCode::CREATED, Json(state.accounts.register(&principal, &body).await?)))
}

/// Log in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, description = "wrong email or password", body = Problem),
              (status = 429, description = "too many failed logins for this account or address", body = Problem)))]
async fn login(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<LoginRequest>,
) -> Result<Json<Session>> {
    Ok(Json(state.accounts.login(&principal, &body).await?))
}

/// Exchange a refresh token for a new session. Each refresh token works once; reusing one
/// revokes every token of its session (401 `refresh-token-reused`).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<Session>> {
    Ok(Json(state.accounts.refresh(&principal, &body).await?))
}

/// The caller of logout, whose credentials do not matter: an expired or revoked access
/// token sent along is no reason to refuse ending the session (it counts as anonymous).
struct AnyCaller(Principal);

impl FromRequestParts<AppState> for AnyCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match Principal::from_request_parts(parts, state).await {
            Ok(p) => Ok(Self(p)),
            Err(Error::Unauthenticated | Error::InvalidToken) => Ok(Self(Principal::anonymous())),
            Err(e) => Err(e),
        }
    }
}

/// End the session the refresh token belongs to. Idempotent.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out")))]
async fn logout(
    State(state): State<AppState>,
    AnyCaller(principal): AnyCaller,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode> {
    state.accounts.logout(&principal, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a password with a one-time reset token; ends every session of the account.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204, description = "password set"), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn reset_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<StatusCode> {
    state.accounts.reset_password(&principal, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<User>> {
    Ok(Json(state.accounts.me(&principal).await?))
}

/// Change the caller's name or password. A new `password` needs `current_password` and
/// ends every other session of the account; the caller's session goes on.
#[utoipa::path(patch, path = "/me", tag = "auth", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses((status = 200, body = User),
              (status = 422, description = "invalid fields, or `current_password` missing or wrong", body = Problem)))]
async fn update_me(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<UpdateMeRequest>,
) -> Result<Json<User>> {
    Ok(Json(state.accounts.update_me(&principal, &body).await?))
}
