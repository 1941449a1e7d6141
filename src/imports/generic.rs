//! The generic CSV formats for shops other than Superstore: `products.csv`,
//! `customers.csv`, `orders.csv` and `stock.csv` (documented with examples in docs/IMPORTS.md), each
//! parsed into records for the common loader.
//!
//! Every row is validated; a bad row is skipped and reported with its line number and
//! reason, and the good rows are imported. Only a file that cannot be read, or whose header
//! lacks a required column or has an unknown one, fails as a whole.

mod customers;
mod orders;
mod products;
mod stock;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::report::{ImportReport, RowError};
use crate::db::Db;

/// A CSV file read whole: its columns by name and its data rows with their line numbers.
pub(crate) struct Table {
    columns: HashMap<String, usize>,
    /// `(line, record)`; the header is line 1.
    rows: Vec<(u64, csv::StringRecord)>,
    /// Rows the CSV reader itself refused (wrong number of fields, invalid UTF-8).
    errors: Vec<RowError>,
}

impl Table {
    /// Opens and reads `path`; see [`Table::read`].
    pub(crate) fn open(path: &Path, required: &[&str], optional: &[&str]) -> anyhow::Result<Table> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Self::read(file, required, optional).with_context(|| format!("reading {}", path.display()))
    }

    /// Reads CSV with a header row. Header names are trimmed and case-insensitive; values
    /// are trimmed. Errors if a `required` column is missing, a column is neither required
    /// nor `optional` (likely a typo), or the input cannot be read.
    pub(crate) fn read(input: impl Read, required: &[&str], optional: &[&str]) -> anyhow::Result<Table> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
        let headers = reader.headers().context("cannot read the header row")?.clone();
        let columns = Self::columns(&headers, required, optional)?;
        let (mut rows, mut errors) = (Vec::new(), Vec::new());
        for record in reader.records() {
            match record {
                Ok(r) => rows.push((r.position().map_or(0, |p| p.line()), r)),
                Err(e) if e.is_io_error() => return Err(e.into()),
                Err(e) => errors.push(RowError::at(e.position().map(|p| p.line()), csv_reason(&e))),
            }
        }
        Ok(Table { columns, rows, errors })
    }

    /// A part of a file read elsewhere (a batch of a streamed upload).
    pub(crate) fn from_parts(
        columns: HashMap<String, usize>,
        rows: Vec<(u64, csv::StringRecord)>,
        errors: Vec<RowError>,
    ) -> Table {
        Table { columns, rows, errors }
    }

    /// Column name → index for a header row; errors as [`Table::read`] describes.
    pub(crate) fn columns(
        headers: &csv::StringRecord,
        required: &[&str],
        optional: &[&str],
    ) -> anyhow::Result<HashMap<String, usize>> {
        let mut columns = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            let name = h.to_ascii_lowercase();
            if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
                let expected: Vec<&str> = required.iter().chain(optional).copied().collect();
                anyhow::bail!("unknown column {h:?}; the columns are {}", expected.join(","));
            }
            if columns.insert(name, i).is_some() {
                anyhow::bail!("column {h:?} appears twice");
            }
        }
        if let Some(missing) = required.iter().find(|c| !columns.contains_key(**c)) {
            anyhow::bail!("no column {missing:?}; required columns are {}", required.join(","));
        }
        Ok(columns)
    }

    /// The value of `column` in `row`, or `""` when the file has no such column.
    pub(crate) fn get<'r>(&self, row: &'r csv::StringRecord, column: &str) -> &'r str {
        self.columns.get(column).and_then(|i| row.get(*i)).unwrap_or("")
    }

    /// Data rows in the file, good or bad.
    pub(crate) fn rows_read(&self) -> u64 {
        (self.rows.len() + self.errors.len()) as u64
    }
}

/// Imports the file at `path` in the generic format of `entity` (`products`, `customers`,
/// `orders`, `stock`) in one transaction: `orderly import <entity>`. Errors only if there is
/// no such format, the file cannot be read, its header is wrong, or the database fails;
/// bad rows are in the report.
pub async fn import_file(db: &Db, entity: &str, path: &Path) -> anyhow::Result<ImportReport> {
    let format = format(entity).with_context(|| format!("no generic format for {entity}"))?;
    let table = Table::open(path, format.required, format.optional)?;
    let (batch, errors) = (format.parse)(&table);
    let loaded = super::load::load(db, entity, batch).await?;
    let what = if entity == "stock" { "stock levels" } else { entity };
    Ok(ImportReport::new(format!("{what} from {}", path.display()), table.rows_read(), loaded, errors))
}

