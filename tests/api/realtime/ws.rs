//! WebSocket: live delivery, unsubscribe, ping/pong, close codes.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;
use crate::helpers::Options;

#[tokio::test]
async fn the_owner_sees_order_placed_then_order_paid_over_websocket() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let id = pending_order(&app, &shop.customer, &shop.sku).await;
    let mut ws = ws_connect(&app, Some(&shop.customer)).await;
    let topic = format!("order:{id}");
    subscribe(&mut ws, &topic, Some(0)).await;
    let (t, placed) = next_ws_event(&mut ws).await;
    assert_eq!((t.as_str(), placed["type"].as_str()), (topic.as_str(), Some("order.placed")));
    assert_eq!(placed["data"]["customer_id"], shop.customer_id.as_str());

    pay(&app, &shop.customer, &id).await;
    let (t, paid) = next_ws_event(&mut ws).await;
    assert_eq!((t.as_str(), paid["type"].as_str()), (topic.as_str(), Some("order.paid")));
    assert!(paid["seq"].as_i64() > placed["seq"].as_i64());
}

#[tokio::test]
async fn after_unsubscribing_a_topic_its_events_stop_arriving() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let first = pending_order(&app, &shop.customer, &shop.sku).await;
    let second = pending_order(&app, &shop.customer, &shop.sku).await;
    let mut ws = ws_connect(&app, Some(&shop.customer)).await;
    subscribe(&mut ws, &format!("order:{first}"), Some(0)).await;
    assert_eq!(next_ws_event(&mut ws).await.1["type"], "order.placed");
    send(&mut ws, json!({ "type": "unsubscribe", "topic": format!("order:{first}") })).await;
    assert_eq!(next_json(&mut ws).await, json!({ "type": "unsubscribed", "topic": format!("order:{first}") }));
    subscribe(&mut ws, &format!("order:{second}"), Some(0)).await;
    let (_, placed) = next_ws_event(&mut ws).await;
    assert_eq!(
        (placed["type"].as_str(), placed["aggregate_id"].as_str()),
        (Some("order.placed"), Some(second.as_str()))
    );

    // The hub delivers in publish order: had the first order's payment been delivered, it
    // would arrive before the second's.
    pay(&app, &shop.customer, &first).await;
    pay(&app, &shop.customer, &second).await;
    let (t, e) = next_ws_event(&mut ws).await;
    assert_eq!(t, format!("order:{second}"));
    assert_eq!((e["type"].as_str(), e["aggregate_id"].as_str()), (Some("order.paid"), Some(second.as_str())));

    send(&mut ws, json!({ "type": "unsubscribe", "topic": "feed" })).await;
    let m = next_json(&mut ws).await;
    assert_eq!((&m["type"], &m["code"]), (&json!("error"), &json!("not_found")));
    send(&mut ws, json!({ "type": "dance" })).await;
    let m = next_json(&mut ws).await;
    assert_eq!((&m["type"], &m["code"]), (&json!("error"), &json!("bad_request")));
}

#[tokio::test]
async fn pings_are_answered_and_the_server_pings_every_keepalive() {
    let app =
        TestApp::spawn_with(Options { config: vec![("realtime.keepalive_secs", "1".into())], ..Default::default() })
            .await;
    let shop = shop(&app).await;
    let mut ws = ws_connect(&app, Some(&shop.customer)).await;
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    let mut answered = false;
    let mut pinged = false;
    while !(answered && pinged) {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time").unwrap().unwrap() {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"are you there");
                answered = true;
            }
            Message::Ping(_) => pinged = true,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn oversized_and_binary_messages_close_with_1009_and_1003() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let mut ws = ws_connect(&app, Some(&shop.customer)).await;
    let huge = format!("{{\"type\":\"subscribe\",\"topic\":\"{}\"}}", "x".repeat(40 * 1024));
    ws.send(Message::Text(huge.into())).await.unwrap();
    assert_eq!(next_close(&mut ws).await.code, CloseCode::Size);

    let mut ws = ws_connect(&app, Some(&shop.customer)).await;
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next_close(&mut ws).await.code, CloseCode::Unsupported);
}
