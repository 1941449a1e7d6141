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
//! Any other 4xx is a refusal ([`GatewayError::Rejected`]); 5xx, 429, 408, a timeout
//! (`payments.timeout_ms` per attempt) or a broken connection is transient, and an
//! unreadable 2xx body is broken: both leave the outcome unknown
//! ([`GatewayError::Unavailable`]) for the recovery worker to settle with a lookup.
//! Every call goes through an [`Outbound`] (bulkhead, circuit breaker, per-attempt timeout);
//! transient failures are retried with backoff for charge and partial refund (their
//! idempotency keys make a repeat safe) and lookup (a read), never for void and refund,
//! which carry no key. A call the breaker or the bulkhead refused was never sent
//! ([`GatewayError::Shed`]). Every request carries the W3C `traceparent` of the current span.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord, RefundReceipt, RefundRequest};
use crate::outbound::{BreakerState, CallError, Fault, Outbound, Policy};

pub struct HttpGateway {
    client: reqwest::Client,
    base: Url,
    outbound: Outbound,
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

/// One request, built once and sent once per attempt.
struct Exchange {
    method: Method,
    url: Url,
    idempotency_key: Option<String>,
    /// JSON, already serialized (the card number is in here for a charge).
    body: Option<Vec<u8>>,
}

/// What a 2xx (or a lookup's 404) answered.
enum Answer {
    NotFound,
    Body(Vec<u8>),
}

impl HttpGateway {
    /// A client for the gateway at `base_url` (`http://host:port/prefix`), its calls under
    /// `policy` (from `payments.*`).
    pub fn new(base_url: &str, policy: Policy) -> anyhow::Result<Self> {
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
            .connect_timeout(policy.timeout)
            .user_agent(concat!("orderly/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the payments HTTP client: {e}"))?;
        let outbound = Outbound::new("payments", policy)?;
        Ok(Self { client, base, outbound })
    }

    /// `{base}/charges` followed by `segments`, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, GatewayError> {
        let mut url = self.base.join("charges").map_err(|e| GatewayError::Rejected(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| GatewayError::Rejected("payments.url cannot take a path".into()))?
            .extend(segments);
        Ok(url)
    }

    /// Sends `ex` through the outbound layers (retried if `safe_to_retry`) and reads the
    /// answer with `read`, inside the attempt, so that an unreadable one counts against
    /// the breaker.
    async fn call<T: Send + 'static>(
        &self,
        ex: Exchange,
        safe_to_retry: bool,
        read: fn(Answer) -> Result<T, Fault>,
    ) -> Result<T, GatewayError> {
        let (client, ex) = (self.client.clone(), Arc::new(ex));
        let attempt = move || {
            let (client, ex) = (client.clone(), ex.clone());
            async move { read(send(&client, &ex).await?) }
        };
        self.outbound.call(safe_to_retry, attempt).await.map_err(|e| match e {
            CallError::Fault(Fault::Transient(why) | Fault::Broken(why)) => GatewayError::Unavailable(why),
            CallError::Fault(Fault::Refused(why)) => GatewayError::Rejected(why),
            CallError::Shed { why, retry_after } => {
                let secs = retry_after.as_millis().div_ceil(1000);
                GatewayError::Shed {
                    reason: why.as_str(),
                    retry_after_secs: u64::try_from(secs).unwrap_or(u64::MAX).max(1),
                }
            }
        })
    }

    async fn post_action(&self, payment_id: &str, action: &str) -> Result<(), GatewayError> {
        let ex =
            Exchange { method: Method::POST, url: self.url(&[payment_id, action])?, idempotency_key: None, body: None };
        self.call(ex, false, |_| Ok(())).await
    }
}

/// One attempt: the request, its status classified, the body read.
async fn send(client: &reqwest::Client, ex: &Exchange) -> Result<Answer, Fault> {
    let mut headers = HeaderMap::new();
    crate::telemetry::inject_context(&mut headers);
    let mut req = client.request(ex.method.clone(), ex.url.clone()).headers(headers);
    if let Some(key) = &ex.idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    if let Some(body) = &ex.body {
        req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
    }
    let res = req.send().await.map_err(|e| Fault::Transient(describe(&e)))?;
    let status = res.status();
    if ex.method == Method::GET && status == StatusCode::NOT_FOUND {
        return Ok(Answer::NotFound);
    }
    classify(status)?;
    let body = res.bytes().await.map_err(|e| Fault::Transient(describe(&e)))?;
    Ok(Answer::Body(body.to_vec()))
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

/// Maps a non-success status to the fault it means; `Ok` for 2xx.
fn classify(status: StatusCode) -> Result<(), Fault> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(Fault::Transient(format!("gateway answered {status}")))
    } else {
        Err(Fault::Refused(format!("gateway answered {status}")))
    }
}

