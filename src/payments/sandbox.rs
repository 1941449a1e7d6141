//! The built-in sandbox gateway: deterministic test cards, no network, its ledger in the
//! `sandbox_payments` table so idempotency survives restarts like a real gateway's.
//!
//! | card number          | outcome                                   |
//! |----------------------|-------------------------------------------|
//! | `4242424242424242`   | succeeds                                  |
//! | `4000000000000002`   | declined, `card_declined`                 |
//! | `4000000000009995`   | declined, `insufficient_funds`            |
//! | `4000000000000119`   | declined, `processing_error` (gateway-side failure) |
//! | other Luhn-valid     | succeeds                                  |
//! | not Luhn-valid       | declined, `incorrect_number`              |
//!
//! The numbers are Stripe's test cards (<https://docs.stripe.com/testing>).
//!
//! Refunds: `refund` returns what is left of a charge; `refund_amount` returns part of it,
//! once per idempotency key (`sandbox_refunds`), and refuses any amount that would take the
//! charge's refunds (`sandbox_payments.refunded_minor`) beyond the charge. A charge refunded
//! in full reads as `refunded` (a [`PaymentRecord::Reversed`]).

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::Row;

use super::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord, RefundReceipt, RefundRequest};
use crate::db::{self, Db};

pub struct SandboxGateway {
    db: Db,
}

impl SandboxGateway {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// The sandbox's decision for a card number: `None` succeeds, `Some(code)` declines.
pub fn decide(card: &str) -> Option<&'static str> {
    match card {
        "4242424242424242" => None,
        "4000000000000002" => Some("card_declined"),
        "4000000000009995" => Some("insufficient_funds"),
        "4000000000000119" => Some("processing_error"),
        n if luhn_valid(n) => None,
        _ => Some("incorrect_number"),
    }
}

/// The Luhn checksum (ISO/IEC 7812-1 annex B).
pub fn luhn_valid(number: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in number.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !number.is_empty() && sum.is_multiple_of(10)
}

/// A `sandbox_payments` row's (id, status, decline code, amount).
fn ledger_row(r: &sqlx::any::AnyRow) -> Result<(String, String, Option<String>, i64), sqlx::Error> {
    Ok((r.try_get("id")?, r.try_get("status")?, r.try_get("decline_code")?, r.try_get("amount_minor")?))
}

fn unavailable(e: sqlx::Error) -> GatewayError {
    GatewayError::Unavailable(e.to_string())
}

