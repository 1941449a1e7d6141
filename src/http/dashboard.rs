//! `/dashboard`: the staff overview.

use std::time::Duration;

use axum::extract::State;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::dashboard::{self, Dashboard, Period};
use crate::error::{Error, FieldError, Result};
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_dashboard))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DashboardParams {
    /// First day, `YYYY-MM-DD` (UTC). Default: 30 days before `to`.
    from: Option<NaiveDate>,
    /// Last day, inclusive. Default: today.
    to: Option<NaiveDate>,
}

/// Sales, orders by status, top products, low stock and new customers for a period
/// (staff). Sections that miss the deadline are `null` and listed in `missing`.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard", security(("bearer" = []), ("api_key" = ["dashboard:read"])), params(DashboardParams),
    responses((status = 200, body = Dashboard), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn get_dashboard(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<DashboardParams>,
) -> Result<Json<Dashboard>> {
    let _ = principal.require_staff(Scope::DashboardRead)?;
    let to = q.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = q.from.unwrap_or_else(|| to - chrono::Duration::days(29));
    if from > to {
        return Err(Error::Validation(vec![FieldError::new("from", "must not be after `to`")]));
    }
    if (to - from).num_days() > 3_660 {
        return Err(Error::Validation(vec![FieldError::new("from", "the period may span at most 10 years")]));
    }
    let deadline = Duration::from_millis(state.config.dashboard.deadline_ms);
    Ok(Json(dashboard::build(state.dashboard.as_ref(), Period::days(from, to), deadline).await))
}
