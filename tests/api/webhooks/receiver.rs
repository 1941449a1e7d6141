//! A webhook receiver as a partner would write it: an axum server on port 0 that checks
//! `Orderly-Signature` with its own HMAC-SHA256 (built here from SHA-256, RFC 2104; not
//! orderly's code), answers 500 to the first `fail_first` requests (or to all, while
//! `always_fail`), then 200, and remembers every request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How old a signature's `t` may be before the receiver refuses it (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: String,
    pub event_type: String,
    pub content_type: String,
    pub body: Value,
    pub signature_ok: bool,
    pub answered: u16,
}

#[derive(Default)]
pub struct Receiver {
    pub secret: Mutex<String>,
    pub fail_first: AtomicUsize,
    pub always_fail: AtomicBool,
    /// While set, requests get no answer for a minute (a receiver that hangs).
    pub hang: AtomicBool,
    pub received: Mutex<Vec<Received>>,
    seen: AtomicUsize,
}

impl Receiver {
    /// Starts a receiver; returns it with its URL.
    pub async fn start(fail_first: usize) -> (Arc<Receiver>, String) {
        let receiver = Arc::new(Receiver { fail_first: AtomicUsize::new(fail_first), ..Default::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, format!("http://{addr}/hook"))
    }

    pub fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap() = secret.to_owned();
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    let secret = r.secret.lock().unwrap().clone();
    let signature_ok = verify(&header("orderly-signature"), &text, &secret, chrono::Utc::now().timestamp());
    let n = r.seen.fetch_add(1, Ordering::SeqCst);
    let fail = r.always_fail.load(Ordering::SeqCst) || n < r.fail_first.load(Ordering::SeqCst);
    let status = if fail { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
    r.received.lock().unwrap().push(Received {
        event_id: header("orderly-event-id"),
        event_type: header("orderly-event-type"),
        content_type: header("content-type"),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        signature_ok,
        answered: status.as_u16(),
    });
    status
}

/// Checks `t=<unix>,v1=<hex>` against `body` as a receiver does: the timestamp within the
/// tolerance, and some `v1` equal (in constant time) to HMAC-SHA256(secret, "t.body").
pub fn verify(header: &str, body: &str, secret: &str, now: i64) -> bool {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > TOLERANCE_SECS {
        return false;
    }
    let expected: String =
        hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    candidates
        .iter()
        .any(|c| c.len() == expected.len() && c.bytes().zip(expected.bytes()).fold(0, |a, (x, y)| a | (x ^ y)) == 0)
}

/// HMAC (RFC 2104) over SHA-256, block size 64.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().into()
}

#[test]
fn the_receivers_hmac_matches_rfc_4231_test_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