impl SandboxGateway {
    async fn find(&self, key: &str) -> Result<Option<(String, String, Option<String>, i64)>, GatewayError> {
        let row = sqlx::query(
            "SELECT id, status, decline_code, amount_minor FROM sandbox_payments WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(self.db.pool())
        .await
        .map_err(unavailable)?;
        row.as_ref().map(ledger_row).transpose().map_err(unavailable)
    }

    /// Moves a charge `from → to` (a repeat finds it in `to` and succeeds); a refund also
    /// marks the whole charge refunded.
    async fn set_status(&self, payment_id: &str, from: &str, to: &str) -> Result<(), GatewayError> {
        let n = sqlx::query(
            "UPDATE sandbox_payments SET status = $1, updated_at = $2, \
             refunded_minor = CASE WHEN $1 = 'refunded' THEN amount_minor ELSE refunded_minor END \
             WHERE id = $3 AND status IN ($4, $1)",
        )
        .bind(to)
        .bind(db::now())
        .bind(payment_id)
        .bind(from)
        .execute(self.db.pool())
        .await
        .map_err(unavailable)?
        .rows_affected();
        if n == 1 { Ok(()) } else { Err(GatewayError::Rejected(format!("payment {payment_id} is not {from}"))) }
    }

    /// The refund recorded under `key`: (id, payment id, amount).
    async fn find_refund(&self, tx: &mut db::Tx, key: &str) -> Result<Option<(String, String, i64)>, GatewayError> {
        let row = sqlx::query("SELECT id, payment_id, amount_minor FROM sandbox_refunds WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(unavailable)?;
        row.map(|r| -> Result<_, sqlx::Error> {
            Ok((r.try_get("id")?, r.try_get("payment_id")?, r.try_get("amount_minor")?))
        })
        .transpose()
        .map_err(unavailable)
    }

    /// One refund, in one write transaction: the same key answers with the first refund;
    /// otherwise the charge's `refunded_minor` grows only while it stays within the charge.
    async fn refund_part(&self, req: &RefundRequest) -> Result<RefundReceipt, GatewayError> {
        if req.amount_minor < 1 {
            return Err(GatewayError::Rejected("refund amount must be at least 1".into()));
        }
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        if let Some((id, payment, amount)) = self.find_refund(&mut tx, &req.idempotency_key).await? {
            return if payment == req.payment_id && amount == req.amount_minor {
                Ok(RefundReceipt { refund_id: id })
            } else {
                Err(GatewayError::Rejected("idempotency key reused for another refund".into()))
            };
        }
        let now = db::now();
        let n = sqlx::query(
            "UPDATE sandbox_payments SET refunded_minor = refunded_minor + $1, updated_at = $2, \
             status = CASE WHEN refunded_minor + $1 = amount_minor THEN 'refunded' ELSE status END \
             WHERE id = $3 AND status = 'succeeded' AND refunded_minor + $1 <= amount_minor",
        )
        .bind(req.amount_minor)
        .bind(&now)
        .bind(&req.payment_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if n != 1 {
            return Err(GatewayError::Rejected(format!(
                "payment {} cannot refund {} more",
                req.payment_id, req.amount_minor
            )));
        }
        let id = format!("re_{}", db::new_id().simple());
        sqlx::query(
            "INSERT INTO sandbox_refunds (id, payment_id, idempotency_key, amount_minor, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&req.payment_id)
        .bind(&req.idempotency_key)
        .bind(req.amount_minor)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(RefundReceipt { refund_id: id })
    }
}

impl PaymentGateway for SandboxGateway {
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        async move {
            let decline = decide(req.card.expose());
            let now = db::now();
            // SQLite's writers queue in the process, not in SQLite's sleeping busy handler.
            let permit = self.db.write_permit().await.map_err(unavailable)?;
            // One statement records the charge and returns whatever was stored first under
            // this key, as with Stripe: on a conflict the no-op update makes `RETURNING`
            // give the existing row (one round trip and one pool acquisition, not two).
            let row = sqlx::query(
                "INSERT INTO sandbox_payments (id, idempotency_key, amount_minor, currency, status, decline_code, \
                 last4, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = excluded.idempotency_key \
                 RETURNING id, status, decline_code, amount_minor",
            )
            .bind(format!("pay_{}", db::new_id().simple()))
            .bind(&req.idempotency_key)
            .bind(req.amount_minor)
            .bind(&req.currency)
            .bind(if decline.is_some() { "declined" } else { "succeeded" })
            .bind(decline)
            .bind(req.card.last4())
            .bind(&now)
            .fetch_one(self.db.pool())
            .await
            .map_err(unavailable)?;
            drop(permit);
            let (id, status, code, amount) = ledger_row(&row).map_err(unavailable)?;
            if amount != req.amount_minor {
                return Err(GatewayError::Rejected("idempotency key reused with another amount".into()));
            }
            Ok(match status.as_str() {
                "declined" => ChargeOutcome::Declined { payment_id: id, code: code.unwrap_or_default() },
                _ => ChargeOutcome::Succeeded { payment_id: id },
            })
        }
        .boxed()
    }

    fn lookup(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        async move {
            Ok(self.find(&idempotency_key).await?.map(|(id, status, code, _)| match status.as_str() {
                "succeeded" => PaymentRecord::Succeeded { payment_id: id },
                "declined" => PaymentRecord::Declined { payment_id: id, code: code.unwrap_or_default() },
                _ => PaymentRecord::Reversed { payment_id: id },
            }))
        }
        .boxed()
    }

    fn void(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        async move { self.set_status(&payment_id, "succeeded", "voided").await }.boxed()
    }

    fn refund(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        async move { self.set_status(&payment_id, "succeeded", "refunded").await }.boxed()
    }

    fn refund_amount(&self, req: RefundRequest) -> BoxFuture<'_, Result<RefundReceipt, GatewayError>> {
        async move { self.refund_part(&req).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_deterministic() {
        assert_eq!(decide("4242424242424242"), None);
        assert_eq!(decide("4000000000000002"), Some("card_declined"));
        assert_eq!(decide("4000000000009995"), Some("insufficient_funds"));
        assert_eq!(decide("4000000000000119"), Some("processing_error"));
        assert_eq!(decide("5555555555554444"), None);
        assert_eq!(decide("4242424242424241"), Some("incorrect_number"));
    }
}
