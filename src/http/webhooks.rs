//! `/webhooks/…`: webhook endpoints, the delivery log and replay. Admin sessions only (the
//! rules live in [`crate::webhooks::Webhooks`]). Creating an endpoint and rotating its
//! secret answer the secret once and are never stored by the idempotency layer.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::services::AppState;
use crate::webhooks::{
    CreateEndpointRequest, CreatedEndpoint, Delivery, DeliveryDetail, DeliveryFilter, Endpoint, UpdateEndpointRequest,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(replay_delivery))
}

/// Create a webhook endpoint subscribed to event types (or `*`). The answer holds its
/// signing secret, shown this once. The URL must be `http`/`https` on public addresses
/// (422 naming `url` otherwise).
#[utoipa::path(post, path = "/webhooks/endpoints", tag = "webhooks", security(("bearer" = [])), request_body = CreateEndpointRequest,
    responses((status = 201, body = CreatedEndpoint), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateEndpointRequest>,
) -> Result<(StatusCode, Json<CreatedEndpoint>)> {
    Ok((StatusCode::CREATED, Json(state.webhooks.create_endpoint(&principal, &body).await?)))
}

/// List webhook endpoints, newest first. Never shows a secret.
#[utoipa::path(get, path = "/webhooks/endpoints", tag = "webhooks", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<Endpoint>), (status = 403, body = Problem)))]
async fn list_endpoints(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<Endpoint>>> {
    Ok(Json(state.webhooks.list_endpoints(&principal, &q).await?))
}

/// One webhook endpoint (without its secret).
#[utoipa::path(get, path = "/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem)))]
async fn get_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Endpoint>> {
    Ok(Json(state.webhooks.get_endpoint(&principal, id).await?))
}

/// Change a webhook endpoint's URL, description, event types or enabled state.
#[utoipa::path(patch, path = "/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])), request_body = UpdateEndpointRequest,
    responses((status = 200, body = Endpoint), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateEndpointRequest>,
) -> Result<Json<Endpoint>> {
    Ok(Json(state.webhooks.update_endpoint(&principal, id, &body).await?))
}

/// Delete a webhook endpoint with its deliveries and their log.
#[utoipa::path(delete, path = "/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
async fn delete_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    state.webhooks.delete_endpoint(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the endpoint's signing secret at once; the answer holds the new one, shown this once.
#[utoipa::path(post, path = "/webhooks/endpoints/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = CreatedEndpoint), (status = 404, body = Problem)))]
async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<CreatedEndpoint>> {
    Ok(Json(state.webhooks.rotate_secret(&principal, id).await?))
}

/// The delivery log, newest first; filter by endpoint and status.
#[utoipa::path(get, path = "/webhooks/deliveries", tag = "webhooks", security(("bearer" = [])), params(DeliveryFilter),
    responses((status = 200, body = Page<Delivery>), (status = 403, body = Problem)))]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Query(filter): Query<DeliveryFilter>,
) -> Result<Json<Page<Delivery>>> {
    Ok(Json(state.webhooks.list_deliveries(&principal, &filter).await?))
}

/// One delivery with every attempt (status code, error, duration).
#[utoipa::path(get, path = "/webhooks/deliveries/{id}", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = Problem)))]
async fn get_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<DeliveryDetail>> {
    Ok(Json(state.webhooks.get_delivery(&principal, id).await?))
}

/// Send a `dead` or `failed` delivery again now, with a fresh attempt budget. 409
/// `delivery-not-replayable` when it is `pending` or `succeeded`.
#[utoipa::path(post, path = "/webhooks/deliveries/{id}/replay", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Delivery), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn replay_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Delivery>> {
    Ok(Json(state.webhooks.replay_delivery(&principal, id).await?))
}
