//! Products: create, read, list (filters, sort, cursor pages), update with optimistic
//! concurrency (`version`, exposed as the `ETag`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Catalog, Description, Name, ProductStatus, Sku};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::conditional::{IfMatch, Representation};
use crate::db::{self, Arg, Db, SqlBuilder};
use crate::error::{Error, FieldError, Result};
use crate::events::{self, Event, ProductCreated};
use crate::inventory::{self, InitialStock};
use crate::money::{Currency, Price};
use crate::pagination::{Cursor, Page, PageRequest};
use crate::ratelimit::Class;
use crate::validate;

mod write;
pub(crate) use write::{UpdateFields, apply_update};

/// A product with its current availability.
// Deserialize: the gRPC transport reads the cached JSON back (src/grpc/catalog.rs).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// Price in minor units of `currency` (cents for USD), `0..=MAX_PRICE_MINOR` (10^12)
    /// for every product written through this module.
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub status: ProductStatus,
    pub category_id: Option<Uuid>,
    /// Units that can be sold now: on hand minus reserved.
    pub available: i64,
    /// Increases with every change of the product's own fields (not of its stock). The
    /// `ETag` is a hash of the whole body, so it also moves with `available`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.price_minor, p.currency, p.status, \
     p.category_id, p.version, p.created_at, p.updated_at, \
     COALESCE(i.on_hand - i.reserved, 0) AS available";
const FROM: &str = "FROM products p LEFT JOIN inventory i ON i.product_id = p.id";

fn from_row(row: &AnyRow) -> Result<Product, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let category: Option<String> = row.try_get("category_id")?;
    Ok(Product {
        id: db::parse_id(&row.try_get::<String, _>("id")?)?,
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        price_minor: row.try_get("price_minor")?,
        currency: row.try_get("currency")?,
        status: ProductStatus::parse(&status).map_err(|e| sqlx::Error::Decode(e.into()))?,
        category_id: category.as_deref().map(db::parse_id).transpose()?,
        available: row.try_get("available")?,
        version: row.try_get("version")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        updated_at: db::parse_ts(&row.try_get::<String, _>("updated_at")?)?,
    })
}

/// A new product as the caller asks for it: raw values, which [`create`] parses and
/// reports on all at once (422, one `errors[]` entry per bad field, named as here).
#[derive(Debug, Clone, Default)]
pub struct NewProduct {
    /// A [`Sku`]: 1 to 64 characters of `A–Z a–z 0–9 - _ .`.
    pub sku: String,
    /// A [`Name`]: trimmed, 1 to 200 characters.
    pub name: String,
    /// A [`Description`]: at most 10,000 characters.
    pub description: String,
    /// A [`Price`]: minor units of `currency`, `0..=MAX_PRICE_MINOR` (10^12).
    pub price_minor: i64,
    /// A supported ISO 4217 code ([`Currency`]).
    pub currency: String,
    /// Default `active`.
    pub status: Option<ProductStatus>,
    /// An existing category, or none.
    pub category_id: Option<Uuid>,
    /// An [`InitialStock`]: units on hand to start with, `0..=MAX_STOCK` (10^12).
    pub initial_stock: i64,
}