/// A generic format: its columns and its parser of a table (or a batch of one).
#[derive(Clone, Copy)]
pub(crate) struct Format {
    pub(crate) required: &'static [&'static str],
    pub(crate) optional: &'static [&'static str],
    pub(crate) parse: fn(&Table) -> (super::records::Batch, Vec<RowError>),
    /// Rows sharing this column's value belong together (an order's lines): a batch never
    /// splits them.
    pub(crate) group_by: Option<&'static str>,
}

/// The generic format of `entity` (`products`, `customers`, `orders`, `stock`).
pub(crate) fn format(entity: &str) -> Option<Format> {
    match entity {
        "products" => Some(products::FORMAT),
        "customers" => Some(customers::FORMAT),
        "orders" => Some(orders::FORMAT),
        "stock" => Some(stock::FORMAT),
        _ => None,
    }
}

pub(crate) fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_owned(),
        _ => e.to_string(),
    }
}

/// Collects the field errors of one row: `take` keeps a field's value or records why it is
/// invalid; `finish` turns the row into one [`RowError`] naming every bad field.
#[derive(Default)]
pub(crate) struct Fields {
    problems: Vec<(String, String)>,
}

impl Fields {
    pub(crate) fn take<T>(&mut self, column: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|e| self.problems.push((column.to_owned(), e))).ok()
    }

    pub(crate) fn invalid(&mut self, column: &str, problem: impl Into<String>) {
        self.problems.push((column.to_owned(), problem.into()));
    }

    pub(crate) fn error(self, line: u64) -> RowError {
        RowError::fields(Some(line), self.problems)
    }
}

/// A whole number >= 0 (`""` gives `default`).
pub(crate) fn non_negative(raw: &str, default: i64) -> Result<i64, String> {
    if raw.is_empty() {
        return Ok(default);
    }
    match raw.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(format!("{raw:?} is not a whole number >= 0")),
    }
}

/// RFC 3339 (`2016-11-08T14:30:00Z`, any offset) or a date (`2016-11-08`, midnight UTC).
pub(crate) fn timestamp(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN).and_utc()))
        .map_err(|_| format!("{raw:?} is neither RFC 3339 (2016-11-08T14:30:00Z) nor a date (2016-11-08)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_knows_its_columns_and_the_lines_of_its_rows() {
        let csv = "SKU, name\nA-1,Chair\n\"B-2\",\"Desk, oak\"\nC-3\n";
        let t = Table::read(csv.as_bytes(), &["sku", "name"], &["description"]).expect("csv");
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].0, 3);
        assert_eq!(t.get(&t.rows[1].1, "name"), "Desk, oak");
        assert_eq!(t.get(&t.rows[1].1, "description"), "");
        assert_eq!(t.errors, vec![RowError::at(Some(4), "has 1 fields, the header has 2")]);
        assert_eq!(t.rows_read(), 3);
    }

    #[test]
    fn headers_with_missing_or_unknown_columns_are_refused() {
        assert!(Table::read("sku\nA\n".as_bytes(), &["sku", "name"], &[]).is_err());
        assert!(Table::read("sku,name,pirce\n".as_bytes(), &["sku", "name"], &["price"]).is_err());
        assert!(Table::read("".as_bytes(), &["sku"], &[]).is_err());
    }

    #[test]
    fn timestamps_are_rfc_3339_or_dates() {
        assert_eq!(timestamp("2016-11-08").expect("timestamp").to_rfc3339(), "2016-11-08T00:00:00+00:00");
        assert_eq!(
            timestamp("2016-11-08T10:00:00+02:00").expect("timestamp").to_rfc3339(),
            "2016-11-08T08:00:00+00:00"
        );
        assert!(timestamp("08/11/2016").is_err());
        assert_eq!(non_negative("", 0), Ok(0));
        assert!(non_negative("-1", 0).is_err());
        assert!(non_negative("1.5", 0).is_err());
    }
}
