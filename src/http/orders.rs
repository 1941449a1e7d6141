//! `/orders`: checkout, reading orders, and their transitions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::catalog::Sku;
use crate::error::{Error, FieldError, Result};
use crate::orders::checkout::{self, CartLine, CheckoutRequest};
use crate::orders::{self, Order, OrderFilter, OrderStatus, lifecycle};
use crate::pagination::Page;
use crate::payments::CardNumber;
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemRequest {
    sku: String,
    /// 1 to 1000.
    quantity: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// A sandbox test card, e.g. `4242424242424242` (see docs/API.md). Never stored.
    card_number: String,
}

/// A cart to check out. Prices and totals come from the catalog: there is no `total`
/// field, and sending one is a 422.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    line_items: Vec<LineItemRequest>,
    /// Pay now. Without it the order waits in `pending_payment` (pay with
    /// `POST /orders/{id}/pay`) until its reservation expires.
    payment: Option<PaymentRequest>,
    #[schema(value_type = Option<Object>)]
    shipping_address: Option<serde_json::Value>,
}

fn check_quantity(q: i64) -> Result<i64, String> {
    if (1..=checkout::MAX_QUANTITY).contains(&q) {
        Ok(q)
    } else {
        Err(format!("must be between 1 and {}", checkout::MAX_QUANTITY))
    }
}

/// Check out: price the cart, reserve stock, create the order and, with `payment`, charge
/// it. 201 with the order (`paid`, or `pending_payment`); 402 `payment-declined` when the
/// card is declined (the order exists as `failed`, its stock released); 409
/// `insufficient-stock`.
#[utoipa::path(post, path = "/orders", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])), request_body = PlaceOrderRequest,
    responses((status = 201, body = Order), (status = 402, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn place_order(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<PlaceOrderRequest>,
) -> Result<(StatusCode, Json<Order>)> {
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(body.line_items.len());
    for (i, l) in body.line_items.iter().enumerate() {
        match (Sku::parse(&l.sku), check_quantity(l.quantity)) {
            (Ok(sku), Ok(quantity)) => lines.push(CartLine { sku, quantity }),
            (s, q) => {
                if let Err(m) = s {
                    errors.push(FieldError::new(format!("line_items[{i}].sku"), m));
                }
                if let Err(m) = q {
                    errors.push(FieldError::new(format!("line_items[{i}].quantity"), m));
                }
            }
        }
    }
    let card = match body.payment.as_ref().map(|p| CardNumber::parse(&p.card_number)).transpose() {
        Ok(c) => c,
        Err(m) => {
            errors.push(FieldError::new("payment.card_number", m));
            None
        }
    };
    if body.shipping_address.as_ref().is_some_and(|a| !a.is_object() || a.to_string().len() > 2_000) {
        errors.push(FieldError::new("shipping_address", "must be an object of at most 2000 bytes"));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let req = CheckoutRequest { lines, card, shipping_address: body.shipping_address };
    let order = checkout::place_order(&state.orders, &principal, req).await?;
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
    Ok(Json(orders::list(&state.db, &principal, &filter).await?))
}

/// One order. Another customer's order is 404.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:read"])),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
async fn get_order(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<Order>> {
    Ok(Json(orders::get(&state.db, &principal, id).await?))
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
    let card =
        CardNumber::parse(&body.card_number).map_err(|m| Error::Validation(vec![FieldError::new("card_number", m)]))?;
    Ok(Json(checkout::pay(&state.orders, &principal, id, card).await?))
}

/// Cancel an unpaid order (its customer or staff); its stock is released.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Order>> {
    Ok(Json(lifecycle::transition(&state.orders, &principal, id, OrderStatus::Cancelled).await?))
}

/// Mark a paid order shipped (staff); its reserved stock leaves on-hand.
#[utoipa::path(post, path = "/orders/{id}/ship", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn ship_order(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<Order>> {
    Ok(Json(lifecycle::transition(&state.orders, &principal, id, OrderStatus::Shipped).await?))
}

/// Mark a shipped order delivered (staff).
#[utoipa::path(post, path = "/orders/{id}/deliver", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn deliver_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Order>> {
    Ok(Json(lifecycle::transition(&state.orders, &principal, id, OrderStatus::Delivered).await?))
}

/// Refund a paid, unshipped order (staff): the payment is refunded and the stock released.
#[utoipa::path(post, path = "/orders/{id}/refund", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn refund_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Order>> {
    Ok(Json(lifecycle::transition(&state.orders, &principal, id, OrderStatus::Refunded).await?))
}