/// Creates a product and its inventory row in one transaction and records
/// `product.created`. Needs staff with `catalog:write`.
///
/// Errors, each changing nothing: 422 naming every bad field of `p` (`sku`, `name`,
/// `description`, `price_minor`, `currency`, `initial_stock`) and `category_id` if the
/// category does not exist; 409 `sku-taken` if the SKU exists.
pub async fn create(cat: &Catalog, principal: &Principal, p: NewProduct) -> Result<Product> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    let db = &cat.db;
    validate! {
        sku <- "sku" => Sku::parse(&p.sku);
        name <- "name" => Name::parse(&p.name);
        description <- "description" => Description::parse(&p.description);
        price <- "price_minor" => Price::parse(p.price_minor);
        currency <- "currency" => Currency::parse(&p.currency);
        initial_stock <- "initial_stock" => InitialStock::parse(p.initial_stock);
    }
    let status = p.status.unwrap_or(ProductStatus::Active);
    let id = db::new_id();
    let now = db::now();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_minor, currency, status, category_id, \
         version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
    )
    .bind(id.to_string())
    .bind(sku.as_str())
    .bind(name.as_str())
    .bind(description.as_str())
    .bind(price.minor())
    .bind(currency.as_str())
    .bind(status.as_str())
    .bind(p.category_id.map(|c| c.to_string()))
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| map_write_error(e, sku.as_str()))?;
    inventory::insert(&mut tx, id, initial_stock, &now).await?;
    events::record(&mut tx, Event::ProductCreated(ProductCreated { product_id: id, sku: sku.as_str().to_owned() }))
        .await?;
    tx.commit().await?;
    cat.cache.products_changed(&[id]).await;
    fetch(db, id, true).await
}

fn map_write_error(e: sqlx::Error, sku: &str) -> Error {
    if db::is_unique_violation(&e, "sku") {
        Error::conflict("sku-taken", format!("a product with SKU {sku} exists already"))
    } else if let sqlx::Error::Database(d) = &e
        && d.is_foreign_key_violation()
    {
        Error::Validation(vec![FieldError::new("category_id", "no such category")])
    } else {
        e.into()
    }
}

/// A product by id. Public: anyone may read it; an API key needs `catalog:read` (403
/// `insufficient-scope`). 404 if there is no such product, or it is archived and the caller
/// is not staff.
pub async fn get(cat: &Catalog, principal: &Principal, id: Uuid) -> Result<Product> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    fetch(&cat.db, id, principal.is_staff()).await
}

/// The products with these ids that `principal` may see, as [`get`] would answer each, in
/// one query (for batch loaders: GraphQL's DataLoader). Public; an API key needs
/// `catalog:read` (403 `insufficient-scope`). Unknown ids, and archived products for
/// non-staff, are left out (what [`get`] answers 404). At most 1000 ids (422 on `ids`).
pub async fn get_many(cat: &Catalog, principal: &Principal, ids: &[Uuid]) -> Result<Vec<Product>> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    if ids.len() > 1000 {
        return Err(Error::Validation(vec![FieldError::new("ids", "at most 1000 ids at once")]));
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} {FROM} WHERE p.id IN ("));
    for (i, id) in ids.iter().enumerate() {
        let a = b.arg(Arg::Text(id.to_string()));
        b.push(if i == 0 { "" } else { ", " }).push(&a);
    }
    b.push(")");
    if !principal.is_staff() {
        let a = b.arg(Arg::Text(ProductStatus::Active.as_str().into()));
        b.push(&format!(" AND p.status = {a}"));
    }
    let rows = b.build().fetch_all(cat.db.pool()).await?;
    Ok(rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?)
}

/// A product by id. Archived products are visible only when `include_archived`.
pub(super) async fn fetch(db: &Db, id: Uuid, include_archived: bool) -> Result<Product> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE p.id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("product"))?;
    let product = from_row(&row)?;
    if product.status == ProductStatus::Archived && !include_archived {
        return Err(Error::NotFound("product"));
    }
    Ok(product)
}

/// How a product list is ordered; `-` means descending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub enum ProductSort {
    #[serde(rename = "created_at")]
    CreatedAt,
    #[default]
    #[serde(rename = "-created_at")]
    CreatedAtDesc,
    #[serde(rename = "price")]
    Price,
    #[serde(rename = "-price")]
    PriceDesc,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "-name")]
    NameDesc,
}

