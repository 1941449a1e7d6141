//! The SQL and the encoding of each export: rows in, CSV or NDJSON bytes out. The CSV
//! columns are exactly the generic import formats of `docs/IMPORTS.md` (`orders.csv`,
//! `products.csv`, `customers.csv`), so an export imports back with `orderly import`.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::SecondsFormat;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Export, Format, Kind};
use crate::db::{self, Arg, Db, SqlBuilder};
use crate::money::{Currency, format_minor};

/// One order line (NDJSON shape of the orders export; amounts in minor units).
#[derive(Debug, Serialize)]
pub struct OrderLineRow {
    pub order_number: String,
    pub customer_email: String,
    /// RFC 3339.
    pub placed_at: String,
    pub status: String,
    pub currency: String,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i64,
    /// The line's total discount.
    pub discount_minor: i64,
}

/// One product (NDJSON shape; the CSV has the import's columns, without status and date).
#[derive(Debug, Serialize)]
pub struct ProductRow {
    pub sku: String,
    pub name: String,
    pub description: String,
    /// The category path, `Furniture/Chairs`.
    pub category: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub status: String,
    pub on_hand: i64,
    pub created_at: String,
}

/// One customer (NDJSON shape; the CSV has the import's columns, without the date).
#[derive(Debug, Serialize)]
pub struct CustomerRow {
    pub email: String,
    pub name: String,
    pub external_ref: Option<String>,
    pub created_at: String,
}

const ORDER_COLUMNS: [&str; 10] = [
    "order_number",
    "customer_email",
    "placed_at",
    "status",
    "currency",
    "sku",
    "name",
    "unit_price",
    "quantity",
    "discount",
];
const PRODUCT_COLUMNS: [&str; 7] = ["sku", "name", "description", "category", "price", "currency", "on_hand"];
const CUSTOMER_COLUMNS: [&str; 3] = ["email", "name", "external_ref"];

/// Encodes the rows of one export into a growing buffer, taken chunk by chunk.
pub struct Encoder {
    kind: Kind,
    format: Format,
    /// CSV records (through the writer's own 8 KiB buffer).
    out: csv::Writer<Vec<u8>>,
    /// NDJSON lines.
    json: Vec<u8>,
    /// Category id → path (products only): the tree is small and bounded, unlike the rows.
    categories: HashMap<String, String>,
}

impl Encoder {
    /// Writes the CSV header; loads the category paths for a products export.
    pub async fn new(db: &Db, export: &Export) -> Result<Self, sqlx::Error> {
        let categories = if export.kind == Kind::Products { category_paths(db).await? } else { HashMap::new() };
        let mut enc =
            Self { kind: export.kind, format: export.format, out: csv_writer(), json: Vec::new(), categories };
        if enc.format == Format::Csv {
            let header: &[&str] = match enc.kind {
                Kind::Orders => &ORDER_COLUMNS,
                Kind::Products => &PRODUCT_COLUMNS,
                Kind::Customers => &CUSTOMER_COLUMNS,
            };
            enc.out.write_record(header).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        }
        Ok(enc)
    }

    /// The query of the export, filters bound.
    pub fn query(&self, export: &Export) -> SqlBuilder {
        let (mut b, time, status) = match self.kind {
            Kind::Orders => (
                SqlBuilder::new(
                    "SELECT o.number, u.email, o.placed_at, o.status, o.currency, l.sku, l.name, \
                     l.unit_price_minor, l.quantity, l.discount_minor FROM orders o \
                     JOIN users u ON u.id = o.customer_id JOIN order_lines l ON l.order_id = o.id WHERE 1 = 1",
                ),
                "o.placed_at",
                "o.status",
            ),
            Kind::Products => (
                SqlBuilder::new(
                    "SELECT p.sku, p.name, p.description, p.category_id, p.price_minor, p.currency, p.status, \
                     p.created_at, COALESCE(i.on_hand, 0) AS on_hand FROM products p \
                     LEFT JOIN inventory i ON i.product_id = p.id WHERE 1 = 1",
                ),
                "p.created_at",
                "p.status",
            ),
            Kind::Customers => (
                SqlBuilder::new("SELECT email, name, external_ref, created_at FROM users WHERE role = 'customer'"),
                "created_at",
                "",
            ),
        };
        if let Some(from) = export.from {
            let p = b.arg(Arg::Text(db::ts(from)));
            b.push(&format!(" AND {time} >= {p}"));
        }
        if let Some(to) = export.to {
            let p = b.arg(Arg::Text(db::ts(to)));
            b.push(&format!(" AND {time} < {p}"));
        }
        if let Some(s) = &export.status
            && !status.is_empty()
        {
            let p = b.arg(Arg::Text(s.clone()));
            b.push(&format!(" AND {status} = {p}"));
        }
        b.push(match self.kind {
            Kind::Orders => " ORDER BY o.placed_at, o.number, l.line_no",
            Kind::Products => " ORDER BY p.sku",
            Kind::Customers => " ORDER BY email",
        });
        b
    }

