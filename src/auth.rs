//! Customers and staff: identities, roles, passwords, tokens, API keys, and the
//! transport-free [`Principal`] every service function takes.

pub mod accounts;
pub mod api_keys;
pub mod credentials;
pub mod password;
pub mod principal;
pub mod resolve;
pub mod scopes;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use self::principal::{Actor, Principal};

/// What a user may do. `customer`: own orders; `staff`: catalog, inventory, all orders,
/// dashboard; `admin`: everything staff may, plus users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Staff,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "customer" => Ok(Role::Customer),
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?}; expected customer, staff or admin")),
        }
    }
}

/// An email address, trimmed and lower-cased. Accepts `local@domain.tld` with no spaces,
/// at most 254 characters (RFC 5321 §4.5.3.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid { Ok(Self(s)) } else { Err("must be an email address like name@example.com".into()) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters (NIST SP 800-63B §5.1.1.2; the upper bound keeps
/// hashing cost bounded).
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let n = raw.chars().count();
        if n < 8 {
            Err("must be at least 8 characters".into())
        } else if n > 128 {
            Err("must be at most 128 characters".into())
        } else {
            Ok(Self(raw.to_owned()))
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A display name: 1 to 200 characters after trimming.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    match s.chars().count() {
        0 => Err("must not be empty".into()),
        n if n > 200 => Err("must be at most 200 characters".into()),
        _ => Ok(s.to_owned()),
    }
}

/// The JSON Schema of a display name as [`parse_name`] takes it: not blank, at most 200
/// characters once surrounding whitespace (Unicode `White_Space`, what `str::trim` removes)
/// is trimmed. One pattern, so the contract is exact even for padded names.
pub fn name_schema() -> utoipa::openapi::Object {
    name_schema_of(utoipa::openapi::Type::String.into())
}

/// [`name_schema`] or `null` (an optional name in a patch).
pub fn optional_name_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    name_schema_of(SchemaType::from_iter([Type::String, Type::Null]))
}

fn name_schema_of(schema_type: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::Object {
    // `\S` differs between regex dialects (ECMA-262 counts U+FEFF as space, Python counts
    // U+001C..U+001F): the class names `White_Space` itself.
    const NAME_PATTERN: &str = concat!(
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
        r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
        r"(?:[\s\S]{0,198}[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?",
        r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    );
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(schema_type)
        .pattern(Some(NAME_PATTERN))
        .description(Some("1 to 200 characters, not counting surrounding whitespace (trimmed)."))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_have_bounds_and_never_print() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Admin > Role::Staff && Role::Staff > Role::Customer);
        assert!("root".parse::<Role>().is_err());
    }
}
