//! The Tableau "Sample - Superstore" dataset (`datasets/superstore/superstore.csv`): 9,994
//! order lines of a US office-supplies retailer, 2014–2017, mapped onto the common loader.
//!
//! The mapping, and the quirks of the real data it keeps, are documented in
//! docs/IMPORTS.md: categories and sub-categories become a two-level tree; Product ID is
//! the SKU, with the name and unit list price of its most recent line; Customer ID is the
//! customer's `external_ref`, with a synthesized `@customers.superstore.example` email and
//! no password; every order is `delivered`, with its exact line totals; stock is seeded
//! at five units plus about a year of demand.

mod price;
mod report;
mod rows;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};

pub use report::SuperstoreReport;
pub use rows::Line;

use super::load;
use super::records::{Batch, CategoryRecord, CustomerKey, CustomerRecord, LineRecord, OrderRecord, ProductRecord};
use crate::auth::Email;
use crate::catalog::Sku;
use crate::db::Db;
use crate::money::Currency;
use crate::orders::OrderStatus;

/// Synthesized customer emails live under this RFC 2606 reserved domain.
pub const EMAIL_DOMAIN: &str = "customers.superstore.example";
/// Stock seeded per product: this many units plus a quarter of the four years' sales.
const BASE_STOCK: i64 = 5;
const LOW_STOCK_THRESHOLD: i64 = 10;
/// Row errors listed when a file is refused.
const ERRORS_SHOWN: usize = 10;

/// Imports `path` (the Superstore CSV) idempotently: a second run creates nothing. The
/// whole file is validated before anything is written; any invalid row refuses the file
/// (it is a fixed dataset, so an invalid row means a wrong or damaged file). Errors also
/// when the file cannot be read or the database fails (nothing is written then).
pub async fn import_file(db: &Db, path: &Path) -> anyhow::Result<SuperstoreReport> {
    let read = rows::read(path)?;
    import_rows(db, &path.display().to_string(), read).await
}

/// Imports the rows [`read_from`] read from `name` (a path, an upload); as [`import_file`].
pub async fn import_rows(db: &Db, name: &str, read: Rows) -> anyhow::Result<SuperstoreReport> {
    let (rows_read, lines, errors) = read;
    if !errors.is_empty() {
        let shown: Vec<String> = errors.iter().take(ERRORS_SHOWN).map(ToString::to_string).collect();
        anyhow::bail!(
            "{name} is not a valid Superstore file: {} invalid rows, e.g.\n  {}",
            errors.len(),
            shown.join("\n  ")
        );
    }
    let (batch, facts) = map(lines)?;
    let loaded = load::load(db, "superstore", batch).await?;
    Ok(SuperstoreReport { file: name.to_owned(), rows_read, loaded, ..facts })
}

/// What [`read_from`] returns: data rows read, the valid lines, the invalid rows.
pub type Rows = (u64, Vec<Line>, Vec<super::report::RowError>);

/// Reads a whole Superstore CSV from `input` (blocking: run it off the async workers).
/// Errors when the input cannot be read or its header lacks a Superstore column.
pub fn read_from(input: impl std::io::Read) -> anyhow::Result<Rows> {
    rows::read_from(input)
}

/// Per product, while reading its lines.
struct ProductAgg {
    sku: Sku,
    /// `(Order Date, Row ID)` of the line whose name and price are kept.
    latest: (DateTime<Utc>, u64),
    name: String,
    unit_price_minor: i64,
    category_slug: String,
    variants: HashSet<(String, i64)>,
    quantity_sold: i64,
    line: u64,
}

