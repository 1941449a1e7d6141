//! Reading `superstore.csv`: one validated [`Line`] per row, amounts exact (see `price`).

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;

use super::price;
use crate::auth::parse_name;
use crate::catalog::Sku;
use crate::imports::records::ShippingAddress;
use crate::imports::report::RowError;
use crate::money::decimal_to_minor;

/// The columns used, by header name (their order in the file does not matter; `Profit` is
/// ignored).
const COLUMNS: [&str; 20] = [
    "Row ID",
    "Order ID",
    "Order Date",
    "Ship Date",
    "Ship Mode",
    "Customer ID",
    "Customer Name",
    "Segment",
    "Country",
    "City",
    "State",
    "Postal Code",
    "Region",
    "Product ID",
    "Category",
    "Sub-Category",
    "Product Name",
    "Sales",
    "Quantity",
    "Discount",
];

#[derive(Debug, Deserialize)]
struct Row {
    #[serde(rename = "Row ID")]
    row_id: String,
    #[serde(rename = "Order ID")]
    order_id: String,
    #[serde(rename = "Order Date")]
    order_date: String,
    #[serde(rename = "Ship Date")]
    ship_date: String,
    #[serde(rename = "Ship Mode")]
    ship_mode: String,
    #[serde(rename = "Customer ID")]
    customer_id: String,
    #[serde(rename = "Customer Name")]
    customer_name: String,
    #[serde(rename = "Segment")]
    segment: String,
    #[serde(rename = "Country")]
    country: String,
    #[serde(rename = "City")]
    city: String,
    #[serde(rename = "State")]
    state: String,
    #[serde(rename = "Postal Code")]
    postal_code: String,
    #[serde(rename = "Region")]
    region: String,
    #[serde(rename = "Product ID")]
    product_id: String,
    #[serde(rename = "Category")]
    category: String,
    #[serde(rename = "Sub-Category")]
    sub_category: String,
    #[serde(rename = "Product Name")]
    product_name: String,
    #[serde(rename = "Sales")]
    sales: String,
    #[serde(rename = "Quantity")]
    quantity: String,
    #[serde(rename = "Discount")]
    discount: String,
}

/// One order line of the file, validated.
#[derive(Debug, Clone)]
pub struct Line {
    /// Source line (the header is line 1).
    pub line: u64,
    pub row_id: u64,
    pub order_id: String,
    pub order_date: DateTime<Utc>,
    pub ship_date: DateTime<Utc>,
    pub ship_mode: String,
    pub customer_id: String,
    pub customer_name: String,
    pub segment: String,
    pub address: ShippingAddress,
    /// Whether `Postal Code` lost its leading zero in the file (`6824` for `06824`).
    pub postal_code_padded: bool,
    pub sku: Sku,
    pub category: String,
    pub sub_category: String,
    pub product_name: String,
    /// `Sales`, exactly, in ten-thousandths of a dollar.
    pub sales_e4: i64,
    pub quantity: i64,
    /// Unit list price in cents: Sales / (Quantity × (1 − Discount)), half up.
    pub unit_price_minor: i64,
    /// `Sales` in cents, half up.
    pub line_total_minor: i64,
    /// Whether `Sales` had non-zero digits past the cent.
    pub sub_cent: bool,
}

/// Every row of the file: `(rows read, valid lines, invalid rows)`. Errors (not row errors)
/// if the file cannot be read or lacks a column.
pub fn read(path: &Path) -> anyhow::Result<(u64, Vec<Line>, Vec<RowError>)> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_from(file).with_context(|| format!("reading {}", path.display()))
}

/// [`read`] over any reader (a file, an uploaded object being streamed).
pub fn read_from(input: impl std::io::Read) -> anyhow::Result<(u64, Vec<Line>, Vec<RowError>)> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().context("cannot read the header row")?.clone();
    let missing: Vec<&str> = COLUMNS.into_iter().filter(|c| !headers.iter().any(|h| h == *c)).collect();
    if !missing.is_empty() {
        anyhow::bail!("not a Superstore file: no column {}", missing.join(", "));
    }
    let (mut rows, mut lines, mut errors) = (0u64, Vec::new(), Vec::new());
    for record in reader.records() {
        rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) if e.is_io_error() => return Err(e.into()),
            Err(e) => {
                errors.push(RowError::at(e.position().map(|p| p.line()), e.to_string()));
                continue;
            }
        };
        let at = record.position().map_or(rows + 1, |p| p.line());
        let parsed = record.deserialize::<Row>(Some(&headers)).map_err(|e| e.to_string()).and_then(|r| parse(r, at));
        match parsed {
            Ok(line) => lines.push(line),
            Err(reason) => errors.push(RowError::at(Some(at), reason)),
        }
    }
    Ok((rows, lines, errors))
}

fn parse(r: Row, line: u64) -> Result<Line, String> {
    let field = |name: &str, value: String| -> Result<String, String> {
        if value.is_empty() { Err(format!("{name} is empty")) } else { Ok(value) }
    };
    let row_id: u64 = r.row_id.parse().map_err(|_| format!("Row ID {:?} is not a number", r.row_id))?;
    let quantity: i64 = r.quantity.parse().map_err(|_| format!("Quantity {:?} is not a whole number", r.quantity))?;
    let sales_e4 = price::ten_thousandths(&r.sales).map_err(|e| format!("Sales: {e}"))?;
    let discount_bp = price::ten_thousandths(&r.discount).map_err(|e| format!("Discount: {e}"))?;
    let unit_price_minor = price::unit_price_minor(sales_e4, quantity, discount_bp)
        .ok_or_else(|| format!("Quantity must be > 0 and Discount < 1 (got {quantity}, {})", r.discount))?;
    let line_total_minor = decimal_to_minor(&r.sales, 2).map_err(|e| format!("Sales: {e}"))?;
    let postal_code_padded = r.postal_code.len() < 5 && r.postal_code.bytes().all(|b| b.is_ascii_digit());
    let postal_code = if postal_code_padded { format!("{:0>5}", r.postal_code) } else { r.postal_code };
    Ok(Line {
        line,
        row_id,
        order_id: field("Order ID", r.order_id)?,
        order_date: date("Order Date", &r.order_date)?,
        ship_date: date("Ship Date", &r.ship_date)?,
        ship_mode: field("Ship Mode", r.ship_mode)?,
        customer_id: field("Customer ID", r.customer_id)?,
        customer_name: parse_name(&r.customer_name).map_err(|e| format!("Customer Name {e}"))?,
        segment: field("Segment", r.segment)?,
        address: ShippingAddress { city: r.city, state: r.state, postal_code, country: r.country, region: r.region },
        postal_code_padded,
        sku: Sku::parse(&r.product_id).map_err(|e| format!("Product ID {:?} {e}", r.product_id))?,
        category: field("Category", r.category)?,
        sub_category: field("Sub-Category", r.sub_category)?,
        product_name: parse_name(&r.product_name).map_err(|e| format!("Product Name {e}"))?,
        sales_e4,
        quantity,
        unit_price_minor,
        line_total_minor,
        sub_cent: price::is_sub_cent(&r.sales),
    })
}

/// `2016-11-08` → midnight UTC that day.
fn date(name: &str, raw: &str) -> Result<DateTime<Utc>, String> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{name} {raw:?} is not a date like 2016-11-08"))
}
