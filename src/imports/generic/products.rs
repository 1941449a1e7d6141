//! `products.csv`: `sku,name,description,category,price,currency,on_hand`, one product a
//! row. `category` is a path (`Furniture/Chairs`) whose categories are created as needed;
//! `price` is a decimal in major units of `currency`; `description`, `category` and
//! `on_hand` (default 0) may be empty or left out.

use super::{Fields, Table, non_negative};
use crate::auth::parse_name;
use crate::catalog::Sku;
use crate::imports::records::{Batch, CategoryRecord, ProductRecord};
use crate::imports::report::RowError;
use crate::money::Currency;

const REQUIRED: &[&str] = &["sku", "name", "price", "currency"];
const OPTIONAL: &[&str] = &["description", "category", "on_hand"];
/// The format as a streamed import reads it.
pub(crate) const FORMAT: super::Format =
    super::Format { required: REQUIRED, optional: OPTIONAL, parse, group_by: None };
/// `inventory.low` threshold for imported products, as for products created by the API.
const LOW_STOCK_THRESHOLD: i64 = 10;

pub(crate) fn parse(table: &Table) -> (Batch, Vec<RowError>) {
    let mut batch = Batch::default();
    let mut errors = table.errors.clone();
    for (line, row) in &table.rows {
        let mut f = Fields::default();
        let sku = f.take("sku", Sku::parse(table.get(row, "sku")));
        let name = f.take("name", parse_name(table.get(row, "name")));
        let currency = f.take("currency", Currency::parse(table.get(row, "currency")));
        let price = currency.as_ref().and_then(|c| f.take("price", c.parse_amount(table.get(row, "price"))));
        let on_hand = f.take("on_hand", non_negative(table.get(row, "on_hand"), 0));
        let path = f.take("category", category_path(table.get(row, "category")));
        let (Some(sku), Some(name), Some(currency), Some(price_minor), Some(on_hand), Some(path)) =
            (sku, name, currency, price, on_hand, path)
        else {
            errors.push(f.error(*line));
            continue;
        };
        batch.products.push(ProductRecord {
            sku,
            name,
            description: table.get(row, "description").to_owned(),
            price_minor,
            currency,
            category_slug: path.last().map(|c| c.slug.clone()),
            on_hand,
            low_stock_threshold: LOW_STOCK_THRESHOLD,
            line: Some(*line),
        });
        batch.categories.extend(path);
    }
    (batch, errors)
}

/// `Furniture/Chairs` → the categories `furniture` and `furniture-chairs`; `""` → none.
fn category_path(raw: &str) -> Result<Vec<CategoryRecord>, String> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = raw.split('/').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(format!("{raw:?} has an empty level; write paths like Furniture/Chairs"));
    }
    CategoryRecord::path(&names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_become_products_and_bad_rows_are_reported_with_every_reason() {
        let csv = "sku,name,description,category,price,currency,on_hand\n\
                   CH-1,Oak chair,Solid oak,Furniture/Chairs,129.90,usd,12\n\
                   bad sku,,x,Furniture,12.x,USD,-1\n\
                   YEN-1,Teacup,,Kitchen,1200,JPY,\n\
                   CH-2,Stool,,Furniture//Stools,10,XXX,1\n";
        let table = Table::read(csv.as_bytes(), REQUIRED, OPTIONAL).expect("csv");
        let (batch, errors) = parse(&table);
        assert_eq!(batch.products.len(), 2);
        let chair = &batch.products[0];
        assert_eq!((chair.price_minor, chair.currency.as_str(), chair.on_hand), (12990, "USD", 12));
        assert_eq!(chair.category_slug.as_deref(), Some("furniture-chairs"));
        assert_eq!((batch.products[1].price_minor, batch.products[1].on_hand), (1200, 0));
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, Some(3));
        for field in ["sku:", "name:", "price:", "on_hand:"] {
            assert!(errors[0].reason.contains(field), "{}", errors[0].reason);
        }
        assert_eq!(errors[1].line, Some(5));
        assert!(
            errors[1].reason.contains("currency:") && errors[1].reason.contains("category:"),
            "{}",
            errors[1].reason
        );
    }
}
