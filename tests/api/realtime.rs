//! Live streams: Server-Sent Events and WebSocket over the real server, with real protocol
//! clients (`eventsource-stream` over reqwest, `tokio-tungstenite`).

mod authorization;
mod cross_replica;
mod shutdown;
mod slow_client;
mod sse;
mod ws;

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{SinkExt, Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{GOOD_CARD, TestApp};

/// How long a test waits for something that should come at once.
pub const WAIT: Duration = Duration::from_secs(15);

pub type SseStream = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A customer with a product to buy and a staff member.
pub struct Shop {
    pub staff: String,
    pub customer: String,
    pub customer_id: String,
    pub sku: String,
}

pub async fn shop(app: &TestApp) -> Shop {
    let staff = app.staff().await;
    let sku = format!("RT-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).to_uppercase();
    app.create_product(&staff, &sku, 1500, 10_000).await;
    let email = format!("rt-{}@example.com", uuid::Uuid::new_v4().simple());
    let (customer, customer_id, _) = app.register_customer(&email).await;
    Shop { staff, customer, customer_id, sku }
}

/// Places an unpaid order (`order.placed`); returns its id.
pub async fn pending_order(app: &TestApp, token: &str, sku: &str) -> String {
    let (status, body) = app.place_order(token, sku, 1, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Pays an order (`order.paid`).
pub async fn pay(app: &TestApp, token: &str, id: &str) {
    let (status, body) =
        app.post(&format!("/api/v1/orders/{id}/pay"), Some(token), &json!({ "card_number": GOOD_CARD })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `GET path` as an event stream (no client timeout: streams are long-lived).
pub async fn open_sse(app: &TestApp, path: &str, token: Option<&str>, last_event_id: Option<i64>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(app.url(path)).header("accept", "text/event-stream");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    req.send().await.expect("request")
}

/// Opens `path` and expects a 200 event stream.
pub async fn sse(app: &TestApp, path: &str, token: &str, last_event_id: Option<i64>) -> SseStream {
    let res = open_sse(app, path, Some(token), last_event_id).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    Box::pin(res.bytes_stream().eventsource())
}

/// The next event, within [`WAIT`].
pub async fn next_event(stream: &mut SseStream) -> Event {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
        .expect("a well-formed event")
}

/// An event's envelope (`data:`), checked against its `id:` and `event:` lines.
pub fn envelope(e: &Event) -> Value {
    let v: Value = serde_json::from_str(&e.data).expect("data is JSON");
    assert_eq!(e.id, v["seq"].as_i64().unwrap().to_string(), "id: is the seq");
    assert_eq!(e.event, v["type"].as_str().unwrap(), "event: is the type");
    v
}

/// Opens a WebSocket to `/api/v1/ws`, with `token` as a bearer header if given.
pub async fn ws_connect(app: &TestApp, token: Option<&str>) -> Ws {
    let url = format!("{}/api/v1/ws", app.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (ws, res) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

/// The next JSON message (pings and pongs skipped); panics on a close.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => continue,
        }
    }
}

/// Reads until the server's close frame; panics on anything but pings and pongs.
pub async fn next_close(ws: &mut Ws) -> CloseFrame {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a close in time");
        match msg {
            Some(Ok(Message::Close(Some(f)))) => return f,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Subscribes and expects `subscribed`.
pub async fn subscribe(ws: &mut Ws, topic: &str, last_event_id: Option<i64>) {
    let mut msg = json!({ "type": "subscribe", "topic": topic });
    if let Some(n) = last_event_id {
        msg["last_event_id"] = json!(n);
    }
    send(ws, msg).await;
    let answer = next_json(ws).await;
    assert_eq!(answer, json!({ "type": "subscribed", "topic": topic }));
}

/// The next `event` message: (topic, envelope).
pub async fn next_ws_event(ws: &mut Ws) -> (String, Value) {
    let m = next_json(ws).await;
    assert_eq!(m["type"], "event", "{m}");
    (m["topic"].as_str().unwrap().to_owned(), m["event"].clone())
}

/// The NATS server for cross-replica tests, or `None` (the test prints why it skips).
pub fn nats_url() -> Option<String> {
    std::env::var("ORDERLY_TEST_NATS_URL").ok().filter(|u| !u.is_empty())
}
