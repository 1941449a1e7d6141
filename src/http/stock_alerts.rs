//! `/inventory/alerts`: open low-stock alerts and their acknowledgement (staff). The rules
//! live in [`crate::stock_alerts`].

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::services::AppState;
use crate::stock_alerts::StockAlert;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_alerts)).routes(routes!(acknowledge_alert))
}

/// Open low-stock alerts, newest first (staff). An alert opens when a product's available
/// stock reaches its low-stock threshold.
#[utoipa::path(get, path = "/inventory/alerts", tag = "inventory", security(("bearer" = []), ("api_key" = ["catalog:read"])),
    params(PageParams),
    responses((status = 200, body = Page<StockAlert>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_alerts(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<StockAlert>>> {
    Ok(Json(state.stock_alerts.list_open(&principal, &q).await?))
}

/// Acknowledge a product's low-stock alert (staff): it leaves the open list until the
/// stock goes low again. Idempotent.
#[utoipa::path(post, path = "/inventory/alerts/{product_id}/acknowledge", tag = "inventory",
    security(("bearer" = []), ("api_key" = ["catalog:write"])),
    params(("product_id" = Uuid, Path, description = "the product")),
    responses((status = 200, body = StockAlert), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn acknowledge_alert(
    State(state): State<AppState>,
    principal: Principal,
    Path(product_id): Path<Uuid>,
) -> Result<Json<StockAlert>> {
    Ok(Json(state.stock_alerts.acknowledge(&principal, product_id).await?))
}
