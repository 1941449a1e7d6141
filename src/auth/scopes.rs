//! What an API key may do: a fixed vocabulary of `resource:access` scopes (the OAuth 2.0
//! scope-token shape, RFC 6749 §3.3). Scopes only ever narrow the key owner's role; they
//! never grant what the role does not allow.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One permission an API key can carry. A `:write` scope includes its `:read` scope, as
/// changing a resource without seeing it is never useful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// Products, categories and inventory: read.
    #[serde(rename = "catalog:read")]
    CatalogRead,
    /// Products, categories and inventory: create, update, adjust stock (owner must be staff).
    #[serde(rename = "catalog:write")]
    CatalogWrite,
    /// Orders: list and read (a customer owner sees their own).
    #[serde(rename = "orders:read")]
    OrdersRead,
    /// Orders: checkout, pay, cancel, and the staff transitions (ship, deliver, refund).
    #[serde(rename = "orders:write")]
    OrdersWrite,
    /// The staff dashboard (owner must be staff).
    #[serde(rename = "dashboard:read")]
    DashboardRead,
}

impl Scope {
    pub const ALL: [Scope; 5] =
        [Scope::CatalogRead, Scope::CatalogWrite, Scope::OrdersRead, Scope::OrdersWrite, Scope::DashboardRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogRead => "catalog:read",
            Scope::CatalogWrite => "catalog:write",
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::DashboardRead => "dashboard:read",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::CatalogRead => 1,
            Scope::CatalogWrite => 1 << 1,
            Scope::OrdersRead => 1 << 2,
            Scope::OrdersWrite => 1 << 3,
            Scope::DashboardRead => 1 << 4,
        }
    }

    /// The bits of every scope that satisfies `self` (itself, and its `:write` for a `:read`).
    fn satisfied_by(self) -> u8 {
        match self {
            Scope::CatalogRead => Scope::CatalogRead.bit() | Scope::CatalogWrite.bit(),
            Scope::OrdersRead => Scope::OrdersRead.bit() | Scope::OrdersWrite.bit(),
            other => other.bit(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}; expected one of catalog:read, catalog:write, orders:read, orders:write, dashboard:read"))
    }
}

/// A set of scopes, as a bit set so that `AuthUser` stays `Copy`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether a caller holding these scopes may do what `scope` guards.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & scope.satisfied_by() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the order of [`Scope::ALL`].
    pub fn to_vec(self) -> Vec<Scope> {
        Scope::ALL.into_iter().filter(|s| self.0 & s.bit() != 0).collect()
    }

    /// The stored form: space-separated, e.g. `catalog:read orders:write`.
    pub fn to_db(self) -> String {
        self.to_vec().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// Reads the stored form. Unknown words (from a newer version) are dropped, which can
    /// only take permissions away.
    pub fn from_db(s: &str) -> Self {
        s.split_whitespace().filter_map(|w| w.parse::<Scope>().ok()).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({})", self.to_db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_scopes_include_their_read_scope_and_nothing_else() {
        let s: Scopes = [Scope::CatalogWrite].into_iter().collect();
        assert!(s.allows(Scope::CatalogRead) && s.allows(Scope::CatalogWrite));
        assert!(!s.allows(Scope::OrdersRead) && !s.allows(Scope::DashboardRead));
        let r: Scopes = [Scope::CatalogRead].into_iter().collect();
        assert!(!r.allows(Scope::CatalogWrite));
    }

    #[test]
    fn the_stored_form_round_trips_and_drops_unknown_words() {
        let s: Scopes = [Scope::OrdersWrite, Scope::CatalogRead].into_iter().collect();
        assert_eq!(s.to_db(), "catalog:read orders:write");
        assert_eq!(Scopes::from_db("catalog:read orders:write"), s);
        assert_eq!(Scopes::from_db("catalog:read admin:everything"), [Scope::CatalogRead].into_iter().collect());
        assert!("orders:delete".parse::<Scope>().is_err());
    }
}
