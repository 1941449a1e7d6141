//! `/api-keys`: API keys for machine clients. Admin only, and only from a user session: a
//! key can never create, rotate or list keys.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Query};
use super::problem::Problem;
use crate::auth::api_keys::{self, ApiKey, CreatedApiKey};
use crate::auth::scopes::{Scope, Scopes};
use crate::auth::{Principal, parse_name};
use crate::error::{Error, Result};
use crate::pagination::{Page, PageParams, PageRequest};
use crate::services::AppState;
use crate::validate;

/// Longest overlap a rotation may grant: 30 days.
const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(rotate_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// What the key is for, e.g. `warehouse sync`.
    name: String,
    /// At least one; a `:write` scope includes its `:read`.
    scopes: Vec<Scope>,
    /// The user the key acts as (default: the admin creating it). The key has that user's
    /// role, narrowed to `scopes`.
    owner_id: Option<Uuid>,
}

fn check_scopes(scopes: &[Scope]) -> Result<Scopes, String> {
    let set: Scopes = scopes.iter().copied().collect();
    if set.is_empty() { Err("must name at least one scope".into()) } else { Ok(set) }
}

/// Create an API key. The response holds the key itself, shown this once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    let caller = principal.require_admin_session()?;
    validate! {
        name <- "name" => parse_name(&body.name);
        scopes <- "scopes" => check_scopes(&body.scopes);
    }
    let owner = body.owner_id.unwrap_or(caller.id);
    Ok((StatusCode::CREATED, Json(api_keys::create(&state.db, &name, owner, scopes, caller.id).await?)))
}

/// List API keys, newest first (revoked and expired ones too). Never shows a secret.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<ApiKey>), (status = 403, body = Problem)))]
async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<ApiKey>>> {
    let _ = principal.require_admin_session()?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref(), "-created_at").map_err(Error::Validation)?;
    Ok(Json(api_keys::list(&state.db, &page).await?))
}

/// One API key.
#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
async fn get_key(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<ApiKey>> {
    let _ = principal.require_admin_session()?;
    Ok(Json(api_keys::get(&state.db, id).await?))
}

/// Revoke an API key: it stops working at once. Idempotent.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem)))]
async fn revoke_key(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    let _ = principal.require_admin_session()?;
    api_keys::revoke(&state.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyRequest {
    /// How long the old key keeps working, 0 to 2592000 (30 days).
    overlap_secs: u64,
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
    let caller = principal.require_admin_session()?;
    validate! {
        overlap <- "overlap_secs" => if body.overlap_secs <= MAX_OVERLAP_SECS { Ok(Duration::from_secs(body.overlap_secs)) } else { Err(format!("must be at most {MAX_OVERLAP_SECS}")) };
    }
    Ok((StatusCode::CREATED, Json(api_keys::rotate(&state.db, id, overlap, caller.id).await?)))
}
