//! Catalog and stock: `products` (a Relay connection with REST's filters), `product`,
//! `categories`; `createProduct`, `updateProduct`, `createCategory`, `adjustStock`. Thin:
//! each resolver calls the same `catalog` function as REST with the caller's principal.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::error::{Gql, bad_input, rename_fields};
use super::schema::{Long, app, principal, uuid};
use crate::catalog::categories::{self, Category};
use crate::catalog::products::{self, NewProduct, Product, ProductFilter, ProductPatch};
use crate::catalog::stock;
use crate::conditional::{IfMatch, Representation};
use crate::inventory::Inventory;

/// Whether a product can be sold.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::catalog::ProductStatus")]
pub enum ProductStatus {
    Active,
    Archived,
}

/// How a product list is ordered.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::catalog::products::ProductSort")]
pub enum ProductSort {
    CreatedAt,
    CreatedAtDesc,
    Price,
    PriceDesc,
    Name,
    NameDesc,
}

/// A product with its current availability. Amounts in minor units of `currency`.
pub struct ProductNode(pub Product);

#[Object(name = "Product")]
impl ProductNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Minor units of `currency` (cents for USD), 0 to 10^12.
    async fn price_minor(&self) -> Long {
        Long(self.0.price_minor)
    }
    /// ISO 4217 code.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn status(&self) -> ProductStatus {
        self.0.status.into()
    }
    async fn category_id(&self) -> Option<ID> {
        self.0.category_id.map(|c| ID(c.to_string()))
    }
    /// Units that can be sold now: on hand minus reserved.
    async fn available(&self) -> Long {
        Long(self.0.available)
    }
    /// Increases with every change of the product's own fields.
    async fn version(&self) -> Long {
        Long(self.0.version)
    }
    /// The product's ETag, as REST sends it: pass it as `ifMatch` to update only this
    /// version (stock included).
    async fn etag(&self) -> async_graphql::Result<String> {
        let rep = Representation::json(&self.0).gql()?;
        Ok(String::from_utf8_lossy(&rep.etag).into_owned())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A node of the category tree; `slug` is unique and includes the parent's.
pub struct CategoryNode(Category);

#[Object(name = "Category")]
impl CategoryNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn parent_id(&self) -> Option<ID> {
        self.0.parent_id.map(|c| ID(c.to_string()))
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One product's stock, in units.
#[derive(SimpleObject)]
#[graphql(name = "Inventory")]
pub struct InventoryNode {
    product_id: ID,
    sku: String,
    /// In the warehouse, 0 to 10^12.
    on_hand: Long,
    /// Held by unpaid and unshipped orders.
    reserved: Long,
    /// onHand − reserved.
    available: Long,
    /// At or below this `available`, an `inventory.low` event is recorded.
    low_stock_threshold: Long,
}

impl From<Inventory> for InventoryNode {
    fn from(i: Inventory) -> Self {
        Self {
            product_id: ID(i.product_id.to_string()),
            sku: i.sku,
            on_hand: Long(i.on_hand),
            reserved: Long(i.reserved),
            available: Long(i.available),
            low_stock_threshold: Long(i.low_stock_threshold),
        }
    }
}

/// Where a page ends (Relay cursor connections).
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Pass as `after` for the next page; null on an empty page.
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct ProductEdge {
    /// Pass as `after` to continue after this product.
    cursor: String,
    node: ProductNode,
}

/// One page of products.
#[derive(SimpleObject)]
pub struct ProductConnection {
    edges: Vec<ProductEdge>,
    page_info: PageInfo,
}

/// The page size of a connection's `first` (1 to 100; anything else is refused by the
/// service as `first`).
pub fn page_size(first: Option<i32>) -> Option<u32> {
    first.map(|f| u32::try_from(f).unwrap_or(0))
}

/// What a connection field costs: its page size times what each node asks for.
pub fn connection_cost(first: Option<i32>, child: usize) -> usize {
    let n = first.map_or(20, |f| usize::try_from(f).unwrap_or(0).clamp(1, 100));
    n.saturating_mul(child).saturating_add(1)
}

#[derive(Default)]
pub struct ProductQueries;

#[Object]
impl ProductQueries {
    /// Products, filtered and sorted as `GET /api/v1/products`. Anonymous callers and
    /// customers see active products only (FORBIDDEN when asking for archived ones).
    #[graphql(complexity = "connection_cost(first, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "`endCursor` (or an edge's `cursor`) of the previous page.")] after: Option<String>,
        #[graphql(desc = "Case-insensitive text contained in the name.")] q: Option<String>,
        #[graphql(desc = "Only this category and its descendants.")] category_id: Option<ID>,
        status: Option<ProductStatus>,
        #[graphql(desc = "Lowest price, minor units, inclusive.")] min_price: Option<Long>,
        #[graphql(desc = "Highest price, minor units, inclusive.")] max_price: Option<Long>,
        #[graphql(desc = "Default CREATED_AT_DESC (newest first).")] sort: Option<ProductSort>,
    ) -> async_graphql::Result<ProductConnection> {
        let principal = principal(ctx)?;
        let filter = ProductFilter {
            category_id: category_id.as_ref().map(|c| uuid("categoryId", c)).transpose()?,
            status: status.map(Into::into),
            min_price: min_price.map(|p| p.0),
            max_price: max_price.map(|p| p.0),
            q,
            sort: sort.map(Into::into),
            limit: page_size(first).or(Some(20)),
            cursor: after,
        };
        let page = products::list(&app(ctx).catalog, &principal, &filter)
            .await
            .map_err(|e| rename_fields(e, &[("limit", "first"), ("cursor", "after")]))
            .gql()?;
        let sort: products::ProductSort = sort.map(Into::into).unwrap_or_default();
        let edges: Vec<ProductEdge> = page
            .items
            .into_iter()
            .map(|p| ProductEdge { cursor: sort.cursor_after(&p), node: ProductNode(p) })
            .collect();
        let page_info =
            PageInfo { has_next_page: page.next_cursor.is_some(), end_cursor: edges.last().map(|e| e.cursor.clone()) };
        Ok(ProductConnection { edges, page_info })
    }

    /// One product (NOT_FOUND if it does not exist, or is archived and the caller is not staff).
    async fn product(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ProductNode> {
        let id = uuid("id", &id)?;
        Ok(ProductNode(products::get(&app(ctx).catalog, &principal(ctx)?, id).await.gql()?))
    }

    /// Every category, roots first, then by name.
    async fn categories(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CategoryNode>> {
        let list = categories::list(&app(ctx).catalog, &principal(ctx)?).await.gql()?;
        Ok(list.into_iter().map(CategoryNode).collect())
    }
}

/// A new product (staff, `catalog:write`).
#[derive(InputObject)]
pub struct CreateProductInput {
    /// 1 to 64 of `A–Z a–z 0–9 - _ .`, unique.
    sku: String,
    name: String,
    /// At most 10000 characters.
    #[graphql(default)]
    description: String,
    /// Minor units of `currency`, 0 to 10^12.
    price_minor: Long,
    /// ISO 4217 code.
    currency: String,
    category_id: Option<ID>,
    /// Default ACTIVE.
    status: Option<ProductStatus>,
    /// Units on hand to start with, 0 to 10^12 (default 0).
    initial_stock: Option<Long>,
}

/// Fields to change; omitted ones stay. The SKU cannot change.
#[derive(InputObject)]
pub struct UpdateProductInput {
    name: Option<String>,
    description: Option<String>,
    price_minor: Option<Long>,
    currency: Option<String>,
    status: Option<ProductStatus>,
    category_id: Option<ID>,
}

fn if_match(raw: Option<&str>) -> async_graphql::Result<Option<IfMatch>> {
    raw.map(|r| IfMatch::parse(r).map_err(|m| bad_input("ifMatch", &m))).transpose()
}

#[derive(Default)]
pub struct ProductMutations;

#[Object]
impl ProductMutations {
    /// Create a product and its inventory (staff). CONFLICT `sku-taken`.
    async fn create_product(&self, ctx: &Context<'_>, input: CreateProductInput) -> async_graphql::Result<ProductNode> {
        let new = NewProduct {
            sku: input.sku,
            name: input.name,
            description: input.description,
            price_minor: input.price_minor.0,
            currency: input.currency,
            status: input.status.map(Into::into),
            category_id: input.category_id.as_ref().map(|c| uuid("input.categoryId", c)).transpose()?,
            initial_stock: input.initial_stock.map_or(0, |s| s.0),
        };
        Ok(ProductNode(products::create(&app(ctx).catalog, &principal(ctx)?, new).await.gql()?))
    }

    /// Update a product (staff). With `ifMatch` (its `etag`, or `*`), only if it still
    /// matches (PRECONDITION_FAILED).
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProductInput,
        if_match: Option<String>,
    ) -> async_graphql::Result<ProductNode> {
        let id = uuid("id", &id)?;
        let condition = self::if_match(if_match.as_deref())?;
        let patch = ProductPatch {
            name: input.name,
            description: input.description,
            price_minor: input.price_minor.map(|p| p.0),
            currency: input.currency,
            status: input.status.map(Into::into),
            category_id: input.category_id.as_ref().map(|c| uuid("input.categoryId", c)).transpose()?,
        };
        let p = products::update(&app(ctx).catalog, &principal(ctx)?, id, patch, condition.as_ref()).await.gql()?;
        Ok(ProductNode(p))
    }

    /// Create a category (staff).
    async fn create_category(
        &self,
        ctx: &Context<'_>,
        name: String,
        parent_id: Option<ID>,
    ) -> async_graphql::Result<CategoryNode> {
        let parent = parent_id.as_ref().map(|p| uuid("parentId", p)).transpose()?;
        Ok(CategoryNode(categories::create(&app(ctx).catalog, &principal(ctx)?, &name, parent).await.gql()?))
    }

    /// Adjust on-hand stock by `delta` units (staff). CONFLICT `insufficient-stock` below
    /// what is reserved, `stock-limit` above 10^12.
    async fn adjust_stock(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        delta: Long,
        reason: String,
        if_match: Option<String>,
    ) -> async_graphql::Result<InventoryNode> {
        let id = uuid("productId", &product_id)?;
        let condition = self::if_match(if_match.as_deref())?;
        let inv =
            stock::adjust(&app(ctx).catalog, &principal(ctx)?, id, delta.0, &reason, condition.as_ref()).await.gql()?;
        Ok(inv.into())
    }
}