/// Maps validated lines to records, and gathers the facts the report states about the file.
fn map(mut lines: Vec<Line>) -> anyhow::Result<(Batch, SuperstoreReport)> {
    lines.sort_by_key(|l| l.row_id);
    let usd = Currency::parse("USD").map_err(anyhow::Error::msg)?;
    let mut facts = SuperstoreReport::default();
    let mut categories: Vec<CategoryRecord> = Vec::new();
    let mut category_slugs: HashMap<(String, String), String> = HashMap::new();
    let mut products: BTreeMap<String, ProductAgg> = BTreeMap::new();
    let mut customers: BTreeMap<String, CustomerRecord> = BTreeMap::new();
    let mut orders: Vec<OrderRecord> = Vec::new();
    let mut order_index: HashMap<String, usize> = HashMap::new();
    let mut pairs: BTreeMap<(String, String), u32> = BTreeMap::new();

    for l in lines {
        facts.exact_sales_e4 = facts.exact_sales_e4.saturating_add(l.sales_e4);
        facts.line_totals_minor = facts.line_totals_minor.saturating_add(l.line_total_minor);
        facts.sub_cent_lines += u64::from(l.sub_cent);
        facts.postal_codes_padded += u64::from(l.postal_code_padded);
        *pairs.entry((l.order_id.clone(), l.sku.as_str().to_owned())).or_default() += 1;

        let key = (l.category.clone(), l.sub_category.clone());
        if !category_slugs.contains_key(&key) {
            let path = CategoryRecord::path(&[&l.category, &l.sub_category])
                .map_err(|e| anyhow::anyhow!("line {}: {e}", l.line))?;
            for c in &path {
                if !categories.iter().any(|k| k.slug == c.slug) {
                    categories.push(c.clone());
                }
            }
            let leaf = path.last().map(|c| c.slug.clone()).unwrap_or_default();
            category_slugs.insert(key.clone(), leaf);
        }
        let category_slug = category_slugs.get(&key).cloned().unwrap_or_default();

        let when = (l.order_date, l.row_id);
        let p = products.entry(l.sku.as_str().to_owned()).or_insert_with(|| ProductAgg {
            sku: l.sku.clone(),
            latest: when,
            name: l.product_name.clone(),
            unit_price_minor: l.unit_price_minor,
            category_slug: category_slug.clone(),
            variants: HashSet::new(),
            quantity_sold: 0,
            line: l.line,
        });
        p.variants.insert((l.product_name.clone(), l.unit_price_minor));
        p.quantity_sold = p.quantity_sold.saturating_add(l.quantity);
        if when >= p.latest {
            p.latest = when;
            p.name = l.product_name.clone();
            p.unit_price_minor = l.unit_price_minor;
            p.category_slug = category_slug;
        }

        let c = customers.entry(l.customer_id.clone()).or_insert(CustomerRecord {
            email: synthesized_email(&l.customer_id).map_err(|e| anyhow::anyhow!("line {}: {e}", l.line))?,
            name: l.customer_name.clone(),
            external_ref: Some(l.customer_id.clone()),
            segment: Some(l.segment.clone()),
            created_at: l.order_date,
            line: Some(l.line),
        });
        c.created_at = c.created_at.min(l.order_date);

        let index = *order_index.entry(l.order_id.clone()).or_insert_with(|| {
            orders.push(OrderRecord {
                number: l.order_id.clone(),
                customer: CustomerKey::ExternalRef(l.customer_id.clone()),
                status: OrderStatus::Delivered,
                placed_at: l.order_date,
                shipped_at: Some(l.ship_date),
                delivered_at: None,
                ship_mode: Some(l.ship_mode.clone()),
                shipping_address: Some(l.address.clone()),
                currency: usd.clone(),
                lines: Vec::new(),
                line: Some(l.line),
            });
            orders.len() - 1
        });
        let gross = l
            .unit_price_minor
            .checked_mul(l.quantity)
            .ok_or_else(|| anyhow::anyhow!("line {}: amount overflows", l.line))?;
        if let Some(order) = orders.get_mut(index) {
            order.lines.push(LineRecord {
                sku: l.sku,
                name: l.product_name,
                unit_price_minor: l.unit_price_minor,
                quantity: l.quantity,
                discount_minor: gross - l.line_total_minor,
                line_total_minor: l.line_total_minor,
            });
        }
    }

    facts.duplicate_lines = pairs.into_iter().filter(|(_, n)| *n > 1).map(|(pair, _)| pair).collect();
    facts.merged_skus = products.iter().filter(|(_, p)| p.variants.len() > 1).map(|(sku, _)| sku.clone()).collect();
    let products = products
        .into_values()
        .map(|p| ProductRecord {
            sku: p.sku,
            name: p.name,
            description: String::new(),
            price_minor: p.unit_price_minor,
            currency: usd.clone(),
            category_slug: Some(p.category_slug),
            // About a year of demand: a quarter of four years' sales, rounded up.
            on_hand: BASE_STOCK.saturating_add(p.quantity_sold.saturating_add(3) / 4),
            low_stock_threshold: LOW_STOCK_THRESHOLD,
            line: Some(p.line),
        })
        .collect();
    let batch =
        Batch { categories, products, customers: customers.into_values().collect(), orders, stock_counts: Vec::new() };
    Ok((batch, facts))
}

/// `CG-12520` → `cg-12520@customers.superstore.example`.
fn synthesized_email(customer_id: &str) -> Result<Email, String> {
    Email::parse(&format!("{}@{EMAIL_DOMAIN}", customer_id.to_lowercase()))
        .map_err(|e| format!("Customer ID {customer_id:?} gives no valid email: {e}"))
}
