//! Units of stock as domain types that parse themselves: a bounded delta ([`StockDelta`])
//! and a bounded level ([`InitialStock`]), and the bounds that keep every stock sum within
//! `i64` on both backends.

use serde::{Deserialize, Serialize};

/// The most units of one product that can be on hand: 10^12. Far above any real stock, and
/// far enough below `i64::MAX` (≈ 9.2 × 10^18) that `on_hand + delta` can never overflow.
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// The largest size of one stock adjustment, in units: 10^9.
pub const MAX_DELTA: i64 = 1_000_000_000;

// Proven at compile time: the largest value an adjustment can compute, on hand at the bound
// plus the largest delta, fits in i64 (and so does the bound minus the largest delta).
const _: () = assert!(MAX_STOCK.checked_add(MAX_DELTA).is_some() && MAX_STOCK - MAX_DELTA > 0);

/// A relative stock change in units: non-zero, at most [`MAX_DELTA`] in size, negative to
/// remove. JSON shape: a plain integer. Error: `"must be non-zero and at most 1e9 in size"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct StockDelta(i64);

impl StockDelta {
    pub fn parse(units: i64) -> Result<Self, String> {
        // `unsigned_abs`: `i64::MIN.abs()` would overflow.
        if units == 0 || units.unsigned_abs() > MAX_DELTA.unsigned_abs() {
            Err("must be non-zero and at most 1e9 in size".into())
        } else {
            Ok(Self(units))
        }
    }

    /// The change in units.
    pub fn units(self) -> i64 {
        self.0
    }
}

/// The JSON Schema of a stock delta: a non-zero integer from −[`MAX_DELTA`] to [`MAX_DELTA`].
pub fn stock_delta_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::ObjectBuilder;
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
    let range = |lo: i64, hi: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(lo))
            .maximum(Some(hi))
    };
    utoipa::openapi::OneOfBuilder::new()
        .item(range(-MAX_DELTA, -1))
        .item(range(1, MAX_DELTA))
        .description(Some("Units to add to on-hand stock; negative to remove. Non-zero, at most 10^9 in size."))
        .build()
        .into()
}

crate::parse_conversions!(i64: StockDelta);

/// Units on hand for a new product, or a counted stock level (`count`): `0..=MAX_STOCK`. JSON shape: a plain integer. Errors:
/// `"must not be negative"`, `"must be at most 1000000000000"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct InitialStock(i64);

impl InitialStock {
    pub fn parse(units: i64) -> Result<Self, String> {
        if units < 0 {
            Err("must not be negative".into())
        } else if units > MAX_STOCK {
            Err(format!("must be at most {MAX_STOCK}"))
        } else {
            Ok(Self(units))
        }
    }

    /// The stock in units.
    pub fn units(self) -> i64 {
        self.0
    }
}

crate::parse_conversions!(i64: InitialStock);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_non_zero_and_at_most_a_billion_in_size() {
        assert_eq!(StockDelta::parse(MAX_DELTA).map(StockDelta::units), Ok(MAX_DELTA));
        assert_eq!(StockDelta::parse(-MAX_DELTA).map(StockDelta::units), Ok(-MAX_DELTA));
        for bad in [0, MAX_DELTA + 1, -MAX_DELTA - 1, i64::MIN, i64::MAX] {
            assert_eq!(StockDelta::parse(bad), Err("must be non-zero and at most 1e9 in size".to_string()), "{bad}");
        }
        assert!(serde_json::from_str::<StockDelta>("0").is_err());
        assert_eq!(serde_json::from_str::<StockDelta>("-4").map(StockDelta::units).ok(), Some(-4));
    }

    #[test]
    fn initial_stock_lies_between_zero_and_the_stock_bound() {
        assert_eq!(InitialStock::parse(0).map(InitialStock::units), Ok(0));
        assert_eq!(InitialStock::parse(MAX_STOCK).map(InitialStock::units), Ok(MAX_STOCK));
        assert_eq!(InitialStock::parse(-1), Err("must not be negative".to_string()));
        assert_eq!(InitialStock::parse(MAX_STOCK + 1), Err("must be at most 1000000000000".to_string()));
        assert!(serde_json::from_str::<InitialStock>("-5").is_err());
    }
}
