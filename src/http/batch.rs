//! Batch operations (`crate::batch`): `POST /products/batch`, `/inventory/batch`,
//! `/orders/batch/cancel`. Each answers 200 with one result per item, in request order;
//! an item's failure is its RFC 9457 problem, mapped here like any error.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::Json;
use super::problem::{Problem, to_problem};
use crate::auth::Principal;
use crate::batch::catalog::{self, ProductItem, StockItem};
use crate::batch::{ItemOutcome, ItemStatus, Mode, orders};
use crate::error::Result;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(batch_products))
        .routes(routes!(batch_inventory))
        .routes(routes!(batch_cancel_orders))
}

/// Price and/or status updates: the mode and 1 to 1,000 items.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBatch {
    pub mode: Mode,
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<ProductItem>,
}

/// Stock adjustments: the mode and 1 to 1,000 items.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockBatch {
    pub mode: Mode,
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<StockItem>,
}

/// Orders to cancel: the mode and 1 to 1,000 items.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBatch {
    pub mode: Mode,
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<OrderRef>,
}

/// One order to cancel.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    pub id: Uuid,
}

/// The answer to a batch: counts, and one result per item in request order.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    pub mode: Mode,
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<ItemResult>,
}

/// One item's result: its index (0-based), the `id`/`sku` it named (as sent), its status,
/// and unless it succeeded, why (`problem`, the RFC 9457 shape of the single operation's
/// error; `batch-rolled-back` for an item undone because another one failed).
#[derive(Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

fn respond(mode: Mode, keys: Vec<(Option<Uuid>, Option<String>)>, outcomes: Vec<ItemOutcome>) -> Json<BatchResponse> {
    let succeeded = outcomes.iter().filter(|o| o.status == ItemStatus::Succeeded).count();
    let failed = outcomes.iter().filter(|o| o.status == ItemStatus::Failed).count();
    let mut keys = keys.into_iter();
    let results = outcomes
        .into_iter()
        .map(|o| {
            let (id, sku) = keys.next().unwrap_or_default();
            ItemResult { index: o.index, id, sku, status: o.status, problem: o.error.as_ref().map(to_problem) }
        })
        .collect();
    Json(BatchResponse { mode, succeeded, failed, results })
}

/// Update the price and/or status of up to 1,000 products (staff). `all_or_nothing`: any
/// failure rolls back every item; `per_item`: each item stands alone. 422 for an empty
/// batch or over 1,000 items; 428 when `catalog.require_if_match` is on.
#[utoipa::path(post, path = "/products/batch", tag = "batch", security(("bearer" = []), ("api_key" = ["catalog:write"])),
    request_body = ProductBatch,
    responses((status = 200, body = BatchResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn batch_products(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<ProductBatch>,
) -> Result<Json<BatchResponse>> {
    let keys = body.items.iter().map(|i| (i.id, i.sku.clone())).collect();
    let outcomes = catalog::update_products(&state.catalog, &principal, body.mode, body.items).await?;
    Ok(respond(body.mode, keys, outcomes))
}

/// Adjust the stock of up to 1,000 products by SKU or id (staff), with the single
/// adjustment's rules (available never negative). 422 for an empty batch or over 1,000.
#[utoipa::path(post, path = "/inventory/batch", tag = "batch", security(("bearer" = []), ("api_key" = ["catalog:write"])),
    request_body = StockBatch,
    responses((status = 200, body = BatchResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn batch_inventory(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<StockBatch>,
) -> Result<Json<BatchResponse>> {
    let keys = body.items.iter().map(|i| (i.id, i.sku.clone())).collect();
    let outcomes = catalog::adjust_stock(&state.catalog, &principal, body.mode, body.items).await?;
    Ok(respond(body.mode, keys, outcomes))
}

/// Cancel up to 1,000 unpaid orders: staff any order, a customer their own (another
/// customer's order is that item's 404). 422 for an empty batch or over 1,000.
#[utoipa::path(post, path = "/orders/batch/cancel", tag = "batch", security(("bearer" = []), ("api_key" = ["orders:write"])),
    request_body = CancelBatch,
    responses((status = 200, body = BatchResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn batch_cancel_orders(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CancelBatch>,
) -> Result<Json<BatchResponse>> {
    let ids: Vec<Uuid> = body.items.iter().map(|i| i.id).collect();
    let keys = ids.iter().map(|id| (Some(*id), None)).collect();
    let outcomes = orders::cancel_orders(&state.orders, &principal, body.mode, ids).await?;
    Ok(respond(body.mode, keys, outcomes))
}
