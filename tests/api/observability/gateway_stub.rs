//! A payment gateway stub speaking the protocol of `src/payments/http.rs`, on a free
//! loopback port, recording every request it receives (with its `traceparent`).
//!
//! Cards: [`DECLINED_CARD`](crate::helpers::DECLINED_CARD) is declined (`card_declined`),
//! [`OUTAGE_CARD`] gets a 503 and is not recorded (an outage before the charge), any other
//! succeeds. Partial refunds (`POST /charges/{id}/refunds`) are idempotent per key and
//! refused (409) beyond the charge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::post;
use serde_json::{Value, json};

use crate::helpers::DECLINED_CARD;

/// Answered with 503 before anything is recorded.
pub const OUTAGE_CARD: &str = "4000000000000259";

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
    pub card_number: Option<String>,
}

#[derive(Default)]
struct Ledger {
    /// Idempotency key → charge reply.
    charges: HashMap<String, Value>,
    /// Idempotency key → partial refund reply.
    refunds: HashMap<String, Value>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Ledger>>;

pub struct GatewayStub {
    /// Base URL to configure as `payments.url`.
    pub url: String,
    ledger: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl GatewayStub {
    pub async fn start() -> GatewayStub {
        let ledger = Shared::default();
        let router = Router::new()
            .route("/charges", post(charge).get(lookup))
            .route("/charges/{id}/refunds", post(partial_refund))
            .route("/charges/{id}/{action}", post(action))
            .with_state(ledger.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let url = format!("http://{}", listener.local_addr().expect("stub addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        GatewayStub { url, ledger, server }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.ledger.lock().expect("stub ledger").seen.clone()
    }
}

impl Drop for GatewayStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn record(ledger: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, card_number: Option<String>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    ledger.lock().expect("stub ledger").seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        traceparent: header("traceparent"),
        idempotency_key: header("idempotency-key"),
        card_number,
    });
}

async fn charge(
    State(ledger): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let card = req["card_number"].as_str().map(str::to_owned);
    record(&ledger, method, &uri, &headers, card.clone());
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": "Idempotency-Key required" })));
    };
    if req["amount_minor"].as_i64().is_none() || req["currency"].as_str().is_none() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": "amount_minor and currency required" })),
        );
    }
    if card.as_deref() == Some(OUTAGE_CARD) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "error": "down" })));
    }
    let mut l = ledger.lock().expect("stub ledger");
    let reply = l
        .charges
        .entry(key)
        .or_insert_with(|| {
            let id = format!("ch_{}", uuid::Uuid::new_v4().simple());
            if card.as_deref() == Some(DECLINED_CARD) {
                json!({ "id": id, "status": "declined", "decline_code": "card_declined" })
            } else {
                json!({ "id": id, "status": "succeeded", "amount_minor": req["amount_minor"], "refunded_minor": 0 })
            }
        })
        .clone();
    (StatusCode::OK, axum::Json(reply))
}

async fn lookup(
    State(ledger): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    record(&ledger, method, &uri, &headers, None);
    let l = ledger.lock().expect("stub ledger");
    match q.get("idempotency_key").and_then(|k| l.charges.get(k)) {
        Some(c) => (StatusCode::OK, axum::Json(c.clone())),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no such charge" }))),
    }
}

async fn action(
    State(ledger): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> (StatusCode, axum::Json<Value>) {
    record(&ledger, method, &uri, &headers, None);
    let status = match action.as_str() {
        "void" => "voided",
        "refund" => "refunded",
        _ => return (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no such action" }))),
    };
    let mut l = ledger.lock().expect("stub ledger");
    match l.charges.values_mut().find(|c| c["id"] == id.as_str()) {
        Some(c) if c["status"] == "succeeded" => {
            c["status"] = json!(status);
            (StatusCode::OK, axum::Json(c.clone()))
        }
        Some(_) => (StatusCode::CONFLICT, axum::Json(json!({ "error": "not succeeded" }))),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no such charge" }))),
    }
}

async fn partial_refund(
    State(ledger): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    record(&ledger, method, &uri, &headers, None);
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (Some(key), Some(amount)) =
        (headers.get("idempotency-key").and_then(|v| v.to_str().ok()), req["amount_minor"].as_i64())
    else {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({ "error": "Idempotency-Key and amount_minor" })));
    };
    let mut l = ledger.lock().expect("stub ledger");
    if let Some(r) = l.refunds.get(key) {
        return (StatusCode::OK, axum::Json(r.clone()));
    }
    let Some(charge) = l.charges.values_mut().find(|c| c["id"] == id.as_str()) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no such charge" })));
    };
    let refunded = charge["refunded_minor"].as_i64().unwrap_or(0) + amount;
    if charge["status"] != "succeeded" || amount < 1 || Some(refunded) > charge["amount_minor"].as_i64() {
        return (StatusCode::CONFLICT, axum::Json(json!({ "error": "beyond the charge" })));
    }
    charge["refunded_minor"] = json!(refunded);
    if Some(refunded) == charge["amount_minor"].as_i64() {
        charge["status"] = json!("refunded");
    }
    let reply = json!({ "id": format!("re_{}", uuid::Uuid::new_v4().simple()), "amount_minor": amount });
    l.refunds.insert(key.to_owned(), reply.clone());
    (StatusCode::CREATED, axum::Json(reply))
}
