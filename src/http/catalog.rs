//! `/categories`, `/products`, and product inventory.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::catalog::ProductStatus;
use crate::catalog::categories::{self, Category};
use crate::catalog::products::{self, NewProduct, Product, ProductFilter, ProductPatch};
use crate::error::{Error, FieldError, Result};
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

/// Every category; `parent_id` links the tree.
#[utoipa::path(get, path = "/categories", tag = "catalog", responses((status = 200, body = Vec<Category>)))]
async fn list_categories(State(state): State<AppState>, principal: Principal) -> Result<Json<Vec<Category>>> {
    Ok(Json(categories::list(&state.db, &principal).await?))
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
    Ok((StatusCode::CREATED, Json(categories::create(&state.db, &principal, &body.name, body.parent_id).await?)))
}

/// List products: filters, sort (`created_at`, `price`, `name`; `-` for descending) and
/// cursor pages. Anonymous callers and customers see active products only.
#[utoipa::path(get, path = "/products", tag = "catalog", security((), ("bearer" = []), ("api_key" = ["catalog:read"])), params(ProductFilter),
    responses((status = 200, body = Page<Product>), (status = 422, body = Problem)))]
async fn list_products(
    State(state): State<AppState>,
    principal: Principal,
    Query(filter): Query<ProductFilter>,
) -> Result<Response> {
    let mut res = Json(products::list(&state.db, &principal, &filter).await?).into_response();
    if principal.actor.is_none() {
        public_revalidate(&mut res);
    }
    Ok(res)
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
    let product = products::create(&state.db, &principal, new).await?;
    Ok(with_etag(StatusCode::CREATED, product))
}

fn etag(p: &Product) -> String {
    format!("\"{}\"", p.version)
}

fn with_etag(status: StatusCode, p: Product) -> Response {
    let tag = etag(&p);
    let mut res = (status, Json(p)).into_response();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// One product. Sends an `ETag`; `If-None-Match` with it answers 304.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    security((), ("bearer" = []), ("api_key" = ["catalog:read"])), responses((status = 200, body = Product), (status = 304, description = "not modified"), (status = 404, body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let product = products::get(&state.db, &principal, id).await?;
    let tag = etag(&product);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if matches {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&tag) {
            res.headers_mut().insert(header::ETAG, v);
        }
        return Ok(res);
    }
    let mut res = with_etag(StatusCode::OK, product);
    if principal.actor.is_none() {
        public_revalidate(&mut res);
    }
    Ok(res)
}

/// Anonymous catalog reads may be stored by browsers and proxies, revalidated with the ETag
/// each time; everything else keeps the stack's default `Cache-Control: no-store`.
fn public_revalidate(res: &mut Response) {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res.headers_mut().insert(header::VARY, HeaderValue::from_static("authorization, x-api-key"));
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

/// Update a product (staff). With `If-Match: "<version>"`, only if unchanged since (412).
#[utoipa::path(patch, path = "/products/{id}", tag = "catalog", security(("bearer" = []), ("api_key" = ["catalog:write"])), request_body = UpdateProductRequest,
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_product(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<UpdateProductRequest>,
) -> Result<Response> {
    let if_version = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>().ok())
                .ok_or_else(|| {
                    Error::Validation(vec![FieldError::new("If-Match", "must be an ETag returned by this API")])
                })?,
        ),
    };
    let patch = ProductPatch {
        name: body.name,
        description: body.description,
        price_minor: body.price_minor,
        currency: body.currency,
        status: body.status,
        category_id: body.category_id,
    };
    Ok(with_etag(StatusCode::OK, products::update(&state.db, &principal, id, patch, if_version).await?))
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

/// Adjust on-hand stock by a relative amount (staff). 409 `insufficient-stock` if it would
/// leave less than is reserved, 409 `stock-limit` if more than 10^12 units would be on hand.
#[utoipa::path(post, path = "/products/{id}/inventory/adjustments", tag = "inventory", security(("bearer" = []), ("api_key" = ["catalog:write"])),
    request_body = AdjustmentRequest,
    responses((status = 200, body = Inventory), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn adjust_inventory(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<AdjustmentRequest>,
) -> Result<Json<Inventory>> {
    Ok(Json(inventory::adjust(&state.db, &principal, id, body.delta, &body.reason).await?))
}
