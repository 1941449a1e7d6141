//! `/admin/flags`: runtime feature flags, admin only (the rules live in
//! [`crate::flags::Flags`]).

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::flags::FlagState;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_flags)).routes(routes!(set_flag))
}

/// Every feature flag with its current state.
#[utoipa::path(get, path = "/admin/flags", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<FlagState>), (status = 403, body = Problem)))]
async fn list_flags(State(state): State<AppState>, principal: Principal) -> Result<Json<Vec<FlagState>>> {
    Ok(Json(state.flags.list(&principal).await?))
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
    principal: Principal,
    Path(key): Path<String>,
    Json(body): Json<SetFlagRequest>,
) -> Result<Json<FlagState>> {
    Ok(Json(state.flags.set(&principal, &state.db, &key, body.enabled).await?))
}
