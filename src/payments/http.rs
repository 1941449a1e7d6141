//! A payment gateway over HTTP, selected by `payments.url` (empty: the sandbox).
//!
//! The protocol, JSON over HTTP/1.1 (amounts in integer minor units, currency ISO 4217):
//!
//! | call | request | answer |
//! |---|---|---|
//! | charge | `POST {url}/charges`, header `Idempotency-Key: K`, body `{amount_minor, currency, card_number}` | 200/201 `{id, status: "succeeded" \| "declined", decline_code?}` |
//! | lookup | `GET {url}/charges?idempotency_key=K` | 200 `{id, status, decline_code?}` (`status` may also be `voided`, `refunded`), or 404 |
//! | void | `POST {url}/charges/{id}/void` | 2xx |
//! | refund | `POST {url}/charges/{id}/refund` | 2xx (refunds what is left of the charge) |
//! | partial refund | `POST {url}/charges/{id}/refunds`, header `Idempotency-Key: R`, body `{amount_minor, currency}` | 200/201 `{id, amount_minor}` |
//!
//! Repeating a charge with the same key must return the first outcome (as Stripe does).
//! Likewise a partial refund: `R` is the refund's id, and a repeat with the same key and
//! amount must answer with the first refund, never refund again; the gateway must refuse
//! (409 or 422) an amount that would take the charge's refunds beyond the charge, a charge
//! that is not succeeded, and a key reused for another amount. Once the charge is refunded
//! in full, `lookup` reports it `refunded`.
//! Any other 4xx is a refusal ([`GatewayError::Rejected`]); 5xx, 429, a timeout
//! (`payments.timeout_ms`) or a broken connection leaves the outcome unknown
//! ([`GatewayError::Unavailable`]) for the recovery worker to settle with a lookup.
//! Every request carries the W3C `traceparent` of the current span.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord, RefundReceipt, RefundRequest};

pub struct HttpGateway {
    client: reqwest::Client,
    base: Url,
}

/// `POST /charges` body. The card number leaves the process only here.
#[derive(Serialize)]
struct ChargeBody<'a> {
    amount_minor: i64,
    currency: &'a str,
    card_number: &'a str,
}

/// `POST /charges/{id}/refunds` body.
#[derive(Serialize)]
struct RefundBody<'a> {
    amount_minor: i64,
    currency: &'a str,
}

/// A refund as the gateway reports it.
#[derive(Deserialize)]
struct RefundReply {
    id: String,
}

/// A charge as the gateway reports it.
#[derive(Deserialize)]
struct ChargeReply {
    id: String,
    status: String,
    #[serde(default)]
    decline_code: Option<String>,
}

impl HttpGateway {
    /// A client for the gateway at `base_url` (`http://host:port/prefix`); each call may
    /// take at most `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut base = Url::parse(base_url).map_err(|e| anyhow::anyhow!("payments.url {base_url:?}: {e}"))?;
        // Built without a TLS stack: https:// is refused here rather than failing every call.
        if base.cannot_be_a_base() || base.scheme() != "http" {
            anyhow::bail!("payments.url {base_url:?} must be an http:// URL");
        }
        // So that joining `charges` keeps any path prefix.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("orderly/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the payments HTTP client: {e}"))?;
        Ok(Self { client, base })
    }

    /// `{base}/charges` followed by `segments`, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, GatewayError> {
        let mut url = self.base.join("charges").map_err(|e| GatewayError::Rejected(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| GatewayError::Rejected("payments.url cannot take a path".into()))?
            .extend(segments);
        Ok(url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, GatewayError> {
        let mut headers = HeaderMap::new();
        crate::telemetry::inject_context(&mut headers);
        req.headers(headers).send().await.map_err(|e| GatewayError::Unavailable(describe(&e)))
    }

    async fn post_action(&self, payment_id: &str, action: &str) -> Result<(), GatewayError> {
        let res = self.send(self.client.post(self.url(&[payment_id, action])?)).await?;
        classify(res.status())
    }
}

/// A transport error in a few words (the URL holds only idempotency keys and payment ids).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

/// Maps a non-success status to the error it means; `Ok` for 2xx.
fn classify(status: StatusCode) -> Result<(), GatewayError> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(GatewayError::Unavailable(format!("gateway answered {status}")))
    } else {
        Err(GatewayError::Rejected(format!("gateway answered {status}")))
    }
}

