//! `/orders`: checkout, reading orders, and their transitions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::orders::checkout;
use crate::orders::{self, CheckoutRequest, Order, OrderFilter, PaymentRequest, lifecycle};
use crate::pagination::Page;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders, place_order))
        .routes(routes!(get_order))
        .routes(routes!(pay_order))
        .routes(routes!(cancel_order))
        .routes(routes!(ship_order))
        .routes(routes!(deliver_order))
        .routes(routes!(refund_order))
}

/// Check out: price the cart, reserve stock, create the order and, with `payment`, charge
/// it. 201 with the order (`paid`, or `pending_payment`); 402 `payment-declined` when the
/// card is declined (the order exists as `failed`, its stock released); 409
/// `insufficient-stock`.
#[utoipa::path(post, path = "/orders", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])), request_body = CheckoutRequest,
    responses((status = 201, body = Order), (status = 402, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn place_order(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CheckoutRequest>,
) -> Result<(StatusCode, Json<Order>)> {
    let order = checkout::place_order(&state.orders, &principal, body).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// Orders, newest first. Customers see their own; staff see all and may filter by
/// customer.
#[utoipa::path(get, path = "/orders", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:read"])), params(OrderFilter),
    responses((status = 200, body = Page<Order>), (status = 422, body = Problem)))]
async fn list_orders(
    State(state): State<AppState>,
    principal: Principal,
    Query(filter): Query<OrderFilter>,
) -> Result<Json<Page<Order>>> {
    Ok(Json(orders::list(&state.orders, &principal, &filter).await?))
}

/// One order. Another customer's order is 404.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:read"])),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
async fn get_order(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<Order>> {
    Ok(Json(orders::get(&state.orders, &principal, id).await?))
}

/// Pay an order that is waiting for payment.
#[utoipa::path(post, path = "/orders/{id}/pay", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])), request_body = PaymentRequest,
    responses((status = 200, body = Order), (status = 402, body = Problem), (status = 409, body = Problem)))]
async fn pay_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<PaymentRequest>,
) -> Result<Json<Order>> {
    Ok(Json(checkout::pay(&state.orders, &principal, id, body).await?))
}

/// Cancel an unpaid order (its customer or staff); its stock is released.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Order>> {
    Ok(Json(lifecycle::cancel(&state.orders, &principal, id).await?))
}

/// Mark a paid order shipped (staff); its reserved stock leaves on-hand.
#[utoipa::path(post, path = "/orders/{id}/ship", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn ship_order(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<Order>> {
    Ok(Json(lifecycle::ship(&state.orders, &principal, id).await?))
}

/// Mark a shipped order delivered (staff).
#[utoipa::path(post, path = "/orders/{id}/deliver", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn deliver_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Order>> {
    Ok(Json(lifecycle::deliver(&state.orders, &principal, id).await?))
}

/// Refund a paid, unshipped order (staff): the payment is refunded and the stock released.
#[utoipa::path(post, path = "/orders/{id}/refund", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn refund_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Order>> {
    Ok(Json(lifecycle::refund(&state.orders, &principal, id).await?))
}
