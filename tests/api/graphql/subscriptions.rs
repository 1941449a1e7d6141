//! Subscriptions over `graphql-transport-ws` with a real WebSocket client: the owner
//! follows an order's events; another customer's order is NOT_FOUND; the staff feed is
//! FORBIDDEN to customers; a refused token is UNAUTHENTICATED.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::*;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql` with the `graphql-transport-ws` subprotocol and initialises with
/// `payload`; returns the socket after `connection_ack`.
async fn connect(app: &TestApp, payload: Value) -> Ws {
    let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    assert_eq!(res.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    send(&mut ws, json!({ "type": "connection_init", "payload": payload })).await;
    assert_eq!(next(&mut ws).await["type"], "connection_ack");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

/// The next protocol message (pings answered by the library are skipped).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["type"] == "ping" {
                    send(ws, json!({ "type": "pong" })).await;
                    continue;
                }
                return v;
            }
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => continue,
        }
    }
}

async fn subscribe(ws: &mut Ws, id: &str, query: &str, variables: Value) {
    send(ws, json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })).await;
}

const ORDER_EVENTS: &str = "subscription($id: ID!, $after: Long) { orderEvents(orderId: $id, lastEventId: $after) { seq type aggregateId data } }";

#[tokio::test]
async fn the_owner_receives_order_placed_then_order_paid() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let id = checkout(&app, &shop.customer, &shop.sku, None).await;
    let mut ws = connect(&app, json!({ "authorization": format!("Bearer {}", shop.customer) })).await;
    subscribe(&mut ws, "1", ORDER_EVENTS, json!({ "id": id, "after": 0 })).await;
    let placed = next(&mut ws).await;
    assert_eq!((placed["type"].as_str(), placed["id"].as_str()), (Some("next"), Some("1")), "{placed}");
    let event = &placed["payload"]["data"]["orderEvents"];
    assert_eq!((event["type"].as_str(), event["aggregateId"].as_str()), (Some("order.placed"), Some(id.as_str())));

    let pay = "mutation($id: ID!, $p: PaymentInput!) { payOrder(id: $id, payment: $p) { status } }";
    data(&app, Some(&shop.customer), pay, json!({ "id": id, "p": { "cardNumber": CARD } })).await;
    let paid = next(&mut ws).await;
    let event = &paid["payload"]["data"]["orderEvents"];
    assert_eq!(event["type"], "order.paid", "{paid}");
    assert!(event["seq"].as_i64() > placed["payload"]["data"]["orderEvents"]["seq"].as_i64());

    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
}

#[tokio::test]
async fn credentials_may_come_with_the_upgrade_request_instead() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let id = checkout(&app, &shop.customer, &shop.sku, None).await;
    let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    req.headers_mut().insert("authorization", format!("Bearer {}", shop.customer).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(next(&mut ws).await["type"], "connection_ack");
    subscribe(&mut ws, "a", ORDER_EVENTS, json!({ "id": id, "after": 0 })).await;
    assert_eq!(next(&mut ws).await["payload"]["data"]["orderEvents"]["type"], "order.placed");
}

#[tokio::test]
async fn another_customers_order_and_the_staff_feed_are_refused_by_the_service() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let (other, _, _) = app.register_customer("spy-gql@example.com").await;
    let id = checkout(&app, &shop.customer, &shop.sku, None).await;
    let mut ws = connect(&app, json!({ "authorization": format!("Bearer {other}") })).await;
    subscribe(&mut ws, "1", ORDER_EVENTS, json!({ "id": id })).await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{refused}");
    assert_eq!(next(&mut ws).await, json!({ "id": "1", "type": "complete" }));

    subscribe(&mut ws, "2", "subscription { events { type } }", json!({})).await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");

    let mut bad = connect(&app, json!({ "authorization": "Bearer nonsense" })).await;
    subscribe(&mut bad, "1", ORDER_EVENTS, json!({ "id": id })).await;
    let refused = next(&mut bad).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{refused}");
}

#[tokio::test]
async fn staff_follow_the_feed_narrowed_to_some_types() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let mut ws = connect(&app, json!({ "Authorization": format!("Bearer {}", shop.staff) })).await;
    subscribe(&mut ws, "f", "subscription { events(types: [\"order.paid\"]) { type aggregateId } }", json!({})).await;
    // Give the subscription time to attach before the events are published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = checkout(&app, &shop.customer, &shop.sku, Some(CARD)).await;
    let paid = next(&mut ws).await;
    assert_eq!(paid["payload"]["data"]["events"], json!({ "type": "order.paid", "aggregateId": id }));
    subscribe(&mut ws, "g", "subscription { events(types: [\"order.teleported\"]) { type } }", json!({})).await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
}
