//! What a checkout is asked for: the request as a transport received it
//! ([`CheckoutRequest`]), and the domain types it parses into ([`Quantity`], [`Cart`],
//! [`ShippingAddress`], the card as [`CardNumber`]). Each type can only hold a valid value;
//! [`CheckoutRequest::parse`] reports every bad field at once, with the field names REST
//! has always answered (`line_items[0].quantity`, `payment.card_number`, …).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::Sku;
use crate::error::{Error, FieldError, Result};
use crate::payments::CardNumber;

/// Largest quantity of one SKU in one order.
pub const MAX_QUANTITY: i64 = 1_000;
/// Most distinct line items in one order.
pub const MAX_LINES: usize = 100;
/// Largest shipping address, in bytes of compact JSON.
pub const MAX_ADDRESS_BYTES: usize = 2_000;

/// How many units of one SKU: 1 to [`MAX_QUANTITY`] (1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(i64);

impl Quantity {
    /// `Err` with the message REST answers for `line_items[i].quantity`.
    pub fn parse(raw: i64) -> Result<Self, String> {
        if (1..=MAX_QUANTITY).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(format!("must be between 1 and {MAX_QUANTITY}"))
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

crate::parse_conversions!(i64: Quantity);

/// A shipping address: any JSON object of at most [`MAX_ADDRESS_BYTES`] (2000) bytes,
/// stored as given (orderly does not interpret it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct ShippingAddress(serde_json::Value);

impl ShippingAddress {
    /// `Err` with the message REST answers for `shipping_address`.
    pub fn parse(raw: serde_json::Value) -> Result<Self, String> {
        if raw.is_object() && raw.to_string().len() <= MAX_ADDRESS_BYTES {
            Ok(Self(raw))
        } else {
            Err(format!("must be an object of at most {MAX_ADDRESS_BYTES} bytes"))
        }
    }

    /// The address as JSON.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }
}

impl TryFrom<serde_json::Value> for ShippingAddress {
    type Error = String;
    fn try_from(raw: serde_json::Value) -> Result<Self, String> {
        Self::parse(raw)
    }
}

impl From<ShippingAddress> for serde_json::Value {
    fn from(a: ShippingAddress) -> serde_json::Value {
        a.0
    }
}

/// One parsed cart line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// The lines of a cart: 1 to [`MAX_LINES`] (100), each a valid SKU and [`Quantity`]. The
/// same SKU may appear on several lines (pricing merges them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<LineItemRequest>")]
pub struct Cart(Vec<CartLine>);

impl Cart {
    /// Every bad line at once: `line_items` (size), `line_items[i].sku`,
    /// `line_items[i].quantity`.
    pub fn parse(raw: &[LineItemRequest]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if raw.is_empty() {
            errors.push(FieldError::new("line_items", "must not be empty"));
        } else if raw.len() > MAX_LINES {
            errors.push(FieldError::new("line_items", format!("at most {MAX_LINES} lines")));
        }
        let mut lines = Vec::with_capacity(raw.len());
        for (i, l) in raw.iter().enumerate() {
            match (Sku::parse(&l.sku), Quantity::parse(l.quantity)) {
                (Ok(sku), Ok(quantity)) => lines.push(CartLine { sku, quantity }),
                (s, q) => {
                    if let Err(m) = s {
                        errors.push(FieldError::new(format!("line_items[{i}].sku"), m));
                    }
                    if let Err(m) = q {
                        errors.push(FieldError::new(format!("line_items[{i}].quantity"), m));
                    }
                }
            }
        }
        if errors.is_empty() { Ok(Self(lines)) } else { Err(errors) }
    }

    /// The lines, in the order they were sent (their index names them in errors).
    pub fn lines(&self) -> &[CartLine] {
        &self.0
    }
}

impl TryFrom<Vec<LineItemRequest>> for Cart {
    type Error = String;
    fn try_from(raw: Vec<LineItemRequest>) -> Result<Self, String> {
        Self::parse(&raw).map_err(|errors| {
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
        })
    }
}

/// One line of a [`CheckoutRequest`], as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemRequest {
    /// The product's SKU (1 to 64 of `A–Z a–z 0–9 - _ .`).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// A card to pay with, as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// A sandbox test card, e.g. `4242424242424242` (see docs/API.md). Never stored. 12 to 19
    /// digits; spaces and dashes between them are ignored.
    #[schema(pattern = r"^[ -]*(?:[0-9][ -]*){12,19}$")]
    pub card_number: String,
}

/// A cart to check out, as a transport received it (REST: the body of `POST /orders`).
/// Prices and totals come from the catalog: there is no `total` field, and sending one is a
/// 422.
///
/// Shape: `{ "line_items": [{ "sku": "A-1", "quantity": 2 }], "payment": { "card_number":
/// "4242424242424242" }?, "shipping_address": { … }? }`. [`parse`](Self::parse) turns it into
/// a [`Checkout`] or one `Error::Validation` naming every bad field.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PlaceOrderRequest)]
pub struct CheckoutRequest {
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub line_items: Vec<LineItemRequest>,
    /// Pay now. Without it the order waits in `pending_payment` (pay with
    /// `POST /orders/{id}/pay`) until its reservation expires.
    pub payment: Option<PaymentRequest>,
    /// A JSON object of at most 2000 bytes.
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<serde_json::Value>,
    /// The client's idempotency key for this checkout, from the transport (REST: the
    /// `Idempotency-Key` header), never from the body. See [`IdempotencyKey`].
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

/// A client's key for retrying one checkout safely: 1 to 255 visible ASCII characters
/// (Stripe's limit), e.g. a UUID. Scoped to the customer. A retry with the same key and the
/// same request gets the first answer again (the order, or the same 402 for a declined
/// card); the same key with a different request is a 422 on `Idempotency-Key`; a retry
/// while the first request is still charging is a 409 `idempotency-key-in-use`
/// (draft-ietf-httpapi-idempotency-key-header §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 1 to 255 visible ASCII characters, e.g. a UUID".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checkout whose every field is valid (see [`CheckoutRequest::parse`]).
#[derive(Debug, Clone)]
pub struct Checkout {
    pub cart: Cart,
    pub card: Option<CardNumber>,
    pub shipping_address: Option<ShippingAddress>,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl Checkout {
    /// SHA-256 (hex) of what the checkout asks for: each line's SKU and quantity, the
    /// card's last four digits, the shipping address. Two requests with the same
    /// fingerprint are the same request for idempotency (the full card number is never
    /// stored, not even hashed).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for l in self.cart.lines() {
            h.update(format!("{}\u{0}{}\u{0}", l.sku.as_str(), l.quantity.get()));
        }
        h.update(format!("card:{}\u{0}", self.card.as_ref().map_or("", |c| c.last4())));
        h.update(format!(
            "address:{}",
            self.shipping_address.as_ref().map(|a| a.as_json().to_string()).unwrap_or_default()
        ));
        hex::encode(h.finalize())
    }
}

impl CheckoutRequest {
    /// The valid checkout, or `Error::Validation` with every bad field at once:
    /// `line_items`, `line_items[i].sku`, `line_items[i].quantity`, `payment.card_number`,
    /// `shipping_address`.
    pub fn parse(self) -> Result<Checkout> {
        let mut errors = Vec::new();
        let cart = Cart::parse(&self.line_items).map_err(|e| errors.extend(e)).ok();
        let card = match self.payment.map(|p| CardNumber::parse(&p.card_number)).transpose() {
            Ok(c) => c,
            Err(m) => {
                errors.push(FieldError::new("payment.card_number", m));
                None
            }
        };
        let shipping_address = match self.shipping_address.map(ShippingAddress::parse).transpose() {
            Ok(a) => a,
            Err(m) => {
                errors.push(FieldError::new("shipping_address", m));
                None
            }
        };
        let idempotency_key = match self.idempotency_key.as_deref().map(IdempotencyKey::parse).transpose() {
            Ok(k) => k,
            Err(m) => {
                errors.push(FieldError::new("Idempotency-Key", m));
                None
            }
        };
        match cart {
            Some(cart) if errors.is_empty() => Ok(Checkout { cart, card, shipping_address, idempotency_key }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// The card of a [`PaymentRequest`]; `Error::Validation` on `field` if it is not a card
/// number.
pub(crate) fn parse_card(req: &PaymentRequest, field: &str) -> Result<CardNumber> {
    CardNumber::parse(&req.card_number).map_err(|m| Error::Validation(vec![FieldError::new(field, m)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> LineItemRequest {
        LineItemRequest { sku: sku.into(), quantity }
    }

    #[test]
    fn quantities_are_one_to_a_thousand() {
        for bad in [i64::MIN, -1, 0, 1_001, i64::MAX] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Quantity::parse(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(1_000).map(Quantity::get), Ok(1_000));
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("7").map(Quantity::get).ok(), Some(7));
    }

    #[test]
    fn a_shipping_address_is_a_small_object() {
        assert!(ShippingAddress::parse(serde_json::json!({ "city": "Henderson" })).is_ok());
        assert!(ShippingAddress::parse(serde_json::json!("Henderson")).is_err());
        assert!(ShippingAddress::parse(serde_json::json!({ "x": "y".repeat(2_000) })).is_err());
        assert!(serde_json::from_str::<ShippingAddress>("[1]").is_err());
    }

    #[test]
    fn a_cart_has_one_to_a_hundred_lines() {
        assert!(Cart::parse(&[]).is_err());
        assert!(Cart::parse(&vec![line("A-1", 1); MAX_LINES]).is_ok());
        let too_many = Cart::parse(&vec![line("A-1", 1); MAX_LINES + 1]).unwrap_err();
        assert_eq!(too_many[0].field, "line_items");
        assert!(serde_json::from_str::<Cart>(r#"[{"sku":"A-1","quantity":0}]"#).is_err());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let req = CheckoutRequest {
            line_items: vec![line("ok-1", 1), line("bad sku", 0), line("ok-2", -1)],
            payment: Some(PaymentRequest { card_number: "42".into() }),
            shipping_address: Some(serde_json::json!([])),
            idempotency_key: Some(String::new()),
        };
        let Err(Error::Validation(errors)) = req.parse() else { panic!("expected a validation error") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "line_items[1].sku",
                "line_items[1].quantity",
                "line_items[2].quantity",
                "payment.card_number",
                "shipping_address",
                "Idempotency-Key"
            ]
        );
    }
}
