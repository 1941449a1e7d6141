//! What every domain type that parses itself shares (`Sku`, `Price`, `Quantity`, …): a
//! newtype with a private field, a `parse` function that is the only way in, and the two
//! conversions serde uses through `#[serde(try_from = "…", into = "…")]`, so that
//! deserializing goes through `parse` too. [`parse_conversions!`](crate::parse_conversions)
//! writes those conversions once.

/// Implements `TryFrom<raw>` (through the type's `parse`) and `From<T> for raw` for
/// newtypes `struct T(raw)`, with `raw` being `String` (parsed from `&str`) or `i64`:
/// `crate::parse_conversions!(String: Sku, Name);`, `crate::parse_conversions!(i64: Price);`.
/// Invoke it in the type's own module (it reads the private field).
#[macro_export]
macro_rules! parse_conversions {
    (String: $($t:ty),+ $(,)?) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                Self::parse(&raw)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    )+};
    (i64: $($t:ty),+ $(,)?) => {$(
        impl TryFrom<i64> for $t {
            type Error = String;
            fn try_from(raw: i64) -> Result<Self, String> {
                Self::parse(raw)
            }
        }
        impl From<$t> for i64 {
            fn from(v: $t) -> i64 {
                v.0
            }
        }
    )+};
}
