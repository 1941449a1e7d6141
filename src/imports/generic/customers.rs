//! `customers.csv`: `email,name,external_ref`, one customer a row; `external_ref` (the
//! customer's id in the system the file comes from) may be empty or left out. Customers are
//! created without a password: they cannot log in until an admin issues a reset token.

use chrono::Utc;

use super::{Fields, Table};
use crate::auth::{Email, parse_name};
use crate::imports::records::{Batch, CustomerRecord};
use crate::imports::report::RowError;

const REQUIRED: &[&str] = &["email", "name"];
const OPTIONAL: &[&str] = &["external_ref"];
/// The format as a streamed import reads it.
pub(crate) const FORMAT: super::Format =
    super::Format { required: REQUIRED, optional: OPTIONAL, parse, group_by: None };

pub(crate) fn parse(table: &Table) -> (Batch, Vec<RowError>) {
    let mut batch = Batch::default();
    let mut errors = table.errors.clone();
    let now = Utc::now();
    for (line, row) in &table.rows {
        let mut f = Fields::default();
        let email = f.take("email", Email::parse(table.get(row, "email")));
        let name = f.take("name", parse_name(table.get(row, "name")));
        let external_ref = f.take("external_ref", external_ref(table.get(row, "external_ref")));
        let (Some(email), Some(name), Some(external_ref)) = (email, name, external_ref) else {
            errors.push(f.error(*line));
            continue;
        };
        batch.customers.push(CustomerRecord {
            email,
            name,
            external_ref,
            segment: None,
            created_at: now,
            line: Some(*line),
        });
    }
    (batch, errors)
}

/// Empty → none; else 1 to 64 visible characters.
fn external_ref(raw: &str) -> Result<Option<String>, String> {
    if raw.is_empty() {
        Ok(None)
    } else if raw.chars().count() > 64 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must be at most 64 characters without spaces".into())
    } else {
        Ok(Some(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_are_parsed_and_bad_rows_reported() {
        let csv = "email,name,external_ref\nAnn@Example.com,Ann Lee,C-1\nbob@example.com,Bob,\nnot-an-email,,x y\n";
        let table = Table::read(csv.as_bytes(), REQUIRED, OPTIONAL).expect("csv");
        let (batch, errors) = parse(&table);
        assert_eq!(batch.customers.len(), 2);
        assert_eq!(batch.customers[0].email.as_str(), "ann@example.com");
        assert_eq!(batch.customers[0].external_ref.as_deref(), Some("C-1"));
        assert_eq!(batch.customers[1].external_ref, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, Some(4));
        for field in ["email:", "name:", "external_ref:"] {
            assert!(errors[0].reason.contains(field), "{}", errors[0].reason);
        }
    }
}