    /// Encodes one row of [`Encoder::query`].
    pub fn row(&mut self, row: &AnyRow) -> Result<(), String> {
        let e = |e: sqlx::Error| e.to_string();
        match self.kind {
            Kind::Orders => {
                let r = OrderLineRow {
                    order_number: row.try_get("number").map_err(e)?,
                    customer_email: row.try_get("email").map_err(e)?,
                    placed_at: rfc3339(&row.try_get::<String, _>("placed_at").map_err(e)?)?,
                    status: row.try_get("status").map_err(e)?,
                    currency: row.try_get("currency").map_err(e)?,
                    sku: row.try_get("sku").map_err(e)?,
                    name: row.try_get("name").map_err(e)?,
                    unit_price_minor: row.try_get("unit_price_minor").map_err(e)?,
                    quantity: row.try_get("quantity").map_err(e)?,
                    discount_minor: row.try_get("discount_minor").map_err(e)?,
                };
                match self.format {
                    Format::Ndjson => self.json(&r),
                    Format::Csv => {
                        let exp = Currency::parse(&r.currency)?.exponent();
                        let (unit, qty, disc) = (
                            format_minor(r.unit_price_minor, exp),
                            r.quantity.to_string(),
                            format_minor(r.discount_minor, exp),
                        );
                        let rec =
                            [&r.order_number, &r.customer_email, &r.placed_at, &r.status, &r.currency, &r.sku, &r.name];
                        self.csv(rec.iter().map(|s| s.as_str()).chain([unit.as_str(), qty.as_str(), disc.as_str()]))
                    }
                }
            }
            Kind::Products => {
                let category: Option<String> = row.try_get("category_id").map_err(e)?;
                let r = ProductRow {
                    sku: row.try_get("sku").map_err(e)?,
                    name: row.try_get("name").map_err(e)?,
                    description: row.try_get("description").map_err(e)?,
                    category: category.and_then(|c| self.categories.get(&c).cloned()),
                    price_minor: row.try_get("price_minor").map_err(e)?,
                    currency: row.try_get("currency").map_err(e)?,
                    status: row.try_get("status").map_err(e)?,
                    on_hand: row.try_get("on_hand").map_err(e)?,
                    created_at: rfc3339(&row.try_get::<String, _>("created_at").map_err(e)?)?,
                };
                match self.format {
                    Format::Ndjson => self.json(&r),
                    Format::Csv => {
                        let price = format_minor(r.price_minor, Currency::parse(&r.currency)?.exponent());
                        let on_hand = r.on_hand.to_string();
                        let category = r.category.as_deref().unwrap_or("");
                        self.csv([&*r.sku, &r.name, &r.description, category, &price, &r.currency, &on_hand])
                    }
                }
            }
            Kind::Customers => {
                let r = CustomerRow {
                    email: row.try_get("email").map_err(e)?,
                    name: row.try_get("name").map_err(e)?,
                    external_ref: row.try_get("external_ref").map_err(e)?,
                    created_at: rfc3339(&row.try_get::<String, _>("created_at").map_err(e)?)?,
                };
                match self.format {
                    Format::Ndjson => self.json(&r),
                    Format::Csv => self.csv([&*r.email, &r.name, r.external_ref.as_deref().unwrap_or("")]),
                }
            }
        }
    }

    fn csv<'s>(&mut self, record: impl IntoIterator<Item = &'s str>) -> Result<(), String> {
        self.out.write_record(record).map_err(|e| e.to_string())
    }

    fn json(&mut self, value: &impl Serialize) -> Result<(), String> {
        serde_json::to_writer(&mut self.json, value).map_err(|e| e.to_string())?;
        self.json.push(b'\n');
        Ok(())
    }

    /// Bytes encoded and not yet taken (CSV records still in the writer's own buffer of
    /// 8 KiB are counted at the next flush).
    pub fn buffered(&self) -> usize {
        self.out.get_ref().len() + self.json.len()
    }

    /// The bytes encoded so far.
    pub fn take(&mut self) -> Result<Bytes, String> {
        if self.format == Format::Ndjson {
            return Ok(Bytes::from(std::mem::replace(&mut self.json, Vec::with_capacity(super::CHUNK_BYTES * 2))));
        }
        let full = std::mem::replace(&mut self.out, csv_writer());
        full.into_inner().map(Bytes::from).map_err(|e| e.to_string())
    }
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().from_writer(Vec::with_capacity(super::CHUNK_BYTES * 2))
}

/// A stored timestamp as RFC 3339 in UTC, with a fraction only when it has one.
fn rfc3339(stored: &str) -> Result<String, String> {
    let t = db::parse_ts(stored).map_err(|e| e.to_string())?;
    Ok(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Every category's path (`Furniture/Chairs`), by id.
async fn category_paths(db: &Db) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, parent_id, name FROM categories").fetch_all(db.pool()).await?;
    let mut nodes: HashMap<String, (Option<String>, String)> = HashMap::with_capacity(rows.len());
    for r in &rows {
        nodes.insert(r.try_get("id")?, (r.try_get("parent_id")?, r.try_get("name")?));
    }
    let mut paths = HashMap::with_capacity(nodes.len());
    for id in nodes.keys() {
        let mut parts = Vec::new();
        let mut at = Some(id.clone());
        // Bounded walk: a cycle (impossible through the API) cannot loop forever.
        while let Some(cur) = at.take()
            && parts.len() < 64
        {
            if let Some((parent, name)) = nodes.get(&cur) {
                parts.push(name.clone());
                at = parent.clone();
            }
        }
        parts.reverse();
        paths.insert(id.clone(), parts.join("/"));
    }
    Ok(paths)
}
