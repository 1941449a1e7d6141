//! `stock.csv`: `sku,on_hand`, one counted stock level a row (a stocktake, a supplier's
//! stock file). Each existing product's `on_hand` becomes the counted level; its reserved
//! units are untouched. An unknown SKU, or a count below what open orders hold reserved,
//! is rejected with its line. Importing the same file twice changes nothing the second time.

use super::{Fields, Table, non_negative};
use crate::catalog::Sku;
use crate::imports::records::{Batch, StockCountRecord};
use crate::imports::report::RowError;
use crate::inventory::InitialStock;

const REQUIRED: &[&str] = &["sku", "on_hand"];
/// The format as a streamed import reads it.
pub(crate) const FORMAT: super::Format = super::Format { required: REQUIRED, optional: &[], parse, group_by: None };

pub(crate) fn parse(table: &Table) -> (Batch, Vec<RowError>) {
    let mut batch = Batch::default();
    let mut errors = table.errors.clone();
    for (line, row) in &table.rows {
        let mut f = Fields::default();
        let sku = f.take("sku", Sku::parse(table.get(row, "sku")));
        let raw = table.get(row, "on_hand");
        let on_hand = if raw.is_empty() {
            f.invalid("on_hand", "is required: the counted units on hand");
            None
        } else {
            f.take("on_hand", non_negative(raw, 0).and_then(InitialStock::parse))
        };
        let (Some(sku), Some(on_hand)) = (sku, on_hand) else {
            errors.push(f.error(*line));
            continue;
        };
        batch.stock_counts.push(StockCountRecord { sku, on_hand, line: Some(*line) });
    }
    (batch, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_levels_become_records_and_bad_rows_name_their_fields() {
        let csv = "SKU,on_hand\nCH-1,12\nCH-2,0\nbad sku,-1\nCH-3,\nCH-4,1000000000001\n";
        let table = Table::read(csv.as_bytes(), REQUIRED, &[]).expect("csv");
        let (batch, errors) = parse(&table);
        let got: Vec<(&str, i64)> = batch.stock_counts.iter().map(|r| (r.sku.as_str(), r.on_hand.units())).collect();
        assert_eq!(got, vec![("CH-1", 12), ("CH-2", 0)]);
        let lines: Vec<Option<u64>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(4), Some(5), Some(6)]);
        assert!(errors[0].reason.contains("sku:") && errors[0].reason.contains("on_hand:"), "{}", errors[0].reason);
        assert!(errors[1].reason.contains("on_hand: is required"), "{}", errors[1].reason);
        assert!(errors[2].reason.contains("at most"), "{}", errors[2].reason);
    }

    #[test]
    fn a_stock_file_needs_both_columns() {
        assert!(Table::read("sku\nA-1\n".as_bytes(), REQUIRED, &[]).is_err());
        assert!(Table::read("sku,on_hand,price\n".as_bytes(), REQUIRED, &[]).is_err());
    }
}