impl ProductSort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::CreatedAtDesc => "-created_at",
            Self::Price => "price",
            Self::PriceDesc => "-price",
            Self::Name => "name",
            Self::NameDesc => "-name",
        }
    }
    fn column(self) -> &'static str {
        match self {
            Self::CreatedAt | Self::CreatedAtDesc => "p.created_at",
            Self::Price | Self::PriceDesc => "p.price_minor",
            Self::Name | Self::NameDesc => "p.name",
        }
    }
    fn descending(self) -> bool {
        matches!(self, Self::CreatedAtDesc | Self::PriceDesc | Self::NameDesc)
    }
    /// The opaque cursor of `p` in a list sorted this way: what `next_cursor` is when `p`
    /// ends a page. For transports that give every item its own cursor (GraphQL edges).
    pub fn cursor_after(self, p: &Product) -> String {
        Cursor { sort: self.as_str().to_owned(), ..self.cursor_of(p) }.encode()
    }
    fn cursor_of(self, p: &Product) -> Cursor {
        let id = p.id.to_string();
        match self {
            Self::CreatedAt | Self::CreatedAtDesc => Cursor::text(db::ts(p.created_at), id),
            Self::Price | Self::PriceDesc => Cursor::int(p.price_minor, id),
            Self::Name | Self::NameDesc => Cursor::text(p.name.clone(), id),
        }
    }
}

/// Product list filters (all optional, combined with AND).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductFilter {
    /// Only this category and its descendants.
    pub category_id: Option<Uuid>,
    /// `active` or `archived`; archived products are listed for staff only.
    pub status: Option<ProductStatus>,
    /// Lowest price, minor units, inclusive. A range with `min_price` above `max_price` is
    /// empty, like any other range that no price lies in (an empty page, not an error: the
    /// contract cannot say one parameter must not exceed another).
    pub min_price: Option<i64>,
    /// Highest price, minor units, inclusive.
    pub max_price: Option<i64>,
    /// Case-insensitive text contained in the name.
    pub q: Option<String>,
    pub sort: Option<ProductSort>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque, base64url).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// Lists products matching `f`, one page at a time. Public: anyone may list; an API key
/// needs `catalog:read` (403 `insufficient-scope`). Non-staff see active products only and
/// get 403 `forbidden` when asking for archived ones. 422 on `limit`, `cursor` or `sort`.
pub async fn list(cat: &Catalog, principal: &Principal, f: &ProductFilter) -> Result<Page<Product>> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    page_for(&cat.db, principal.is_staff(), f).await
}

/// The page `f` asks for, as `staff` (all statuses) or not (active only; 403 when asking
/// for archived ones).
pub(super) async fn page_for(db: &Db, staff: bool, f: &ProductFilter) -> Result<Page<Product>> {
    let sort = f.sort.unwrap_or_default();
    let page = PageRequest::parse(f.limit, f.cursor.as_deref(), sort.as_str()).map_err(Error::Validation)?;
    let mut b = SqlBuilder::new(&format!("SELECT {COLUMNS} {FROM} WHERE 1 = 1"));
    let status = match (f.status, staff) {
        (Some(s), true) => Some(s),
        (Some(ProductStatus::Archived), false) => {
            return Err(Error::Forbidden("only staff may list archived products"));
        }
        (_, false) => Some(ProductStatus::Active),
        (None, true) => None,
    };
    if let Some(s) = status {
        let a = b.arg(Arg::Text(s.as_str().into()));
        b.push(&format!(" AND p.status = {a}"));
    }
    if let Some(c) = f.category_id {
        let a = b.arg(Arg::Text(c.to_string()));
        b.push(&format!(
            " AND p.category_id IN (WITH RECURSIVE sub(id) AS (SELECT id FROM categories WHERE id = {a} \
             UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id) SELECT id FROM sub)"
        ));
    }
    if let Some(lo) = f.min_price {
        let a = b.arg(Arg::Int(lo));
        b.push(&format!(" AND p.price_minor >= {a}"));
    }
    if let Some(hi) = f.max_price {
        let a = b.arg(Arg::Int(hi));
        b.push(&format!(" AND p.price_minor <= {a}"));
    }
    if let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let a = b.arg(Arg::Text(format!("%{escaped}%")));
        b.push(&format!(" AND LOWER(p.name) LIKE {a} ESCAPE '\\'"));
    }
    let (col, desc) = (sort.column(), sort.descending());
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    if let Some(c) = &page.cursor {
        let k = match sort {
            ProductSort::Price | ProductSort::PriceDesc => b.arg(Arg::Int(c.key_int()?)),
            _ => b.arg(Arg::Text(c.key_text()?.to_owned())),
        };
        let id = b.arg(Arg::Text(c.id.clone()));
        b.push(&format!(" AND ({col} {cmp} {k} OR ({col} = {k} AND p.id {cmp} {id}))"));
    }
    let lim = b.arg(Arg::Int(page.fetch_limit()));
    b.push(&format!(" ORDER BY {col} {dir}, p.id {dir} LIMIT {lim}"));
    let rows = b.build().fetch_all(db.pool()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |p| sort.cursor_of(p)))
}

