//! The catalog: categories (a tree) and products with a unique SKU, a price in integer minor
//! units and a status. Stock lives in `inventory`.

pub mod categories;
pub mod products;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stock-keeping unit: 1 to 64 characters of `A–Z a–z 0–9 - _ .`, case preserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err("may contain only letters, digits, '-', '_' and '.'".into());
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a product can be sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Active,
    Archived,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Active => "active",
            ProductStatus::Archived => "archived",
        }
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "archived" => Ok(Self::Archived),
            _ => Err(format!("unknown status {s:?}; expected active or archived")),
        }
    }
}

/// A URL-safe slug of a name: `"Office Supplies"` → `office-supplies`.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_checked() {
        assert_eq!(Sku::parse(" FUR-BO-10001798 ").unwrap().as_str(), "FUR-BO-10001798");
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse(&"A".repeat(65)).is_err());
    }

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Office Supplies"), "office-supplies");
        assert_eq!(slugify("Furniture / Chairs & Mats"), "furniture-chairs-mats");
    }
}
