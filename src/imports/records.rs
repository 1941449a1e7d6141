//! The normalized records every importer produces and [`super::load`] writes: one shape per
//! entity, already parsed (SKUs, emails, currencies and statuses are newtypes), amounts in
//! integer minor units of the record's currency, timestamps in UTC.
//!
//! Records refer to each other by natural key, never by database id: a product names its
//! category by slug, an order its customer by external reference or email and its lines'
//! products by SKU. The loader resolves those keys against the batch and the database.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::Email;
use crate::catalog::{Sku, slugify};
use crate::inventory::InitialStock;
use crate::money::Currency;
use crate::orders::OrderStatus;

/// Everything one import writes, in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// Parents may come before or after their children; duplicates (same slug) are merged.
    pub categories: Vec<CategoryRecord>,
    pub products: Vec<ProductRecord>,
    pub customers: Vec<CustomerRecord>,
    pub orders: Vec<OrderRecord>,
    /// Counted stock levels of existing products (applied after the products above).
    pub stock_counts: Vec<StockCountRecord>,
}

/// A category, keyed by its unique slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRecord {
    pub slug: String,
    pub name: String,
    /// The parent's slug: in the same batch or already in the database.
    pub parent_slug: Option<String>,
}

impl CategoryRecord {
    /// The categories along a path of names, root first: `["Furniture", "Chairs"]` gives
    /// `furniture` and its child `furniture-chairs`, the slugs the catalog API gives a child
    /// (parent slug, `-`, own slug). Errors if a name is empty or has no letter or digit.
    pub fn path<S: AsRef<str>>(names: &[S]) -> Result<Vec<CategoryRecord>, String> {
        let mut out: Vec<CategoryRecord> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref().trim();
            let own = slugify(name);
            if own.is_empty() {
                return Err(format!("category name {name:?} needs a letter or digit"));
            }
            let parent_slug = out.last().map(|p| p.slug.clone());
            let slug = match &parent_slug {
                Some(p) => format!("{p}-{own}"),
                None => own,
            };
            out.push(CategoryRecord { slug, name: name.to_owned(), parent_slug });
        }
        Ok(out)
    }
}

/// A product and its initial stock, keyed by SKU. An existing SKU is left untouched.
#[derive(Debug, Clone)]
pub struct ProductRecord {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    /// Minor units of `currency`, >= 0.
    pub price_minor: i64,
    pub currency: Currency,
    pub category_slug: Option<String>,
    /// Units on hand when the product is created, >= 0.
    pub on_hand: i64,
    /// `inventory.low` fires at or below this many available units, >= 0.
    pub low_stock_threshold: i64,
    /// Source line, for error reports.
    pub line: Option<u64>,
}

/// A counted stock level: the product with `sku` gets exactly `on_hand` units on hand
/// (`crate::inventory::count`). The product must exist.
#[derive(Debug, Clone)]
pub struct StockCountRecord {
    pub sku: Sku,
    pub on_hand: InitialStock,
    /// Source line, for error reports.
    pub line: Option<u64>,
}

/// A customer account without a password (it cannot log in until an admin issues a reset
/// token). Keyed by email and by `external_ref`: a clash on either leaves the existing user.
#[derive(Debug, Clone)]
pub struct CustomerRecord {
    pub email: Email,
    pub name: String,
    /// The customer's id in the system it comes from (Superstore `CG-12520`).
    pub external_ref: Option<String>,
    pub segment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub line: Option<u64>,
}

/// How an order names its customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerKey {
    ExternalRef(String),
    Email(Email),
}

impl std::fmt::Display for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CustomerKey::ExternalRef(r) => write!(f, "external_ref {r}"),
            CustomerKey::Email(e) => write!(f, "email {}", e.as_str()),
        }
    }
}

