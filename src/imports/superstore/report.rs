//! What a Superstore import did, and what it had to decide about the file's quirks.

use std::fmt;

use crate::imports::report::{LoadReport, thousands};
use crate::money::format_minor;

/// The outcome of [`super::import_file`]. The facts about the file (merged SKUs, duplicate
/// lines, rounding) are the same on every run; `loaded` says what this run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperstoreReport {
    pub file: String,
    /// Data rows (the header not counted).
    pub rows_read: u64,
    pub loaded: LoadReport,
    /// Product IDs seen with more than one name or unit list price, sorted; each keeps the
    /// name and price of its most recent line (latest Order Date, then highest Row ID).
    pub merged_skus: Vec<String>,
    /// `(Order ID, Product ID)` pairs on more than one row, sorted; kept as separate lines.
    pub duplicate_lines: Vec<(String, String)>,
    /// Rows whose `Sales` had non-zero digits past the cent (rounded half up).
    pub sub_cent_lines: u64,
    /// Σ Sales exactly, in ten-thousandths of a dollar.
    pub exact_sales_e4: i64,
    /// Σ line totals as imported, in cents.
    pub line_totals_minor: i64,
    /// Rows whose 4-digit `Postal Code` lost its leading zero and was padded back to 5.
    pub postal_codes_padded: u64,
}

impl SuperstoreReport {
    /// Σ line totals − exact Σ Sales, in ten-thousandths of a dollar: what rounding each
    /// line to cents added up to.
    pub fn rounding_residual_e4(&self) -> i64 {
        self.line_totals_minor.saturating_mul(100).saturating_sub(self.exact_sales_e4)
    }
}

/// Amount with thousands separators: `(22972008603, 4)` → `2,297,200.8603`.
fn amount(value: i64, exponent: u32) -> String {
    let plain = format_minor(value, exponent);
    let (sign, digits) = plain.strip_prefix('-').map_or(("", plain.as_str()), |d| ("-", d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let grouped = int.parse::<u64>().map(thousands).unwrap_or_else(|_| int.to_owned());
    if frac.is_empty() { format!("{sign}{grouped}") } else { format!("{sign}{grouped}.{frac}") }
}

impl fmt::Display for SuperstoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "imported Superstore from {}: {} rows read", self.file, thousands(self.rows_read))?;
        write!(f, "{}", self.loaded)?;
        for e in &self.loaded.rejected {
            write!(f, "\n  rejected: {e}")?;
        }
        write!(
            f,
            "\n  {} Product IDs had two names or prices; each keeps its most recent line's:",
            self.merged_skus.len()
        )?;
        for chunk in self.merged_skus.chunks(6) {
            write!(f, "\n    {}", chunk.join(" "))?;
        }
        write!(
            f,
            "\n  {} (Order ID, Product ID) pairs occur on two rows; kept as separate lines:",
            self.duplicate_lines.len()
        )?;
        for chunk in self.duplicate_lines.chunks(3) {
            let pairs: Vec<String> = chunk.iter().map(|(o, p)| format!("{o} {p}")).collect();
            write!(f, "\n    {}", pairs.join(", "))?;
        }
        let residual = self.rounding_residual_e4();
        write!(
            f,
            "\n  {} Sales amounts had sub-cent digits, rounded half up: Σ line totals {} USD \
             vs. exact Σ Sales {} ({}{})",
            thousands(self.sub_cent_lines),
            amount(self.line_totals_minor, 2),
            amount(self.exact_sales_e4, 4),
            if residual >= 0 { "+" } else { "" },
            amount(residual, 4),
        )?;
        if self.postal_codes_padded > 0 {
            write!(
                f,
                "\n  {} rows had a 4-digit Postal Code (leading zero lost); padded to 5 digits",
                thousands(self.postal_codes_padded)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rounding_residual_is_shown_exactly() {
        let report = SuperstoreReport {
            sub_cent_lines: 4001,
            exact_sales_e4: 22_972_008_603,
            line_totals_minor: 229_720_107,
            ..SuperstoreReport::default()
        };
        assert_eq!(report.rounding_residual_e4(), 2097);
        let text = report.to_string();
        assert!(text.contains("Σ line totals 2,297,201.07 USD vs. exact Σ Sales 2,297,200.8603 (+0.2097)"), "{text}");
        assert_eq!(amount(-2097, 4), "-0.2097");
    }
}
