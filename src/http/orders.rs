//! `/orders`: checkout, reading orders, and their transitions.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caching::{self, Cacheability, IfNoneMatch};
use super::extract::{Json, OptionalJson, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::orders::checkout;
use crate::orders::partial_refund::{self, PartialRefundRequest, Refund};
use crate::orders::{self, CheckoutRequest, Order, OrderFilter, PaymentRequest, ShipRequest, lifecycle};
use crate::pagination::Page;
use crate::services::AppState;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders, place_order))
        .routes(routes!(get_order))
        .routes(routes!(get_order_by_number))
        .routes(routes!(pay_order))
        .routes(routes!(cancel_order))
        .routes(routes!(ship_order))
        .routes(routes!(deliver_order))
        .routes(routes!(refund_order))
        .routes(routes!(refund_part_of_order))
}

/// Check out: price the cart, reserve stock, create the order and, with `payment`, charge
/// it. 201 with the order (`paid`, or `pending_payment`); 402 `payment-declined` when the
/// card is declined (the order exists, still `pending_payment` and payable with another card
/// until its reservation expires); 503 `payments-unavailable` with `Retry-After` when the
/// payment provider is not being called (the order exists as `failed`, its stock released);
/// 409 `insufficient-stock`. With an `Idempotency-Key`, a retry of the same request answers as
/// the first one did (no second order, no second charge); the key with another request is
/// a 422, and a retry while the first is still charging a 409 `idempotency-key-in-use`.
#[utoipa::path(post, path = "/orders", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])), request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters (e.g. a UUID); makes retries safe (draft-ietf-httpapi-idempotency-key-header)", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$")),
    responses((status = 201, body = Order), (status = 402, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn place_order(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(mut body): Json<CheckoutRequest>,
) -> Result<(StatusCode, Json<Order>)> {
    if let Some(v) = headers.get(IDEMPOTENCY_KEY) {
        // Not UTF-8 text: an empty key, which the service refuses naming the header.
        body.idempotency_key = Some(v.to_str().unwrap_or_default().to_owned());
    }
    let order = checkout::place_order(&state.orders, &principal, body).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// Orders, newest first. Customers see their own; staff see all and may filter by
/// customer (id or email). Filters: status, order number, placement window.
#[utoipa::path(get, path = "/orders", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:read"])), params(OrderFilter, IfNoneMatch),
    responses((status = 200, body = Page<Order>, headers(("ETag" = String, description = "strong ETag of the body"))), (status = 304, description = "not modified"), (status = 422, body = Problem)))]
async fn list_orders(
    State(state): State<AppState>,
    principal: Principal,
    Query(filter): Query<OrderFilter>,
    headers: HeaderMap,
) -> Result<Response> {
    let page = orders::list(&state.orders, &principal, &filter).await?;
    caching::respond_json(&headers, &page, Cacheability::Private)
}

/// One order. Another customer's order is 404. Sends an `ETag`; `If-None-Match` with it
/// answers 304.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:read"])), params(IfNoneMatch),
    responses((status = 200, body = Order, headers(("ETag" = String, description = "strong ETag of the body"))), (status = 304, description = "not modified"), (status = 404, body = Problem)))]
async fn get_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let order = orders::get(&state.orders, &principal, id).await?;
    caching::respond_json(&headers, &order, Cacheability::Private)
}

/// One order by its number (`OL-…`, or an imported order's number). Another customer's
/// order is 404.
#[utoipa::path(get, path = "/orders/by-number/{number}", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:read"])),
    params(("number" = String, Path, description = "The order number, e.g. OL-0A1B2C3D4E5F", pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9._/#-]{1,64}[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$")),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn get_order_by_number(
    State(state): State<AppState>,
    principal: Principal,
    Path(number): Path<String>,
) -> Result<Json<Order>> {
    Ok(Json(orders::find_by_number(&state.orders, &principal, &number).await?))
}

/// Pay an order that is waiting for payment (no card at checkout, or a declined one). 402
/// `payment-declined` and 503 `payments-unavailable` leave it payable.
#[utoipa::path(post, path = "/orders/{id}/pay", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])), request_body = PaymentRequest,
    responses((status = 200, body = Order), (status = 402, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
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

/// Mark a paid order shipped (staff); its reserved stock leaves on-hand. The body is
/// optional: `{carrier, tracking_number}`, both optional, shown to the customer.
#[utoipa::path(post, path = "/orders/{id}/ship", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    request_body = Option<ShipRequest>,
    responses((status = 200, body = Order), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn ship_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ShipRequest>,
) -> Result<Json<Order>> {
    // No body or `null` ships without carrier and tracking number.
    Ok(Json(lifecycle::ship(&state.orders, &principal, id, body.unwrap_or_default()).await?))
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

/// Refund part of an order (staff): `{amount_minor}` or `{lines: [{line_no, quantity}]}`,
/// never more than was paid. 201 with the settled refund; 409 `refund-exceeds-payment`,
/// `refund-exceeds-quantity`, `not-refundable` or `refund-in-progress` (nothing changed,
/// the gateway not called); 503 when the gateway does not answer (finished later).
#[utoipa::path(post, path = "/orders/{id}/refunds", tag = "orders", security(("bearer" = []), ("api_key" = ["orders:write"])),
    request_body = PartialRefundRequest,
    responses((status = 201, body = Refund), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn refund_part_of_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<PartialRefundRequest>,
) -> Result<(StatusCode, Json<Refund>)> {
    let refund = partial_refund::refund_part(&state.orders, &principal, id, body).await?;
    Ok((StatusCode::CREATED, Json(refund)))
}
