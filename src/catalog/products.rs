//! Products: create, read, list (filters, sort, cursor pages), update with optimistic
//! concurrency (`version`, exposed as the `ETag`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ProductStatus, Sku};
use crate::db::{self, Arg, Db, SqlBuilder};
use crate::error::{Error, FieldError, Result};
use crate::events::{self, Event, ProductCreated, ProductUpdated};
use crate::money::Currency;
use crate::pagination::{Cursor, Page, PageRequest};

/// A product with its current availability.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// Price in minor units of `currency` (cents for USD).
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub status: ProductStatus,
    pub category_id: Option<Uuid>,
    /// Units that can be sold now: on hand minus reserved.
    pub available: i64,
    /// Increases with every change; the `ETag` is `"<version>"`.
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

/// A validated new product.
#[derive(Debug)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: Currency,
    pub status: ProductStatus,
    pub category_id: Option<Uuid>,
    pub initial_stock: i64,
}

/// Creates a product and its inventory row in one transaction. 409 `sku-taken` if the SKU
/// exists; 422 on `category_id` if the category does not.
pub async fn create(db: &Db, p: NewProduct) -> Result<Product> {
    let id = db::new_id();
    let now = db::now();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_minor, currency, status, category_id, \
         version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
    )
    .bind(id.to_string())
    .bind(p.sku.as_str())
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.price_minor)
    .bind(p.currency.as_str())
    .bind(p.status.as_str())
    .bind(p.category_id.map(|c| c.to_string()))
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| map_write_error(e, p.sku.as_str()))?;
    sqlx::query("INSERT INTO inventory (product_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, $3)")
        .bind(id.to_string())
        .bind(p.initial_stock)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    events::record(&mut tx, Event::ProductCreated(ProductCreated { product_id: id, sku: p.sku.as_str().to_owned() }))
        .await?;
    tx.commit().await?;
    get(db, id, true).await
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

/// A product by id. Archived products are visible only when `include_archived`.
pub async fn get(db: &Db, id: Uuid, include_archived: bool) -> Result<Product> {
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
    /// Lowest price, minor units, inclusive.
    pub min_price: Option<i64>,
    /// Highest price, minor units, inclusive.
    pub max_price: Option<i64>,
    /// Case-insensitive text contained in the name.
    pub q: Option<String>,
    pub sort: Option<ProductSort>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists products matching `f`, one page at a time. Non-staff see active products only.
pub async fn list(db: &Db, f: &ProductFilter, staff: bool) -> Result<Page<Product>> {
    let sort = f.sort.unwrap_or_default();
    let page = PageRequest::parse(f.limit, f.cursor.as_deref(), sort.as_str()).map_err(Error::Validation)?;
    if let (Some(lo), Some(hi)) = (f.min_price, f.max_price)
        && lo > hi
    {
        return Err(Error::Validation(vec![FieldError::new("min_price", "must not exceed max_price")]));
    }
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

/// A validated partial update; `None` leaves a field unchanged.
#[derive(Debug, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<Currency>,
    pub status: Option<ProductStatus>,
    pub category_id: Option<Uuid>,
}

/// Applies `patch`. With `if_version`, only if the product is still at that version
/// (412 otherwise). Records `product.updated`.
pub async fn update(db: &Db, id: Uuid, patch: ProductPatch, if_version: Option<i64>) -> Result<Product> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE products SET name = COALESCE($1, name), description = COALESCE($2, description), \
         price_minor = COALESCE($3, price_minor), currency = COALESCE($4, currency), \
         status = COALESCE($5, status), category_id = COALESCE($6, category_id), \
         version = version + 1, updated_at = $7 WHERE id = $8 AND ($9 < 0 OR version = $9)",
    )
    .bind(patch.name.as_deref())
    .bind(patch.description.as_deref())
    .bind(patch.price_minor)
    .bind(patch.currency.as_ref().map(Currency::as_str))
    .bind(patch.status.map(ProductStatus::as_str))
    .bind(patch.category_id.map(|c| c.to_string()))
    .bind(db::now())
    .bind(id.to_string())
    .bind(if_version.unwrap_or(-1))
    .execute(&mut *tx)
    .await
    .map_err(|e| map_write_error(e, ""))?
    .rows_affected();
    if n == 0 {
        let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM products WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        return Err(if exists.is_some() { Error::PreconditionFailed } else { Error::NotFound("product") });
    }
    events::record(&mut tx, Event::ProductUpdated(ProductUpdated { product_id: id })).await?;
    tx.commit().await?;
    get(db, id, true).await
}
