//! `/auth/*` and `/me`: registration, sessions, the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Json;
use super::problem::Problem;
use crate::auth::users::{self, Session, User};
use crate::auth::{Email, Password, Principal, Role, parse_name};
use crate::error::Result;
use crate::ratelimit::Class;
use crate::services::AppState;
use crate::validate;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(reset_password))
        .routes(routes!(me, update_me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Becomes the login; case-insensitive.
    email: String,
    /// 8 to 128 characters.
    password: String,
    name: String,
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
    principal.admit(Class::Login).await?;
    validate! {
        email <- "email" => Email::parse(&body.email);
        password <- "password" => Password::parse(&body.password);
        name <- "name" => parse_name(&body.name);
    }
    // Registration always makes a customer; roles are granted by an admin only.
    let user = users::create(&state.db, &email, Some(&password), &name, Role::Customer).await?;
    let session = users::start_session(&state.db, &state.tokens, user).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
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
    principal.admit(Class::Login).await?;
    let ip = principal.client_ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    // Brute-force lockout per account and per IP (src/ratelimit/lockout.rs).
    let attempt = users::authenticate(&state.db, &body.email, &body.password);
    let user = state.limits.guard_login(ip, &body.email, attempt).await?;
    Ok(Json(users::start_session(&state.db, &state.tokens, user).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
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
    principal.admit(Class::Login).await?;
    Ok(Json(users::refresh(&state.db, &state.tokens, &body.refresh_token).await?))
}

/// End the session the refresh token belongs to. Idempotent.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out")))]
async fn logout(State(state): State<AppState>, Json(body): Json<RefreshRequest>) -> Result<StatusCode> {
    users::logout(&state.db, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The one-time token an admin issued (`POST /users/{id}/password-reset`).
    token: String,
    new_password: String,
}

/// Set a password with a one-time reset token; ends every session of the account.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204, description = "password set"), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn reset_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<StatusCode> {
    principal.admit(Class::Login).await?;
    validate! { password <- "new_password" => Password::parse(&body.new_password); }
    users::reset_password(&state.db, &body.token, &password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<User>> {
    let caller = principal.authenticated()?;
    Ok(Json(users::get(&state.db, caller.id).await?))
}

/// Fields a user may change on their own account. There is no `role`: sending one is a 422.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    name: Option<String>,
    password: Option<String>,
}

/// Change the caller's name or password.
#[utoipa::path(patch, path = "/me", tag = "auth", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses((status = 200, body = User), (status = 422, body = Problem)))]
async fn update_me(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<UpdateMeRequest>,
) -> Result<Json<User>> {
    let caller = principal.require_session()?;
    validate! {
        name <- "name" => body.name.as_deref().map(parse_name).transpose();
        password <- "password" => body.password.as_deref().map(Password::parse).transpose();
    }
    Ok(Json(users::update_profile(&state.db, caller.id, name.as_deref(), password.as_ref()).await?))
}
