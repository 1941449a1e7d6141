//! `/admin/flags`: runtime feature flags, admin only.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Json;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Problem, Result};
use crate::flags::FlagState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_flags)).routes(routes!(set_flag))
}

/// Every feature flag with its current state.
#[utoipa::path(get, path = "/admin/flags", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<FlagState>), (status = 403, body = Problem)))]
async fn list_flags(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Vec<FlagState>>> {
    caller.require_session()?;
    caller.require_admin()?;
    Ok(Json(state.flags.snapshot()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFlagRequest {
    enabled: bool,
}

/// Turn a flag on or off for every replica, without a restart.
#[utoipa::path(put, path = "/admin/flags/{key}", tag = "admin", security(("bearer" = [])), request_body = SetFlagRequest,
    responses((status = 200, body = FlagState), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn set_flag(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(key): Path<String>,
    Json(body): Json<SetFlagRequest>,
) -> Result<Json<FlagState>> {
    caller.require_session()?;
    caller.require_admin()?;
    Ok(Json(state.flags.set(&state.db, &key, body.enabled, caller.id).await?))
}
