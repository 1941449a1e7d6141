//! `/api-keys`: API keys for machine clients. Admin only, and only from a user session: a
//! key can never create, rotate or list keys (the rules live in
//! [`crate::auth::accounts::Accounts`]).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::auth::accounts::{CreateApiKeyRequest, RotateApiKeyRequest};
use crate::auth::api_keys::{ApiKey, CreatedApiKey};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(rotate_key))
}

/// Create an API key. The response holds the key itself, shown this once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    Ok((StatusCode::CREATED, Json(state.accounts.create_api_key(&principal, &body).await?)))
}

/// List API keys, newest first (revoked and expired ones too). Never shows a secret.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<ApiKey>), (status = 403, body = Problem)))]
async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<ApiKey>>> {
    Ok(Json(state.accounts.list_api_keys(&principal, &q).await?))
}

/// One API key.
#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
async fn get_key(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<ApiKey>> {
    Ok(Json(state.accounts.get_api_key(&principal, id).await?))
}

/// Revoke an API key: it stops working at once. Idempotent.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
async fn revoke_key(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    state.accounts.revoke_api_key(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an API key: a new key with the same name, owner and scopes; the old one works
/// for `overlap_secs` more. 409 `api-key-inactive` if it is revoked, expired or rotated.
#[utoipa::path(post, path = "/api-keys/{id}/rotate", tag = "api-keys", security(("bearer" = [])), request_body = RotateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn rotate_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<RotateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    Ok((StatusCode::CREATED, Json(state.accounts.rotate_api_key(&principal, id, &body).await?)))
}
