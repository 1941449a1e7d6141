//! The payment gateway seam. The checkout saga talks only to [`PaymentGateway`]; the
//! default is the built-in [`sandbox::SandboxGateway`], [`http::HttpGateway`] when
//! `payments.url` is set. Either is wrapped in [`instrumented::Instrumented`] (spans, metrics).
//!
//! Semantics follow Stripe's: a charge carries an idempotency key (one per payment attempt
//! on an order: the order id, then `<order id>:<n>`, see `orders::checkout::attempt_key`), and
//! repeating a charge with the same key returns the first outcome instead of charging again
//! (<https://docs.stripe.com/api/idempotent_requests>). A refund of part of a charge
//! ([`PaymentGateway::refund_amount`]) carries its own key (the refund's id) and never
//! returns more than was charged, as Stripe's refunds do
//! (<https://docs.stripe.com/api/refunds/create>).

pub mod http;
pub mod instrumented;
pub mod sandbox;

use std::fmt;

use futures_util::future::BoxFuture;

/// A card number, kept only in memory for the length of one charge; never stored, logged
/// or serialized. 12 to 19 digits.
#[derive(Clone)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err("must be a card number of 12 to 19 digits".into())
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// One key per payment attempt: retries of the same charge never charge twice, and
    /// another card (a new attempt) is not answered with the first card's outcome.
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: String,
    pub card: CardNumber,
}

/// What the gateway decided about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        payment_id: String,
    },
    /// The card was declined; no money moved. `code` follows Stripe's decline codes
    /// (`card_declined`, `insufficient_funds`, `processing_error`, …).
    Declined {
        payment_id: String,
        code: String,
    },
}

/// A charge as the gateway remembers it, found by idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRecord {
    Succeeded {
        payment_id: String,
    },
    Declined {
        payment_id: String,
        code: String,
    },
    /// Voided or refunded: no money is held any more.
    Reversed {
        payment_id: String,
    },
}

/// A refund of part (or the rest) of a succeeded charge.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The gateway's id of the charge.
    pub payment_id: String,
    /// One key per refund (orderly uses the refund's id): a retry with the same key and
    /// amount returns the first refund instead of refunding again.
    pub idempotency_key: String,
    /// Minor units of `currency`, at least 1; the gateway refuses an amount that would take
    /// the charge's refunds beyond the charge.
    pub amount_minor: i64,
    /// ISO 4217, the charge's currency.
    pub currency: String,
}

/// A refund the gateway made (or had already made under the same key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    /// The gateway's id of the refund.
    pub refund_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The outcome is unknown (timeout, connection lost): ask again later with `lookup`.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
    /// The request was refused outright (e.g. a mismatched idempotent retry).
    #[error("payment gateway rejected the request: {0}")]
    Rejected(String),
    /// The call was not sent: the circuit breaker is open or too many calls are in flight
    /// (`reason`: `breaker_open`, `saturated`). Nothing happened at the gateway; retry after
    /// `retry_after_secs`.
    #[error("payment gateway not called ({reason})")]
    Shed { reason: &'static str, retry_after_secs: u64 },
}

/// A payment provider. Every method is safe to retry (void and refund settle once; a repeat
/// finds them done).
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges a card once per idempotency key.
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>>;
    /// The charge made with `idempotency_key`, if the gateway ever received it.
    fn lookup(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>>;
    /// Cancels a successful charge before settlement (compensation).
    fn void(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>>;
    /// Returns the money of a settled charge (all of it, or what partial refunds left).
    fn refund(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>>;
    /// Returns `req.amount_minor` of a settled charge, once per `req.idempotency_key`.
    /// Errors: `Rejected` if the charge cannot be refunded (not succeeded, or the amount
    /// exceeds what is left of it, or the key was used for another amount); `Unavailable`
    /// if the outcome is unknown (retry with the same key).
    ///
    /// The default refuses: a gateway that cannot refund part of a charge.
    fn refund_amount(&self, req: RefundRequest) -> BoxFuture<'_, Result<RefundReceipt, GatewayError>> {
        let why = format!("this gateway cannot refund part of charge {}", req.payment_id);
        Box::pin(async move { Err(GatewayError::Rejected(why)) })
    }
    /// The state of the circuit breaker in front of the provider, for `/readyz`; `None`
    /// when there is none (the in-process sandbox).
    fn breaker_state(&self) -> Option<crate::outbound::BreakerState> {
        None
    }
}

/// The outbound limits of the HTTP gateway, from `payments.*` (docs/OPERATIONS.md).
pub fn policy(c: &crate::config::PaymentsConfig) -> crate::outbound::Policy {
    let ms = std::time::Duration::from_millis;
    let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    crate::outbound::Policy {
        timeout: ms(c.timeout_ms),
        retries: c.retries,
        backoff_base: ms(c.backoff_base_ms),
        backoff_max: ms(c.backoff_max_ms),
        failure_ratio: c.breaker_failure_ratio,
        min_calls: count(c.breaker_min_calls),
        window: ms(c.breaker_window_ms),
        open_for: ms(c.breaker_open_ms),
        half_open_probes: count(c.breaker_half_open_probes),
        max_concurrent: count(c.max_concurrent_calls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_never_print_in_full() {
        let c = CardNumber::parse("4242 4242 4242 4242").unwrap();
        assert_eq!(c.last4(), "4242");
        assert_eq!(format!("{c:?}"), "CardNumber(****4242)");
        assert!(CardNumber::parse("4242").is_err());
        assert!(CardNumber::parse("4242x4242x4242x4242").is_err());
    }
}
