//! The catalog: categories (a tree) and products with a unique SKU, a price in integer minor
//! units and a status. Stock lives in `inventory`.
//!
//! Every service function here takes the caller's [`Principal`](crate::auth::Principal) and
//! decides itself: reads are public (an API key needs `catalog:read`; archived products are
//! visible to staff only), writes need staff with `catalog:write`. Input arrives raw and is
//! parsed by the types below, so every transport gets the same validation errors.

pub mod categories;
pub mod products;
pub mod reads;
pub mod stock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cache::CatalogCache;
use crate::config::CatalogConfig;
use crate::db::Db;

/// The catalog service's dependencies: the database, the read cache (reads go through it,
/// writes invalidate it after their commit), and the write rules. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pub db: Db,
    pub cache: CatalogCache,
    /// `catalog.require_if_match`: a product update without `If-Match` is refused (428).
    pub require_if_match: bool,
}

impl Catalog {
    pub fn new(db: Db, cache: CatalogCache, config: &CatalogConfig) -> Self {
        Self { db, cache, require_if_match: config.require_if_match }
    }
}

/// A stock-keeping unit: 1 to 64 characters of `A–Z a–z 0–9 - _ .`, case preserved,
/// surrounding whitespace trimmed. JSON shape: a string (`"FUR-BO-10001798"`); deserializing
/// goes through [`Sku::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// Errors: `"must be 1 to 64 characters"`, `"may contain only letters, digits, '-', '_'
    /// and '.'"`.
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

crate::parse_conversions!(String: Sku);

/// The display name of a product or category: trimmed, 1 to 200 characters. JSON shape: a
/// string; deserializing goes through [`Name::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// The same rule as every name in orderly ([`crate::auth::parse_name`]). Errors: `"must
    /// not be empty"`, `"must be at most 200 characters"`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        crate::auth::parse_name(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::parse_conversions!(String: Name);

/// A product description: free text of at most [`Description::MAX_CHARS`] characters
/// (Unicode scalar values), kept as given (empty allowed). JSON shape: a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 10_000;

    /// Error: `"must be at most 10000 characters"`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() <= Self::MAX_CHARS {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("must be at most {} characters", Self::MAX_CHARS))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::parse_conversions!(String: Description);

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
    fn skus_deserialize_only_through_parse() {
        assert_eq!(serde_json::from_str::<Sku>("\" A-1 \"").unwrap().as_str(), "A-1");
        assert!(serde_json::from_str::<Sku>("\"has space\"").is_err());
        assert_eq!(serde_json::to_string(&Sku::parse("A-1").unwrap()).unwrap(), "\"A-1\"");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Desk ").unwrap().as_str(), "Desk");
        assert_eq!(Name::parse("   "), Err("must not be empty".to_string()));
        assert_eq!(Name::parse(&"é".repeat(200)).map(|n| n.as_str().chars().count()), Ok(200));
        assert_eq!(Name::parse(&"é".repeat(201)), Err("must be at most 200 characters".to_string()));
        assert!(serde_json::from_str::<Name>("\"\"").is_err());
    }

    #[test]
    fn descriptions_count_characters_not_bytes() {
        assert_eq!(Description::parse("").unwrap().as_str(), "");
        assert!(Description::parse(&"é".repeat(10_000)).is_ok());
        assert_eq!(Description::parse(&"a".repeat(10_001)), Err("must be at most 10000 characters".to_string()));
        assert!(serde_json::from_str::<Description>(&format!("\"{}\"", "a".repeat(10_001))).is_err());
    }

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("Office Supplies"), "office-supplies");
        assert_eq!(slugify("Furniture / Chairs & Mats"), "furniture-chairs-mats");
    }
}
