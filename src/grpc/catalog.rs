//! `orderly.v1.CatalogService` and `orderly.v1.InventoryService`: thin adapters over the
//! catalog service functions REST calls (`catalog::reads` for reads, through the same
//! cache; `products`, `stock`, `inventory` for the rest), with the caller's principal.
//! Parse the message, call, convert the answer; every rule lives in the service.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::caller::principal;
use super::pb;
use super::status::{invalid, opt_uuid, uuid};
use super::timestamp;
use crate::catalog::ProductStatus;
use crate::catalog::categories::Category;
use crate::catalog::products::{self, NewProduct, Product, ProductFilter, ProductPatch, ProductSort};
use crate::catalog::{reads, stock};
use crate::conditional::{IfMatch, Representation};
use crate::error::Error;
use crate::inventory::{self, Inventory};
use crate::pagination::Page;
use crate::services::App;

/// The catalog and inventory services over the shared [`App`].
#[derive(Clone)]
pub struct CatalogApi {
    app: Arc<App>,
}

impl CatalogApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

/// A cached JSON representation read back as its type (the cache keeps JSON for REST).
fn decode<T: serde::de::DeserializeOwned>(rep: &Representation) -> Result<T, Status> {
    serde_json::from_slice(&rep.body).map_err(|e| Status::from(Error::Internal(e.into())))
}

fn status_in(raw: i32, field: &str) -> Result<Option<ProductStatus>, Status> {
    match pb::ProductStatus::try_from(raw) {
        Ok(pb::ProductStatus::Unspecified) => Ok(None),
        Ok(pb::ProductStatus::Active) => Ok(Some(ProductStatus::Active)),
        Ok(pb::ProductStatus::Archived) => Ok(Some(ProductStatus::Archived)),
        Err(_) => Err(invalid(field, "unknown product status")),
    }
}

fn status_out(s: ProductStatus) -> pb::ProductStatus {
    match s {
        ProductStatus::Active => pb::ProductStatus::Active,
        ProductStatus::Archived => pb::ProductStatus::Archived,
    }
}

fn sort_in(raw: i32) -> Result<Option<ProductSort>, Status> {
    Ok(match pb::ProductSort::try_from(raw).map_err(|_| invalid("sort", "unknown sort"))? {
        pb::ProductSort::Unspecified => None,
        pb::ProductSort::CreatedAt => Some(ProductSort::CreatedAt),
        pb::ProductSort::CreatedAtDesc => Some(ProductSort::CreatedAtDesc),
        pb::ProductSort::Price => Some(ProductSort::Price),
        pb::ProductSort::PriceDesc => Some(ProductSort::PriceDesc),
        pb::ProductSort::Name => Some(ProductSort::Name),
        pb::ProductSort::NameDesc => Some(ProductSort::NameDesc),
    })
}

/// `If-Match` as the message carries it (an ETag or `*`); absent: unconditional.
fn if_match(raw: Option<&str>) -> Result<Option<IfMatch>, Status> {
    raw.map(|v| IfMatch::parse(v).map_err(|m| invalid("if_match", &m))).transpose()
}

pub fn product_out(p: Product) -> pb::Product {
    pb::Product {
        id: p.id.to_string(),
        sku: p.sku,
        name: p.name,
        description: p.description,
        price_minor: p.price_minor,
        currency: p.currency,
        status: status_out(p.status).into(),
        category_id: p.category_id.map(|c| c.to_string()).unwrap_or_default(),
        available: p.available,
        version: p.version,
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
    }
}

fn category_out(c: Category) -> pb::Category {
    pb::Category {
        id: c.id.to_string(),
        parent_id: c.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        name: c.name,
        slug: c.slug,
        created_at: Some(timestamp(c.created_at)),
    }
}

fn stock_out(i: Inventory) -> pb::Stock {
    pb::Stock {
        product_id: i.product_id.to_string(),
        sku: i.sku,
        on_hand: i.on_hand,
        reserved: i.reserved,
        available: i.available,
        low_stock_threshold: i.low_stock_threshold,
    }
}

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogApi {
    async fn get_product(&self, mut req: Request<pb::GetProductRequest>) -> Result<Response<pb::Product>, Status> {
        let principal = principal(&mut req)?;
        let id = uuid("id", &req.get_ref().id)?;
        let rep = reads::product(&self.app.catalog, &principal, id).await?;
        Ok(Response::new(product_out(decode(&rep)?)))
    }

    async fn list_products(
        &self,
        mut req: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let filter = ProductFilter {
            category_id: opt_uuid("category_id", m.category_id.as_deref())?,
            status: status_in(m.status, "status")?,
            min_price: m.min_price,
            max_price: m.max_price,
            q: m.q,
            sort: sort_in(m.sort)?,
            limit: (m.limit != 0).then_some(m.limit),
            cursor: (!m.cursor.is_empty()).then_some(m.cursor),
        };
        let rep = reads::product_page(&self.app.catalog, &principal, &filter).await?;
        let page: Page<Product> = decode(&rep)?;
        Ok(Response::new(pb::ListProductsResponse {
            products: page.items.into_iter().map(product_out).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn list_categories(
        &self,
        mut req: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let principal = principal(&mut req)?;
        let rep = reads::category_list(&self.app.catalog, &principal).await?;
        let all: Vec<Category> = decode(&rep)?;
        Ok(Response::new(pb::ListCategoriesResponse { categories: all.into_iter().map(category_out).collect() }))
    }

    async fn create_product(
        &self,
        mut req: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let new = NewProduct {
            sku: m.sku,
            name: m.name,
            description: m.description,
            price_minor: m.price_minor,
            currency: m.currency,
            status: status_in(m.status, "status")?,
            category_id: opt_uuid("category_id", m.category_id.as_deref())?,
            initial_stock: m.initial_stock,
        };
        let product = products::create(&self.app.catalog, &principal, new).await?;
        Ok(Response::new(product_out(product)))
    }

    async fn update_product(
        &self,
        mut req: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let id = uuid("id", &m.id)?;
        let condition = if_match(m.if_match.as_deref())?;
        let patch = ProductPatch {
            name: m.name,
            description: m.description,
            price_minor: m.price_minor,
            currency: m.currency,
            status: status_in(m.status, "status")?,
            category_id: opt_uuid("category_id", m.category_id.as_deref())?,
        };
        let product = products::update(&self.app.catalog, &principal, id, patch, condition.as_ref()).await?;
        Ok(Response::new(product_out(product)))
    }
}

#[tonic::async_trait]
impl pb::inventory_service_server::InventoryService for CatalogApi {
    async fn get_stock(&self, mut req: Request<pb::GetStockRequest>) -> Result<Response<pb::Stock>, Status> {
        let principal = principal(&mut req)?;
        let id = uuid("product_id", &req.get_ref().product_id)?;
        Ok(Response::new(stock_out(inventory::get(&self.app.db, &principal, id).await?)))
    }

    async fn adjust_stock(&self, mut req: Request<pb::AdjustStockRequest>) -> Result<Response<pb::Stock>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let id = uuid("product_id", &m.product_id)?;
        let condition = if_match(m.if_match.as_deref())?;
        let inv = stock::adjust(&self.app.catalog, &principal, id, m.delta, &m.reason, condition.as_ref()).await?;
        Ok(Response::new(stock_out(inv)))
    }
}
