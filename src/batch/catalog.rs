//! Batch price/status updates and stock adjustments: the single operations'
//! (`catalog::products::update`, `catalog::stock::adjust`) rules and writes, many at once.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ItemFuture, ItemOutcome, Mode, Op, Target, check_size, run};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::catalog::products::{UpdateFields, apply_update};
use crate::catalog::{Catalog, ProductStatus};
use crate::db::Tx;
use crate::error::{Error, FieldError, Result};
use crate::inventory::{StockDelta, adjust_in};
use crate::money::Price;
use crate::ratelimit::Class;

/// One product update: the product by `id` or `sku` (exactly one), and at least one of
/// `price_minor` (minor units of the product's currency, 0 to 10^12) and `status`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductItem {
    pub id: Option<Uuid>,
    /// 1 to 64 of `A–Z a–z 0–9 - _ .`.
    pub sku: Option<String>,
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub price_minor: Option<i64>,
    pub status: Option<ProductStatus>,
}

/// One stock adjustment: the product by `id` or `sku` (exactly one), `delta` units
/// (non-zero, at most 10^9 in size; negative removes) and a `reason` (1 to 200 characters).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockItem {
    pub id: Option<Uuid>,
    pub sku: Option<String>,
    #[schema(schema_with = crate::inventory::stock_delta_schema)]
    pub delta: i64,
    #[schema(schema_with = crate::auth::name_schema)]
    pub reason: String,
}

/// Updates the price and/or status of up to 1,000 products (see [`crate::batch`] for the
/// modes), recording `product.updated` for each. Staff with `catalog:write` (403 otherwise).
///
/// Errors of the whole call: 422 on `items` (empty or over 1,000); 428 when
/// `catalog.require_if_match` is on (a batch carries no `If-Match`, so the rule of the
/// single update refuses it). Errors of an item: 422 naming its bad fields (`id`/`sku`,
/// `price_minor`, or neither change given); 404 no such product.
pub async fn update_products(
    cat: &Catalog,
    principal: &Principal,
    mode: Mode,
    items: Vec<ProductItem>,
) -> Result<Vec<ItemOutcome>> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    check_size(items.len())?;
    if cat.require_if_match {
        return Err(Error::PreconditionRequired);
    }
    let parsed = items.iter().map(parse_product).collect();
    run(&cat.db, &cat.cache, mode, parsed, &ProductUpdate).await
}

struct ParsedProduct {
    target: Target,
    price_minor: Option<i64>,
    status: Option<ProductStatus>,
}

fn parse_product(item: &ProductItem) -> Result<ParsedProduct> {
    let mut errors = Vec::new();
    let target = Target::parse(item.id, item.sku.as_deref()).map_err(|e| errors.push(e)).ok();
    let price =
        item.price_minor.map(Price::parse).transpose().map_err(|m| errors.push(FieldError::new("price_minor", m)));
    if item.price_minor.is_none() && item.status.is_none() {
        errors.push(FieldError::new("price_minor", "give price_minor, status or both"));
    }
    match (target, price) {
        (Some(target), Ok(price)) if errors.is_empty() => {
            Ok(ParsedProduct { target, price_minor: price.map(Price::minor), status: item.status })
        }
        _ => Err(Error::Validation(errors)),
    }
}

struct ProductUpdate;

impl Op for ProductUpdate {
    type Item = ParsedProduct;
    fn apply<'a>(&'a self, tx: &'a mut Tx, item: &'a ParsedProduct) -> ItemFuture<'a> {
        Box::pin(async move {
            let id = item.target.resolve(tx).await?;
            let fields = UpdateFields { price_minor: item.price_minor, status: item.status, ..UpdateFields::default() };
            apply_update(tx, id, &fields, -1, 0).await?;
            Ok(vec![id])
        })
    }
}

/// Adjusts the stock of up to 1,000 products (see [`crate::batch`] for the modes), with the
/// rules of the single adjustment: on hand never below what is reserved (available never
/// negative) nor above 10^12, one conditional UPDATE each, `inventory.adjusted` (and
/// `inventory.low`) recorded. Staff with `catalog:write` (403 otherwise). Two items for the
/// same product apply one after the other, each checked against the stock the previous left.
///
/// Errors of the whole call: 422 on `items` (empty or over 1,000). Errors of an item: 422
/// naming its bad fields (`id`/`sku`, `delta`, `reason`); 404 no such product; 409
/// `insufficient-stock` or `stock-limit`.
pub async fn adjust_stock(
    cat: &Catalog,
    principal: &Principal,
    mode: Mode,
    items: Vec<StockItem>,
) -> Result<Vec<ItemOutcome>> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    check_size(items.len())?;
    let parsed = items.iter().map(parse_stock).collect();
    run(&cat.db, &cat.cache, mode, parsed, &StockAdjust).await
}

struct ParsedStock {
    target: Target,
    delta: StockDelta,
    reason: String,
}

fn parse_stock(item: &StockItem) -> Result<ParsedStock> {
    let mut errors = Vec::new();
    let target = Target::parse(item.id, item.sku.as_deref()).map_err(|e| errors.push(e)).ok();
    let delta = StockDelta::parse(item.delta).map_err(|m| errors.push(FieldError::new("delta", m))).ok();
    let reason = crate::auth::parse_name(&item.reason).map_err(|m| errors.push(FieldError::new("reason", m))).ok();
    match (target, delta, reason) {
        (Some(target), Some(delta), Some(reason)) => Ok(ParsedStock { target, delta, reason }),
        _ => Err(Error::Validation(errors)),
    }
}

struct StockAdjust;

impl Op for StockAdjust {
    type Item = ParsedStock;
    fn apply<'a>(&'a self, tx: &'a mut Tx, item: &'a ParsedStock) -> ItemFuture<'a> {
        Box::pin(async move {
            let id = item.target.resolve(tx).await?;
            adjust_in(tx, id, item.delta, item.reason.clone(), None).await?;
            Ok(vec![id])
        })
    }
}
