//! `/categories`, `/products`, and product inventory.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caching::{self, IfMatchHeader, IfNoneMatch, catalog_cacheability};
use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::catalog::ProductStatus;
use crate::catalog::categories::{self, Category};
use crate::catalog::products::{self, NewProduct, Product, ProductFilter, ProductPatch};
use crate::catalog::{reads, stock};
use crate::error::Result;
use crate::inventory::{self, Inventory};
use crate::pagination::Page;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_categories, create_category))
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product))
        .routes(routes!(get_inventory))
        .routes(routes!(adjust_inventory))
}

/// Every category; `parent_id` links the tree. Sends an `ETag`; `If-None-Match` with it
/// answers 304.
#[utoipa::path(get, path = "/categories", tag = "catalog", params(IfNoneMatch),
    responses((status = 200, body = Vec<Category>, headers(("ETag" = String, description = "strong ETag of the body"))), (status = 304, description = "not modified")))]
async fn list_categories(State(state): State<AppState>, principal: Principal, headers: HeaderMap) -> Result<Response> {
    let rep = reads::category_list(&state.catalog, &principal).await?;
    Ok(caching::respond(&headers, rep, catalog_cacheability(principal.actor.is_none())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategoryRequest {
    /// Must also contain a letter or digit (it makes the slug).
    #[schema(schema_with = crate::auth::name_schema)]
    name: String,
    parent_id: Option<Uuid>,
}

/// Create a category (staff).
#[utoipa::path(post, path = "/categories", tag = "catalog", security(("bearer" = []), ("api_key" = ["catalog:write"])), request_body = CreateCategoryRequest,
    responses((status = 201, body = Category), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_category(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateCategoryRequest>,
) -> Result<(StatusCode, Json<Category>)> {
    Ok((StatusCode::CREATED, Json(categories::create(&state.catalog, &principal, &body.name, body.parent_id).await?)))
}

/// List products: filters, sort (`created_at`, `price`, `name`; `-` for descending) and
/// cursor pages. Anonymous callers and customers see active products only. Sends an
/// `ETag`; `If-None-Match` with it answers 304.
#[utoipa::path(get, path = "/products", tag = "catalog", security((), ("bearer" = []), ("api_key" = ["catalog:read"])), params(ProductFilter, IfNoneMatch),
    responses((status = 200, body = Page<Product>, headers(("ETag" = String, description = "strong ETag of the body"))), (status = 304, description = "not modified"), (status = 422, body = Problem)))]
async fn list_products(
    State(state): State<AppState>,
    principal: Principal,
    Query(filter): Query<ProductFilter>,
    headers: HeaderMap,
) -> Result<Response> {
    let rep = reads::product_page(&state.catalog, &principal, &filter).await?;
    Ok(caching::respond(&headers, rep, catalog_cacheability(principal.actor.is_none())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// 1 to 64 of `A–Z a–z 0–9 - _ .`, unique.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    sku: String,
    #[schema(schema_with = crate::auth::name_schema)]
    name: String,
    /// At most 10000 characters.
    #[serde(default)]
    #[schema(max_length = 10000)]
    description: String,
    /// Minor units of `currency`, 0 to 10^12.
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    price_minor: i64,
    #[schema(schema_with = crate::money::currency_schema)]
    currency: String,
    category_id: Option<Uuid>,
    /// Default `active`.
    status: Option<ProductStatus>,
    /// Units on hand to start with, 0 to 10^12 (default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    initial_stock: i64,
}

/// Create a product and its inventory (staff).
#[utoipa::path(post, path = "/products", tag = "catalog", security(("bearer" = []), ("api_key" = ["catalog:write"])), request_body = CreateProductRequest,
    responses((status = 201, body = Product), (status = 409, description = "SKU taken", body = Problem), (status = 422, body = Problem)))]
async fn create_product(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateProductRequest>,
) -> Result<Response> {
    let new = NewProduct {
        sku: body.sku,
        name: body.name,
        description: body.description,
        price_minor: body.price_minor,
        currency: body.currency,
        status: body.status,
        category_id: body.category_id,
        initial_stock: body.initial_stock,
    };
    let product = products::create(&state.catalog, &principal, new).await?;
    caching::written(StatusCode::CREATED, &product)
}

/// One product. Sends an `ETag` (a hash of the body: it changes with any field, stock
/// included); `If-None-Match` with it answers 304.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog", params(IfNoneMatch),
    security((), ("bearer" = []), ("api_key" = ["catalog:read"])), responses((status = 200, body = Product, headers(("ETag" = String, description = "strong ETag of the body"))), (status = 304, description = "not modified"), (status = 404, body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let rep = reads::product(&state.catalog, &principal, id).await?;
    Ok(caching::respond(&headers, rep, catalog_cacheability(principal.actor.is_none())))
}

/// Fields to change; omitted fields stay as they are. `sku` cannot change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    #[schema(schema_with = crate::auth::optional_name_schema)]
    name: Option<String>,
    /// At most 10000 characters.
    #[schema(max_length = 10000)]
    description: Option<String>,
    /// Minor units of `currency`, 0 to 10^12.
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    price_minor: Option<i64>,
    #[schema(schema_with = crate::money::optional_currency_schema)]
    currency: Option<String>,
    status: Option<ProductStatus>,
    category_id: Option<Uuid>,
}

/// Update a product (staff). With `If-Match` (an ETag of the product, or `*`), only if it
/// still matches (412); required when `catalog.require_if_match` is on (428).
#[utoipa::path(patch, path = "/products/{id}", tag = "catalog", security(("bearer" = []), ("api_key" = ["catalog:write"])), request_body = UpdateProductRequest, params(IfMatchHeader),
    responses((status = 200, body = Product, headers(("ETag" = String, description = "strong ETag of the new body"))), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn update_product(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<UpdateProductRequest>,
) -> Result<Response> {
    let if_match = caching::if_match(&headers)?;
    let patch = ProductPatch {
        name: body.name,
        description: body.description,
        price_minor: body.price_minor,
        currency: body.currency,
        status: body.status,
        category_id: body.category_id,
    };
    let product = products::update(&state.catalog, &principal, id, patch, if_match.as_ref()).await?;
    caching::written(StatusCode::OK, &product)
}

/// Stock of a product (staff).
#[utoipa::path(get, path = "/products/{id}/inventory", tag = "inventory", security(("bearer" = []), ("api_key" = ["catalog:read"])),
    responses((status = 200, body = Inventory), (status = 404, body = Problem)))]
async fn get_inventory(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Inventory>> {
    Ok(Json(inventory::get(&state.db, &principal, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    #[schema(schema_with = crate::inventory::stock_delta_schema)]
    delta: i64,
    /// Why (e.g. `restock`, `damaged`, `count correction`).
    #[schema(schema_with = crate::auth::name_schema)]
    reason: String,
}

/// Adjust on-hand stock by a relative amount (staff). With `If-Match` (the product's
/// ETag, or `*`), only if the product still matches (412). 409 `insufficient-stock` if it
/// would leave less than is reserved, 409 `stock-limit` if more than 10^12 units would be
/// on hand.
#[utoipa::path(post, path = "/products/{id}/inventory/adjustments", tag = "inventory", security(("bearer" = []), ("api_key" = ["catalog:write"])),
    request_body = AdjustmentRequest, params(IfMatchHeader),
    responses((status = 200, body = Inventory), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn adjust_inventory(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<AdjustmentRequest>,
) -> Result<Json<Inventory>> {
    let if_match = caching::if_match(&headers)?;
    Ok(Json(stock::adjust(&state.catalog, &principal, id, body.delta, &body.reason, if_match.as_ref()).await?))
}
