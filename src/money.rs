//! Money: integer minor units with an ISO 4217 currency. Never floats.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// ISO 4217 codes accepted, with their minor-unit exponents (ISO 4217 "Minor unit").
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// The largest price of one unit, in minor units: 10^12 (ten billion dollars in cents).
///
/// Chosen so that order arithmetic cannot overflow `i64` whatever the cart holds: a line is
/// at most `MAX_PRICE_MINOR × 1,000` (the largest quantity of one SKU) = 10^15, and an order
/// of at most 100 lines totals at most 10^17, under `i64::MAX` ≈ 9.2 × 10^18 with a factor
/// of 92 to spare for shipping, taxes or sums over several orders. Totals are still computed
/// with checked arithmetic; the bound is what makes the checks never fire for valid input.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;

// Proven at compile time: 100 lines of 1,000 units at the largest price, 50 times over.
const _: () = assert!(MAX_PRICE_MINOR.checked_mul(1_000 * 100 * 50).is_some());

/// A unit price in minor units of some currency (cents for USD), `0..=MAX_PRICE_MINOR`.
///
/// Only [`Price::parse`] (or deserializing, which calls it) makes one. JSON shape: a plain
/// integer, e.g. `1299` for 12.99 USD. Errors: `"must not be negative"`, `"must be at most
/// 1000000000000"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Price(i64);

impl Price {
    /// `minor` if it lies in `0..=MAX_PRICE_MINOR`.
    pub fn parse(minor: i64) -> Result<Self, String> {
        if minor < 0 {
            Err("must not be negative".into())
        } else if minor > MAX_PRICE_MINOR {
            Err(format!("must be at most {MAX_PRICE_MINOR}"))
        } else {
            Ok(Self(minor))
        }
    }

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.0
    }
}

crate::parse_conversions!(i64: Price);

/// A supported ISO 4217 currency code, upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code = raw.trim().to_ascii_uppercase();
        if CURRENCIES.iter().any(|(c, _)| *c == code) {
            Ok(Self(code))
        } else {
            Err(format!("{raw:?} is not a supported ISO 4217 currency code"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point in this currency (2 for USD, 0 for JPY).
    pub fn exponent(&self) -> u32 {
        CURRENCIES.iter().find(|(c, _)| *c == self.0).map(|(_, e)| *e).unwrap_or(2)
    }

    /// Parses a decimal amount in major units (`"12.99"`) into minor units, rounding half
    /// away from zero past the currency's exponent. Rejects negatives and non-numbers.
    pub fn parse_amount(&self, raw: &str) -> Result<i64, String> {
        decimal_to_minor(raw.trim(), self.exponent())
    }
}

/// The JSON Schema of a currency code as a request sends it: one of the supported codes
/// (the list [`Currency::parse`] accepts; it also takes lower case and surrounding spaces).
pub fn currency_schema() -> utoipa::openapi::Object {
    currency_schema_of(utoipa::openapi::schema::Type::String.into(), None)
}

/// [`currency_schema`] or `null` (an optional currency in a patch).
pub fn optional_currency_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    currency_schema_of(SchemaType::from_iter([Type::String, Type::Null]), Some(serde_json::Value::Null))
}

fn currency_schema_of(
    schema_type: utoipa::openapi::schema::SchemaType,
    extra: Option<serde_json::Value>,
) -> utoipa::openapi::Object {
    let codes = CURRENCIES.iter().map(|(c, _)| serde_json::Value::from(*c)).chain(extra);
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(schema_type)
        .enum_values(Some(codes))
        .description(Some("ISO 4217 code of a supported currency."))
        .build()
}

crate::parse_conversions!(String: Currency);

/// `"22.368"` with exponent 2 → 2237 (half up). Exact: decimal digits, no float arithmetic.
pub fn decimal_to_minor(raw: &str, exponent: u32) -> Result<i64, String> {
    let bad = || format!("{raw:?} is not a non-negative decimal amount");
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 15
    {
        return Err(bad());
    }
    let exp = exponent as usize;
    let mut digits: i64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    let frac_bytes = frac.as_bytes();
    for i in 0..exp {
        let d = frac_bytes.get(i).map(|b| i64::from(b - b'0')).unwrap_or(0);
        digits = digits.checked_mul(10).and_then(|v| v.checked_add(d)).ok_or_else(bad)?;
    }
    if frac_bytes.get(exp).is_some_and(|b| *b >= b'5') {
        digits += 1;
    }
    Ok(digits)
}

/// Minor units as a decimal string in major units: 2237 → `"22.37"`.
pub fn format_minor(amount: i64, exponent: u32) -> String {
    if exponent == 0 {
        return amount.to_string();
    }
    let scale = 10i64.pow(exponent);
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    let s = scale.unsigned_abs();
    format!("{sign}{}.{:0width$}", a / s, a % s, width = exponent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_minor_units_exactly_with_half_up_rounding() {
        assert_eq!(decimal_to_minor("261.96", 2), Ok(26196));
        assert_eq!(decimal_to_minor("22.368", 2), Ok(2237));
        assert_eq!(decimal_to_minor("22.364", 2), Ok(2236));
        assert_eq!(decimal_to_minor("3", 2), Ok(300));
        assert_eq!(decimal_to_minor(".5", 2), Ok(50));
        assert_eq!(decimal_to_minor("0.005", 2), Ok(1));
        assert_eq!(decimal_to_minor("1200", 0), Ok(1200));
        for bad in ["", ".", "-1", "1e3", "12,5", "abc", "1.2.3"] {
            assert!(decimal_to_minor(bad, 2).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prices_are_bounded_so_order_totals_fit_in_i64() {
        assert_eq!(Price::parse(0).map(Price::minor), Ok(0));
        assert_eq!(Price::parse(MAX_PRICE_MINOR).map(Price::minor), Ok(MAX_PRICE_MINOR));
        assert_eq!(Price::parse(-1), Err("must not be negative".to_string()));
        assert_eq!(Price::parse(i64::MIN), Err("must not be negative".to_string()));
        assert_eq!(Price::parse(MAX_PRICE_MINOR + 1), Err("must be at most 1000000000000".to_string()));
        assert!(Price::parse(i64::MAX).is_err());
    }

    #[test]
    fn prices_deserialize_only_through_parse() {
        assert_eq!(serde_json::from_str::<Price>("1299").map(Price::minor).ok(), Some(1299));
        assert!(serde_json::from_str::<Price>("-1").is_err());
        assert!(serde_json::from_str::<Price>("1000000000001").is_err());
        assert_eq!(serde_json::to_string(&Price::parse(5).unwrap()).unwrap(), "5");
    }

    #[test]
    fn currencies_are_iso_4217_with_their_exponents() {
        assert_eq!(Currency::parse("usd").unwrap().as_str(), "USD");
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert!(Currency::parse("XXX").is_err());
        assert_eq!(format_minor(2237, 2), "22.37");
        assert_eq!(format_minor(-5, 2), "-0.05");
    }
}