/// A 2xx body as `T`; an unreadable one is a broken answer.
fn parse<T: DeserializeOwned>(answer: Answer) -> Result<T, Fault> {
    let Answer::Body(body) = answer else {
        return Err(Fault::Broken("gateway answered 404".into()));
    };
    serde_json::from_slice(&body).map_err(|_| Fault::Broken("unreadable gateway reply".into()))
}

fn json<T: Serialize>(body: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(body).map_err(|e| GatewayError::Rejected(e.to_string()))
}

fn charge_outcome(answer: Answer) -> Result<ChargeOutcome, Fault> {
    let r: ChargeReply = parse(answer)?;
    match r.status.as_str() {
        "succeeded" => Ok(ChargeOutcome::Succeeded { payment_id: r.id }),
        "declined" => Ok(ChargeOutcome::Declined {
            payment_id: r.id,
            code: r.decline_code.unwrap_or_else(|| "card_declined".into()),
        }),
        other => Err(Fault::Broken(format!("unexpected charge status {other:?}"))),
    }
}

fn payment_record(answer: Answer) -> Result<Option<PaymentRecord>, Fault> {
    if let Answer::NotFound = answer {
        return Ok(None);
    }
    let r: ChargeReply = parse(answer)?;
    match r.status.as_str() {
        "succeeded" => Ok(Some(PaymentRecord::Succeeded { payment_id: r.id })),
        "declined" => Ok(Some(PaymentRecord::Declined {
            payment_id: r.id,
            code: r.decline_code.unwrap_or_else(|| "card_declined".into()),
        })),
        "voided" | "refunded" => Ok(Some(PaymentRecord::Reversed { payment_id: r.id })),
        other => Err(Fault::Broken(format!("unexpected charge status {other:?}"))),
    }
}

impl PaymentGateway for HttpGateway {
    fn charge(&self, req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        async move {
            let body =
                ChargeBody { amount_minor: req.amount_minor, currency: &req.currency, card_number: req.card.expose() };
            let ex = Exchange {
                method: Method::POST,
                url: self.url(&[])?,
                idempotency_key: Some(req.idempotency_key.clone()),
                body: Some(json(&body)?),
            };
            self.call(ex, true, charge_outcome).await
        }
        .boxed()
    }

    fn lookup(&self, idempotency_key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        async move {
            let mut url = self.url(&[])?;
            url.query_pairs_mut().append_pair("idempotency_key", &idempotency_key);
            let ex = Exchange { method: Method::GET, url, idempotency_key: None, body: None };
            self.call(ex, true, payment_record).await
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
            let ex = Exchange {
                method: Method::POST,
                url: self.url(&[req.payment_id.as_str(), "refunds"])?,
                idempotency_key: Some(req.idempotency_key.clone()),
                body: Some(json(&body)?),
            };
            let r: RefundReply = self.call(ex, true, parse).await?;
            Ok(RefundReceipt { refund_id: r.id })
        }
        .boxed()
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.outbound.breaker_state())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> Policy {
        Policy {
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            failure_ratio: 0.5,
            min_calls: 1,
            window: Duration::from_secs(1),
            open_for: Duration::from_secs(1),
            half_open_probes: 1,
            max_concurrent: 1,
        }
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_ids() {
        let g = HttpGateway::new("http://127.0.0.1:9/pay", policy()).unwrap();
        assert_eq!(g.url(&[]).unwrap().as_str(), "http://127.0.0.1:9/pay/charges");
        assert_eq!(g.url(&["ch/1", "void"]).unwrap().as_str(), "http://127.0.0.1:9/pay/charges/ch%2F1/void");
        assert!(HttpGateway::new("ftp://x", policy()).is_err());
    }

    #[test]
    fn statuses_map_to_transient_or_final_faults() {
        assert!(classify(StatusCode::OK).is_ok());
        assert!(matches!(classify(StatusCode::BAD_GATEWAY), Err(Fault::Transient(_))));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS), Err(Fault::Transient(_))));
        assert!(matches!(classify(StatusCode::CONFLICT), Err(Fault::Refused(_))));
    }

    #[test]
    fn an_unreadable_reply_is_a_broken_answer_not_a_decline() {
        assert!(matches!(charge_outcome(Answer::Body(b"{not json".to_vec())), Err(Fault::Broken(_))));
        assert!(matches!(payment_record(Answer::NotFound), Ok(None)));
    }
}