/// Changes to a product as the caller asks for them: raw values, parsed by [`update`] like
/// [`NewProduct`]'s; `None` leaves a field unchanged. The SKU cannot change.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    /// A [`Name`]: trimmed, 1 to 200 characters.
    pub name: Option<String>,
    /// A [`Description`]: at most 10,000 characters.
    pub description: Option<String>,
    /// A [`Price`]: minor units, `0..=MAX_PRICE_MINOR` (10^12).
    pub price_minor: Option<i64>,
    /// A supported ISO 4217 code.
    pub currency: Option<String>,
    pub status: Option<ProductStatus>,
    pub category_id: Option<Uuid>,
}

/// Applies `patch` and records `product.updated`. With `if_match`, only if it matches the
/// product's current ETag (RFC 9110 §13.1.1: strong comparison, `*` matches any existing
/// product), checked atomically with the write. Needs staff with `catalog:write`.
///
/// Errors, each changing nothing: 422 naming every bad field (`name`, `description`,
/// `price_minor`, `currency`) and `category_id` if the category does not exist; 404 if there
/// is no such product; 412 if `if_match` does not match; 428 without `if_match` when
/// `catalog.require_if_match` is on (RFC 6585 §3).
pub async fn update(
    cat: &Catalog,
    principal: &Principal,
    id: Uuid,
    patch: ProductPatch,
    if_match: Option<&IfMatch>,
) -> Result<Product> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    let db = &cat.db;
    validate! {
        name <- "name" => patch.name.as_deref().map(Name::parse).transpose();
        description <- "description" => patch.description.as_deref().map(Description::parse).transpose();
        price <- "price_minor" => patch.price_minor.map(Price::parse).transpose();
        currency <- "currency" => patch.currency.as_deref().map(Currency::parse).transpose();
    }
    if if_match.is_none() && cat.require_if_match {
        return Err(Error::PreconditionRequired);
    }
    // The ETag covers the product's fields (`version`) and its stock (`available`): the
    // UPDATE re-checks both, so a change between this read and the write is a 412.
    let (if_version, if_available) = match if_match {
        None => (-1, 0),
        Some(condition) => {
            let current = fetch(db, id, true).await?;
            if !condition.matches(&Representation::json(&current)?.etag) {
                return Err(Error::PreconditionFailed);
            }
            (current.version, current.available)
        }
    };
    let fields = UpdateFields {
        name: name.as_ref().map(Name::as_str),
        description: description.as_ref().map(Description::as_str),
        price_minor: price.map(Price::minor),
        currency: currency.as_ref().map(Currency::as_str),
        status: patch.status,
        category_id: patch.category_id,
    };
    let mut tx = db.begin_write().await?;
    apply_update(&mut tx, id, &fields, if_version, if_available).await?;
    tx.commit().await?;
    cat.cache.products_changed(&[id]).await;
    fetch(db, id, true).await
}
