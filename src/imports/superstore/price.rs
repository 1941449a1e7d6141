//! Exact money arithmetic for Superstore lines, in integers only: `Sales` in units of
//! 1/10,000 dollar, `Discount` in basis points, results in cents rounded half up.

use crate::money::decimal_to_minor;

/// Digits after the point that [`ten_thousandths`] keeps.
const SCALE_DIGITS: u32 = 4;
/// 1.0 in ten-thousandths (and 100 % in basis points).
pub const ONE: i64 = 10_000;

/// A non-negative decimal string in units of 1/10,000: `"957.5775"` → 9_575_775,
/// `"0.45"` → 4_500. Errors on anything else, and on a fifth non-zero decimal (which would
/// have to be rounded: the point is to stay exact).
pub fn ten_thousandths(raw: &str) -> Result<i64, String> {
    let frac = raw.split_once('.').map_or("", |(_, f)| f);
    if frac.as_bytes().get(SCALE_DIGITS as usize..).is_some_and(|rest| rest.iter().any(|b| *b != b'0')) {
        return Err(format!("{raw:?} has more than {SCALE_DIGITS} decimal places"));
    }
    decimal_to_minor(raw, SCALE_DIGITS)
}

/// Whether a decimal string has non-zero digits past the cent (`"22.368"`), i.e. rounding
/// it to cents changes its value.
pub fn is_sub_cent(raw: &str) -> bool {
    let frac = raw.split_once('.').map_or("", |(_, f)| f);
    frac.as_bytes().get(2..).is_some_and(|rest| rest.iter().any(|b| *b != b'0'))
}

/// The unit list price in cents, half up: `Sales / (Quantity × (1 − Discount))`, with
/// `sales` in ten-thousandths and `discount` in basis points (0 ≤ discount < 10,000).
/// `None` if quantity is not positive, the discount is out of range, or the result does
/// not fit.
pub fn unit_price_minor(sales: i64, quantity: i64, discount: i64) -> Option<i64> {
    if quantity <= 0 || !(0..ONE).contains(&discount) || sales < 0 {
        return None;
    }
    // cents = 100 × sales / (quantity × (ONE − discount)), since sales / ONE dollars and
    // the ONEs cancel; rounded half up as floor((2 × num + den) / (2 × den)).
    let num = 100 * i128::from(sales);
    let den = i128::from(quantity) * i128::from(ONE - discount);
    i64::try_from((2 * num + den) / (2 * den)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly_to_four_places() {
        assert_eq!(ten_thousandths("957.5775"), Ok(9_575_775));
        assert_eq!(ten_thousandths("261.96"), Ok(2_619_600));
        assert_eq!(ten_thousandths("0.45"), Ok(4_500));
        assert_eq!(ten_thousandths("0"), Ok(0));
        assert_eq!(ten_thousandths("1.23450"), Ok(12_345));
        assert!(ten_thousandths("1.23456").is_err());
        assert!(ten_thousandths("-1").is_err());
        assert!(ten_thousandths("1.2é45").is_err());
    }

    #[test]
    fn sub_cent_amounts_are_recognised() {
        assert!(is_sub_cent("22.368"));
        assert!(is_sub_cent("957.5775"));
        assert!(!is_sub_cent("261.96"));
        assert!(!is_sub_cent("14.620"));
        assert!(!is_sub_cent("3"));
    }

    #[test]
    fn unit_list_prices_undo_quantity_and_discount_rounding_half_up() {
        // Row 1: 261.96 for 2, no discount.
        assert_eq!(unit_price_minor(2_619_600, 2, 0), Some(13_098));
        // Row 4: 957.5775 for 5 at 45 % off: 348.21 exactly.
        assert_eq!(unit_price_minor(9_575_775, 5, 4_500), Some(34_821));
        // Row 6: 48.86 for 7: 6.98.
        assert_eq!(unit_price_minor(488_600, 7, 0), Some(698));
        // Half a cent rounds up: 0.125 → 0.13.
        assert_eq!(unit_price_minor(1_250, 1, 0), Some(13));
        assert_eq!(unit_price_minor(1, 0, 0), None);
        assert_eq!(unit_price_minor(1, 1, ONE), None);
    }
}
