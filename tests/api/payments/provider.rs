//! A test payment provider: a real HTTP server on a free loopback port speaking the
//! protocol of `src/payments/http.rs`, with Stripe's idempotency (a key answers its first
//! outcome), scriptable per card and per call, counting what it did.
//!
//! Per card: [`DECLINED_CARD`](crate::helpers::DECLINED_CARD) is declined (`card_declined`),
//! any other succeeds. Per call: [`Provider::script`] queues behaviours for the next charge
//! requests, one each, before the card decides.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::helpers::DECLINED_CARD;

/// What the provider does with one charge request.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Answers this status with an error body, recording nothing (e.g. 500, 429).
    Fail(u16),
    /// Never answers (until long past any timeout), recording nothing.
    Hang,
    /// Charges as usual but answers 200 with a body that is not JSON.
    Malformed,
}

/// A charge as the provider remembers it.
#[derive(Debug, Clone)]
pub struct Charge {
    pub id: String,
    pub idempotency_key: String,
    pub status: &'static str,
    pub decline_code: Option<&'static str>,
}

#[derive(Default)]
struct Ledger {
    script: VecDeque<Step>,
    /// Idempotency key → the charge made under it.
    charges: HashMap<String, Charge>,
    /// Charge requests received (including failed and repeated ones).
    charge_requests: usize,
    lookups: usize,
}

type Shared = Arc<Mutex<Ledger>>;

pub struct Provider {
    /// Base URL for `payments.url`.
    pub url: String,
    ledger: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Provider {
    pub async fn start() -> Provider {
        let ledger = Shared::default();
        let router = Router::new()
            .route("/charges", post(charge).get(lookup))
            .route("/charges/{id}/{action}", post(action))
            .with_state(ledger.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind provider");
        let url = format!("http://{}", listener.local_addr().expect("provider addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Provider { url, ledger, server }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("provider ledger")
    }

    /// Queues `steps` for the next charge requests, one each.
    pub fn script(&self, steps: &[Step]) {
        self.ledger().script.extend(steps.iter().copied());
    }

    /// The charges made for `order_id` (under its own key or an attempt's `<id>:<n>`).
    pub fn charges_of(&self, order_id: &str) -> Vec<Charge> {
        let mut found: Vec<Charge> = self
            .ledger()
            .charges
            .values()
            .filter(|c| c.idempotency_key == order_id || c.idempotency_key.starts_with(&format!("{order_id}:")))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
        found
    }

    /// How many succeeded charges `order_id` has: exactly one for a paid order.
    pub fn successful_charges(&self, order_id: &str) -> usize {
        self.charges_of(order_id).iter().filter(|c| c.status == "succeeded").count()
    }

    /// Charge requests received so far, repeats and failures included.
    pub fn charge_requests(&self) -> usize {
        self.ledger().charge_requests
    }

    pub fn lookups(&self) -> usize {
        self.ledger().lookups
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(c: &Charge) -> Value {
    json!({ "id": c.id, "status": c.status, "decline_code": c.decline_code })
}

async fn charge(State(ledger): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let step = {
        let mut l = ledger.lock().expect("provider ledger");
        l.charge_requests += 1;
        l.script.pop_front()
    };
    match step {
        Some(Step::Fail(status)) => {
            let status = StatusCode::from_u16(status).expect("status");
            return (status, axum::Json(json!({ "error": "scripted failure" }))).into_response();
        }
        Some(Step::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(Step::Malformed) | None => {}
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": "Idempotency-Key required" })))
            .into_response();
    };
    if req["amount_minor"].as_i64().is_none() || req["currency"].as_str().is_none() {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": "amount and currency required" })))
            .into_response();
    }
    let declined = req["card_number"].as_str() == Some(DECLINED_CARD);
    let charge = {
        let mut l = ledger.lock().expect("provider ledger");
        l.charges
            .entry(key.clone())
            .or_insert_with(|| Charge {
                id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
                idempotency_key: key,
                status: if declined { "declined" } else { "succeeded" },
                decline_code: declined.then_some("card_declined"),
            })
            .clone()
    };
    if let Some(Step::Malformed) = step {
        return (StatusCode::OK, "{\"id\": \"ch_").into_response();
    }
    (StatusCode::OK, axum::Json(reply(&charge))).into_response()
}

async fn lookup(State(ledger): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut l = ledger.lock().expect("provider ledger");
    l.lookups += 1;
    match q.get("idempotency_key").and_then(|k| l.charges.get(k)) {
        Some(c) => axum::Json(reply(c)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn action(State(ledger): State<Shared>, Path((id, action)): Path<(String, String)>) -> StatusCode {
    let mut l = ledger.lock().expect("provider ledger");
    let Some(c) = l.charges.values_mut().find(|c| c.id == id) else {
        return StatusCode::NOT_FOUND;
    };
    match (c.status, action.as_str()) {
        ("succeeded", "void") => c.status = "voided",
        ("succeeded", "refund") => c.status = "refunded",
        ("voided", "void") | ("refunded", "refund") => {}
        _ => return StatusCode::CONFLICT,
    }
    StatusCode::OK
}