/// A historical order, keyed by its number. It never reserves or moves stock and gets
/// saga state `completed`; its totals are the sums of its lines.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub number: String,
    pub customer: CustomerKey,
    /// Not `pending_payment` or `paid`: those hold stock reservations an import cannot have.
    pub status: OrderStatus,
    pub placed_at: DateTime<Utc>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub ship_mode: Option<String>,
    pub shipping_address: Option<ShippingAddress>,
    pub currency: Currency,
    /// At least one; numbered 1, 2, … in this order.
    pub lines: Vec<LineRecord>,
    /// First source line of the order, for error reports.
    pub line: Option<u64>,
}

/// Where an order went; stored as JSON in `orders.shipping_address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShippingAddress {
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
    pub region: String,
}

/// One order line, in minor units of the order's currency.
/// Invariant: `line_total_minor = unit_price_minor × quantity − discount_minor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    /// Linked to the product with this SKU if there is one (else the line stands alone).
    pub sku: Sku,
    pub name: String,
    /// >= 0.
    pub unit_price_minor: i64,
    /// > 0.
    pub quantity: i64,
    /// May be negative by a rounding cent when the total was rounded from a finer source.
    pub discount_minor: i64,
    pub line_total_minor: i64,
}

impl OrderRecord {
    /// `(subtotal, discount, total)`: Σ unit × quantity, Σ discounts, Σ line totals.
    /// Errors if a line breaks its invariant, there are no lines, or a sum overflows.
    pub fn totals(&self) -> Result<(i64, i64, i64), String> {
        if self.lines.is_empty() {
            return Err("an order needs at least one line".into());
        }
        let overflow = || "amounts overflow 64-bit minor units".to_owned();
        let (mut subtotal, mut discount, mut total) = (0i64, 0i64, 0i64);
        for (i, l) in self.lines.iter().enumerate() {
            if l.unit_price_minor < 0 || l.quantity <= 0 {
                return Err(format!("line {}: unit price must be >= 0 and quantity > 0", i + 1));
            }
            let gross = l.unit_price_minor.checked_mul(l.quantity).ok_or_else(overflow)?;
            if gross.checked_sub(l.discount_minor) != Some(l.line_total_minor) {
                return Err(format!("line {}: total is not unit price × quantity − discount", i + 1));
            }
            subtotal = subtotal.checked_add(gross).ok_or_else(overflow)?;
            discount = discount.checked_add(l.discount_minor).ok_or_else(overflow)?;
            total = total.checked_add(l.line_total_minor).ok_or_else(overflow)?;
        }
        Ok((subtotal, discount, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_paths_give_the_slugs_the_catalog_api_would() {
        let path = CategoryRecord::path(&["Office Supplies", "Paper"]).expect("path");
        assert_eq!(path[0].slug, "office-supplies");
        assert_eq!(path[0].parent_slug, None);
        assert_eq!(path[1].slug, "office-supplies-paper");
        assert_eq!(path[1].parent_slug.as_deref(), Some("office-supplies"));
        assert!(CategoryRecord::path(&["Furniture", "  "]).is_err());
    }

    #[test]
    fn order_totals_are_sums_of_lines_that_keep_their_invariant() {
        let line = |unit, qty, discount, total| LineRecord {
            sku: Sku::parse("A-1").expect("sku"),
            name: "A".into(),
            unit_price_minor: unit,
            quantity: qty,
            discount_minor: discount,
            line_total_minor: total,
        };
        let mut order = OrderRecord {
            number: "1".into(),
            customer: CustomerKey::ExternalRef("c".into()),
            status: OrderStatus::Delivered,
            placed_at: Utc::now(),
            shipped_at: None,
            delivered_at: None,
            ship_mode: None,
            shipping_address: None,
            currency: Currency::parse("USD").expect("usd"),
            lines: vec![line(13098, 2, 0, 26196), line(1000, 3, 600, 2400)],
            line: None,
        };
        assert_eq!(order.totals(), Ok((29196, 600, 28596)));
        order.lines.push(line(100, 1, 0, 99));
        assert!(order.totals().is_err());
        order.lines = vec![line(i64::MAX, 2, 0, 0)];
        assert!(order.totals().is_err());
        order.lines.clear();
        assert!(order.totals().is_err());
    }
}