/// The reply body of a 2xx; an unreadable one leaves the outcome unknown.
async fn reply(res: reqwest::Response) -> Result<ChargeReply, GatewayError> {
    res.json::<ChargeReply>()
        .await
        .map_err(|e| GatewayError::Unavailable(format!("unreadable gateway reply: {}", describe(&e))))
}

impl PaymentGateway for HttpGateway {
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        async move {
            let body =
                ChargeBody { amount_minor: req.amount_minor, currency: &req.currency, card_number: req.card.expose() };
            let request = self.client.post(self.url(&[])?).header("Idempotency-Key", &req.idempotency_key).json(&body);
            let res = self.send(request).await?;
            classify(res.status())?;
            let r = reply(res).await?;
            match r.status.as_str() {
                "succeeded" => Ok(ChargeOutcome::Succeeded { payment_id: r.id }),
                "declined" => Ok(ChargeOutcome::Declined {
                    payment_id: r.id,
                    code: r.decline_code.unwrap_or_else(|| "card_declined".into()),
                }),
                other => Err(GatewayError::Unavailable(format!("unexpected charge status {other:?}"))),
            }
        }
        .boxed()
    }

    fn lookup(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        async move {
            let mut url = self.url(&[])?;
            url.query_pairs_mut().append_pair("idempotency_key", &idempotency_key);
            let res = self.send(self.client.get(url)).await?;
            if res.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            classify(res.status())?;
            let r = reply(res).await?;
            match r.status.as_str() {
                "succeeded" => Ok(Some(PaymentRecord::Succeeded { payment_id: r.id })),
                "declined" => Ok(Some(PaymentRecord::Declined {
                    payment_id: r.id,
                    code: r.decline_code.unwrap_or_else(|| "card_declined".into()),
                })),
                "voided" | "refunded" => Ok(Some(PaymentRecord::Reversed { payment_id: r.id })),
                other => Err(GatewayError::Unavailable(format!("unexpected charge status {other:?}"))),
            }
        }
        .boxed()
    }

    fn void(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        async move { self.post_action(&payment_id, "void").await }.boxed()
    }

    fn refund(&self, payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        async move { self.post_action(&payment_id, "refund").await }.boxed()
    }

    fn refund_amount(&self, req: RefundRequest) -> BoxFuture<'_, Result<RefundReceipt, GatewayError>> {
        async move {
            let body = RefundBody { amount_minor: req.amount_minor, currency: &req.currency };
            let url = self.url(&[req.payment_id.as_str(), "refunds"])?;
            let request = self.client.post(url).header("Idempotency-Key", &req.idempotency_key).json(&body);
            let res = self.send(request).await?;
            classify(res.status())?;
            let r = res
                .json::<RefundReply>()
                .await
                .map_err(|e| GatewayError::Unavailable(format!("unreadable gateway reply: {}", describe(&e))))?;
            Ok(RefundReceipt { refund_id: r.id })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_encode_ids() {
        let g = HttpGateway::new("http://127.0.0.1:9/pay", Duration::from_secs(1)).unwrap();
        assert_eq!(g.url(&[]).unwrap().as_str(), "http://127.0.0.1:9/pay/charges");
        assert_eq!(g.url(&["ch/1", "void"]).unwrap().as_str(), "http://127.0.0.1:9/pay/charges/ch%2F1/void");
        assert!(HttpGateway::new("ftp://x", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn statuses_map_to_retryable_or_final_errors() {
        assert!(classify(StatusCode::OK).is_ok());
        assert!(matches!(classify(StatusCode::BAD_GATEWAY), Err(GatewayError::Unavailable(_))));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS), Err(GatewayError::Unavailable(_))));
        assert!(matches!(classify(StatusCode::CONFLICT), Err(GatewayError::Rejected(_))));
    }
}
