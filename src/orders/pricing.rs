//! Checkout step 1: validate and price a cart from the catalog. Client prices and totals are
//! never used; repeated SKUs are merged; every bad line is reported at once. Line totals and
//! the subtotal are checked: an amount beyond `i64` is a 422, never a wrapped total.

use std::collections::HashMap;

use sqlx::AnyConnection;
use sqlx::Row;
use uuid::Uuid;

use super::cart::{CartLine, MAX_QUANTITY};
use crate::db::{self, Arg, SqlBuilder};
use crate::error::{Error, FieldError, Result};

/// A cart line priced from the catalog.
pub(super) struct PricedLine {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    /// unit_price_minor × quantity, checked.
    pub line_total_minor: i64,
}

/// A priced cart: its lines, their one currency (ISO 4217), and Σ line totals in minor units.
pub(super) struct Priced {
    pub lines: Vec<PricedLine>,
    pub currency: String,
    pub subtotal_minor: i64,
}

/// Step 1: merges repeated SKUs and prices every line from the catalog. 422 naming each bad
/// line (`line_items[i].sku`: unknown, not for sale, another currency;
/// `line_items[i].quantity`: over 1000 of one SKU, or a line total beyond `i64`;
/// `line_items`: a subtotal beyond `i64`).
#[tracing::instrument(name = "checkout.price", skip_all, fields(order.lines = lines.len()))]
pub(super) async fn price(conn: &mut AnyConnection, lines: &[CartLine]) -> Result<Priced> {
    // At most 100 lines of at most 1000 each: the merged sums cannot overflow, but stay checked.
    let mut merged: Vec<(String, i64, usize)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match merged.iter_mut().find(|(s, _, _)| s == l.sku.as_str()) {
            Some(m) => m.1 = m.1.checked_add(l.quantity.get()).unwrap_or(i64::MAX),
            None => merged.push((l.sku.as_str().to_owned(), l.quantity.get(), i)),
        }
    }
    let mut b = SqlBuilder::new("SELECT id, sku, name, price_minor, currency, status FROM products WHERE sku IN (");
    for (i, (sku, _, _)) in merged.iter().enumerate() {
        let a = b.arg(Arg::Text(sku.clone()));
        b.push(if i == 0 { "" } else { ", " }).push(&a);
    }
    b.push(")");
    let rows = b.build().fetch_all(conn).await?;
    let mut by_sku = HashMap::with_capacity(rows.len());
    for r in &rows {
        by_sku.insert(r.try_get::<String, _>("sku")?, r);
    }
    let mut errors = Vec::new();
    let mut priced = Vec::with_capacity(merged.len());
    let mut currency: Option<String> = None;
    for (sku, quantity, i) in &merged {
        let field = format!("line_items[{i}].sku");
        let Some(r) = by_sku.get(sku) else {
            errors.push(FieldError::new(field, format!("no product has SKU {sku}")));
            continue;
        };
        if r.try_get::<String, _>("status")? != "active" {
            errors.push(FieldError::new(field, format!("{sku} is not for sale")));
            continue;
        }
        if *quantity > MAX_QUANTITY {
            errors.push(FieldError::new(
                format!("line_items[{i}].quantity"),
                format!("at most {MAX_QUANTITY} of one SKU"),
            ));
            continue;
        }
        let cur: String = r.try_get("currency")?;
        match &currency {
            Some(c) if *c != cur => {
                errors.push(FieldError::new(field, format!("is priced in {cur}; one order has one currency ({c})")));
                continue;
            }
            None => currency = Some(cur),
            _ => {}
        }
        let unit_price_minor: i64 = r.try_get("price_minor")?;
        let line_total = unit_price_minor.checked_mul(*quantity).filter(|t| *t >= 0);
        let Some(line_total_minor) = line_total else {
            errors.push(FieldError::new(
                format!("line_items[{i}].quantity"),
                "the line total (unit price × quantity) is out of range",
            ));
            continue;
        };
        priced.push(PricedLine {
            product_id: db::parse_id(&r.try_get::<String, _>("id")?)?,
            sku: sku.clone(),
            name: r.try_get("name")?,
            unit_price_minor,
            quantity: *quantity,
            line_total_minor,
        });
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let subtotal_minor = priced.iter().try_fold(0_i64, |sum, l| sum.checked_add(l.line_total_minor));
    let Some(subtotal_minor) = subtotal_minor else {
        return Err(Error::Validation(vec![FieldError::new("line_items", "the order total is out of range")]));
    };
    Ok(Priced { lines: priced, currency: currency.unwrap_or_default(), subtotal_minor })
}
