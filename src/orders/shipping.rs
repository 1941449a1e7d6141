//! What staff tell orderly when they ship ([`ShipRequest`]: [`Carrier`] and
//! [`TrackingNumber`]), and the [`OrderNumber`] support looks orders up by. Each type can
//! only hold a valid value and parses itself (also when deserialized).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest carrier name, tracking number and order number, in characters.
pub const MAX_LEN: usize = 64;

/// Who carries the parcel (`UPS`, `DHL Express`, `La Poste`…): 1 to 64 characters once
/// trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Carrier(String);

impl Carrier {
    /// `Err` with the message REST answers for `carrier`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if (1..=MAX_LEN).contains(&s.chars().count()) && !s.chars().any(char::is_control) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("must be 1 to {MAX_LEN} characters, without control characters"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A carrier's tracking number: 1 to 64 characters once trimmed, ASCII letters, digits,
/// spaces and `-` only (`1Z999AA10123456784`, `JD014600006281230921`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackingNumber(String);

impl TrackingNumber {
    /// `Err` with the message REST answers for `tracking_number`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == ' ';
        if (1..=MAX_LEN).contains(&s.len()) && s.chars().all(allowed) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("must be 1 to {MAX_LEN} letters, digits, spaces or dashes"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An order's human-facing number: `OL-…` as checkout assigns it, or the number an imported
/// order had (`CA-2016-152156`). 1 to 64 characters once trimmed: ASCII letters, digits and
/// `-`, `_`, `.`, `/`, `#`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderNumber(String);

impl OrderNumber {
    /// `Err` with the message REST answers for `number`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '#');
        if (1..=MAX_LEN).contains(&s.len()) && s.chars().all(allowed) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("must be an order number such as OL-0A1B2C3D4E5F (1 to {MAX_LEN} characters)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::parse_conversions!(String: Carrier, TrackingNumber, OrderNumber);

/// `POST /orders/{id}/ship`'s optional body. Both fields are optional; an empty body (or
/// none) ships without them. Stored on the order, shown to its customer, and carried by
/// `order.shipped`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    /// Who carries the parcel, 1 to 64 characters.
    #[schema(value_type = Option<String>, pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f](?:[^\u0000-\u001f\u007f-\u009f]{0,62}[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$", example = "UPS")]
    pub carrier: Option<Carrier>,
    /// The carrier's tracking number: 1 to 64 letters, digits, spaces or dashes.
    #[schema(value_type = Option<String>, pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9-](?:[A-Za-z0-9 -]{0,62}[A-Za-z0-9-])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$", example = "1Z999AA10123456784")]
    pub tracking_number: Option<TrackingNumber>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriers_are_trimmed_and_bounded() {
        assert_eq!(Carrier::parse("  DHL Express ").unwrap().as_str(), "DHL Express");
        assert!(Carrier::parse("   ").is_err());
        assert!(Carrier::parse(&"x".repeat(65)).is_err());
        assert!(Carrier::parse("UPS\n").is_ok(), "trailing newline is trimmed");
        assert!(Carrier::parse("U\u{0}PS").is_err());
    }

    #[test]
    fn tracking_numbers_hold_only_letters_digits_spaces_and_dashes() {
        assert_eq!(TrackingNumber::parse(" 1Z999AA10123456784 ").unwrap().as_str(), "1Z999AA10123456784");
        assert!(TrackingNumber::parse("JD01-4600 0062").is_ok());
        assert!(TrackingNumber::parse("<script>").is_err());
        assert!(TrackingNumber::parse("").is_err());
        assert!(TrackingNumber::parse(&"9".repeat(65)).is_err());
    }

    #[test]
    fn order_numbers_accept_ours_and_imported_ones() {
        assert!(OrderNumber::parse("OL-0A1B2C3D4E5F").is_ok());
        assert!(OrderNumber::parse("CA-2016-152156").is_ok());
        assert!(OrderNumber::parse("OL 1").is_err());
        assert!(OrderNumber::parse("").is_err());
        assert!(OrderNumber::parse("%").is_err());
    }

    #[test]
    fn a_ship_request_parses_itself_from_json() {
        let r: ShipRequest = serde_json::from_str(r#"{"carrier":"UPS","tracking_number":"1Z9"}"#).unwrap();
        assert_eq!(r.carrier.unwrap().as_str(), "UPS");
        let empty: ShipRequest = serde_json::from_str("{}").unwrap();
        assert!(empty.carrier.is_none() && empty.tracking_number.is_none());
        assert!(serde_json::from_str::<ShipRequest>(r#"{"tracking_number":"<>"}"#).is_err());
        assert!(serde_json::from_str::<ShipRequest>(r#"{"carrier":"UPS","x":1}"#).is_err());
    }
}
