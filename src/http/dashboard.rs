//! `/dashboard`: the staff overview (the rules live in [`crate::dashboard::report`]).

use std::time::Duration;

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::dashboard::{self, Dashboard, PeriodParams};
use crate::error::Result;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_dashboard))
}

/// Sales, orders by status, top products, low stock and new customers for a period
/// (staff). Sections that miss the deadline are `null` and listed in `missing`.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard", security(("bearer" = []), ("api_key" = ["dashboard:read"])), params(PeriodParams),
    responses((status = 200, body = Dashboard), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn get_dashboard(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PeriodParams>,
) -> Result<Json<Dashboard>> {
    let deadline = Duration::from_millis(state.config.dashboard.deadline_ms);
    Ok(Json(dashboard::report(&principal, state.dashboard.as_ref(), &q, deadline).await?))
}
