//! What an import did: per-entity counts of rows created and rows already present, and the
//! rows it rejected with their line numbers and reasons. Each report prints as a short
//! human summary (`Display`).

use std::fmt;

/// Records of one entity: how many were inserted now and how many existed already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub present: u64,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} created, {} already present", thousands(self.created), thousands(self.present))
    }
}

/// A row (or a whole order) that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the source file (the header is line 1), when known.
    pub line: Option<u64>,
    pub reason: String,
    /// The same reason per field, `(column, problem)`, when the row had bad fields (empty
    /// for a problem of the whole row): the rows of the downloadable error report.
    pub fields: Vec<(String, String)>,
}

impl RowError {
    pub fn at(line: Option<u64>, reason: impl Into<String>) -> Self {
        Self { line, reason: reason.into(), fields: Vec::new() }
    }

    /// A row with bad fields: `(column, problem)` each; the reason lists them all.
    pub fn fields(line: Option<u64>, fields: Vec<(String, String)>) -> Self {
        let reason = fields.iter().map(|(c, p)| format!("{c}: {p}")).collect::<Vec<_>>().join("; ");
        Self { line, reason, fields }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// What [`super::load::load`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub categories: Tally,
    pub products: Tally,
    pub customers: Tally,
    pub orders: Tally,
    /// Lines of the orders created in this run (lines of existing orders are never touched).
    pub order_lines_created: u64,
    /// Stock counts: levels changed (`created`) and levels already at the count (`present`).
    pub stock_levels: Tally,
    /// Existing products whose reads changed (their stock was counted): the caller drops
    /// them from the catalog cache after the commit.
    pub changed_products: Vec<uuid::Uuid>,
    /// Records the loader refused (unknown customer, broken invariant, duplicate key, …).
    pub rejected: Vec<RowError>,
}

impl LoadReport {
    /// Rows inserted (and stock levels changed), all entities together: 0 when a run
    /// changed nothing.
    pub fn created(&self) -> u64 {
        self.categories.created
            + self.products.created
            + self.customers.created
            + self.orders.created
            + self.order_lines_created
            + self.stock_levels.created
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = [
            ("categories", self.categories),
            ("products", self.products),
            ("customers", self.customers),
            ("orders", self.orders),
        ];
        for (name, tally) in rows {
            if tally != Tally::default() {
                write!(f, "\n  {name:<11} {tally}")?;
                if name == "orders" {
                    write!(f, " ({} lines created)", thousands(self.order_lines_created))?;
                }
            }
        }
        if self.stock_levels != Tally::default() {
            let (changed, same) = (thousands(self.stock_levels.created), thousands(self.stock_levels.present));
            write!(f, "\n  {:<11} {changed} changed, {same} already at the count", "stock")?;
        }
        Ok(())
    }
}

/// The outcome of a generic CSV import (`orderly import products|customers|orders|stock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// What was imported from where: `products from shop/products.csv`.
    pub source: String,
    /// Data rows in the file (the header not counted).
    pub rows_read: u64,
    pub loaded: LoadReport,
    /// Every rejected row, from parsing and from loading, by line.
    pub errors: Vec<RowError>,
}

/// At most this many errors are printed; the report keeps them all.
const ERRORS_SHOWN: usize = 50;

impl ImportReport {
    /// Combines parse errors with the loader's rejections, sorted by line.
    pub fn new(source: String, rows_read: u64, mut loaded: LoadReport, mut errors: Vec<RowError>) -> Self {
        errors.append(&mut loaded.rejected);
        errors.sort_by_key(|e| e.line.unwrap_or(u64::MAX));
        Self { source, rows_read, loaded, errors }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "imported {}: {} rows read", self.source, thousands(self.rows_read))?;
        write!(f, "{}", self.loaded)?;
        if self.errors.is_empty() {
            return write!(f, "\n  no rows rejected");
        }
        write!(f, "\n  {} rejected:", thousands(self.errors.len() as u64))?;
        for e in self.errors.iter().take(ERRORS_SHOWN) {
            write!(f, "\n    {e}")?;
        }
        if self.errors.len() > ERRORS_SHOWN {
            write!(f, "\n    … and {} more", self.errors.len() - ERRORS_SHOWN)?;
        }
        Ok(())
    }
}

/// `9994` → `9,994`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(9994), "9,994");
        assert_eq!(thousands(2_297_201), "2,297,201");
    }

    #[test]
    fn a_report_lists_rejected_rows_by_line() {
        let loaded = LoadReport {
            products: Tally { created: 2, present: 1 },
            rejected: vec![RowError::at(Some(9), "no such customer")],
            ..LoadReport::default()
        };
        let report =
            ImportReport::new("products from p.csv".into(), 4, loaded, vec![RowError::at(Some(3), "bad price")]);
        let text = report.to_string();
        assert!(text.contains("products    2 created, 1 already present"), "{text}");
        assert!(text.find("line 3: bad price") < text.find("line 9: no such customer"), "{text}");
        assert_eq!(report.loaded.created(), 2);
    }
}
