//! A [`PaymentGateway`] decorator that gives every call a span (`payments.charge`, …) and
//! records `orderly_payment_gateway_calls_total{operation,result}` and its latency
//! histogram. It wraps whichever gateway is configured, the sandbox or the HTTP one.
//!
//! A call abandoned before it answers (the saga's timeout dropped it) is counted with
//! result `cancelled`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tracing::Instrument;

use super::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord, RefundReceipt, RefundRequest};

pub struct Instrumented {
    inner: Arc<dyn PaymentGateway>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn PaymentGateway>) -> Self {
        Self { inner }
    }
}

/// Records one call when dropped: with its result if it finished, else `cancelled`.
struct CallRecord {
    operation: &'static str,
    start: Instant,
    result: &'static str,
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        crate::metrics::gateway_call(self.operation, self.result, self.start.elapsed());
    }
}

fn error_result(e: &GatewayError) -> &'static str {
    match e {
        GatewayError::Unavailable(_) => "unavailable",
        GatewayError::Rejected(_) => "rejected",
        GatewayError::Shed { .. } => "shed",
    }
}

/// Runs `call` inside the span `span`, recording its result with `classify`.
fn observe<'a, T: Send + 'a>(
    operation: &'static str,
    span: tracing::Span,
    call: impl Future<Output = Result<T, GatewayError>> + Send + 'a,
    classify: fn(&T) -> &'static str,
) -> BoxFuture<'a, Result<T, GatewayError>> {
    async move {
        let mut record = CallRecord { operation, start: Instant::now(), result: "cancelled" };
        let out = call.await;
        record.result = match &out {
            Ok(v) => classify(v),
            Err(e) => error_result(e),
        };
        if let Err(e) = &out {
            tracing::Span::current().record("error", tracing::field::display(e));
        }
        out
    }
    .instrument(span)
    .boxed()
}

impl PaymentGateway for Instrumented {
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        // Never the card: only what identifies the charge.
        let span = tracing::info_span!(
            "payments.charge",
            otel.kind = "client",
            payment.idempotency_key = %req.idempotency_key,
            payment.amount_minor = req.amount_minor,
            payment.currency = %req.currency,
            error = tracing::field::Empty,
        );
        observe("charge", span, self.inner.charge(req), |o| match o {
            ChargeOutcome::Succeeded { .. } => "succeeded",
            ChargeOutcome::Declined { .. } => "declined",
        })
    }

    fn lookup(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        let span = tracing::info_span!(
            "payments.lookup",
            otel.kind = "client",
            payment.idempotency_key = %idempotency_key,
            error = tracing::field::Empty,
        );
        observe("lookup", span, self.inner.lookup(idempotency_key), |r| match r {
            Some(PaymentRecord::Succeeded { .. }) => "succeeded",
            Some(PaymentRecord::Declined { .. }) => "declined",
            Some(PaymentRecord::Reversed { .. }) => "reversed",
            None => "not_found",
        })
    }

    fn void(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        let span = tracing::info_span!("payments.void", otel.kind = "client", payment.id = %payment_id, error = tracing::field::Empty);
        observe("void", span, self.inner.void(payment_id), |_| "ok")
    }

    fn refund(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        let span = tracing::info_span!(
            "payments.refund",
            otel.kind = "client",
            payment.id = %payment_id,
            error = tracing::field::Empty,
        );
        observe("refund", span, self.inner.refund(payment_id), |_| "ok")
    }

    fn refund_amount(&self, req: RefundRequest) -> BoxFuture<'_, Result<RefundReceipt, GatewayError>> {
        let span = tracing::info_span!(
            "payments.refund_amount",
            otel.kind = "client",
            payment.id = %req.payment_id,
            payment.idempotency_key = %req.idempotency_key,
            payment.amount_minor = req.amount_minor,
            payment.currency = %req.currency,
            error = tracing::field::Empty,
        );
        observe("refund_amount", span, self.inner.refund_amount(req), |_| "ok")
    }

    fn breaker_state(&self) -> Option<crate::outbound::BreakerState> {
        self.inner.breaker_state()
    }
}
