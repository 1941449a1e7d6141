//! Who may follow what: the same rules as REST, over SSE and WebSocket.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;
use crate::helpers::assert_problem;

async fn problem(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn a_customer_cannot_follow_another_customers_order_nor_the_staff_feed() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let theirs = pending_order(&app, &shop.customer, &shop.sku).await;
    let (mallory, _, _) = app.register_customer("mallory@example.com").await;

    // SSE: the same 404 as GET /orders/{id}, and 403 for the feed.
    let (status, body) =
        problem(open_sse(&app, &format!("/api/v1/orders/{theirs}/events"), Some(&mallory), Some(0)).await).await;
    let (rest_status, rest_body) = app.get(&format!("/api/v1/orders/{theirs}"), Some(&mallory)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    assert_eq!((status, &body["detail"]), (rest_status, &rest_body["detail"]), "indistinguishable from REST");
    let (status, body) = problem(open_sse(&app, "/api/v1/events", Some(&mallory), None).await).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // WebSocket: errors with the same kinds; the connection stays usable.
    let mut ws = ws_connect(&app, Some(&mallory)).await;
    let topic = format!("order:{theirs}");
    send(&mut ws, json!({ "type": "subscribe", "topic": topic, "last_event_id": 0 })).await;
    let m = next_json(&mut ws).await;
    assert_eq!((&m["type"], &m["code"], &m["topic"]), (&json!("error"), &json!("not_found"), &json!(topic)));
    send(&mut ws, json!({ "type": "subscribe", "topic": "feed" })).await;
    let m = next_json(&mut ws).await;
    assert_eq!((&m["type"], &m["code"]), (&json!("error"), &json!("forbidden")));
    // Nothing of the other customer's order reaches mallory.
    let mine = pending_order(&app, &mallory, &shop.sku).await;
    subscribe(&mut ws, &format!("order:{mine}"), Some(0)).await;
    pay(&app, &shop.customer, &theirs).await;
    pay(&app, &mallory, &mine).await;
    for want in ["order.placed", "order.paid"] {
        let (t, e) = next_ws_event(&mut ws).await;
        assert_eq!(t, format!("order:{mine}"));
        assert_eq!((e["type"].as_str(), e["aggregate_id"].as_str()), (Some(want), Some(mine.as_str())));
    }
}

#[tokio::test]
async fn staff_may_follow_any_order_and_the_feed() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let id = pending_order(&app, &shop.customer, &shop.sku).await;
    let mut stream = sse(&app, &format!("/api/v1/orders/{id}/events"), &shop.staff, Some(0)).await;
    assert_eq!(envelope(&next_event(&mut stream).await)["type"], "order.placed");
    let mut ws = ws_connect(&app, Some(&shop.staff)).await;
    subscribe(&mut ws, "feed", None).await;
    subscribe(&mut ws, &format!("order:{id}"), None).await;
}

#[tokio::test]
async fn unauthenticated_clients_get_401_over_sse_and_close_1008_over_websocket() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let id = pending_order(&app, &shop.customer, &shop.sku).await;

    let res = open_sse(&app, &format!("/api/v1/orders/{id}/events"), None, None).await;
    assert!(res.headers().get("www-authenticate").is_some());
    let (status, body) = problem(res).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, body) = problem(open_sse(&app, "/api/v1/events", Some("not-a-token"), None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A refused header credential: no upgrade at all.
    let url = format!("{}/api/v1/ws", app.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer not-a-token".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected a 401 refusal, got {other:?}"),
    }

    // No credential: the first message must authenticate.
    let mut ws = ws_connect(&app, None).await;
    send(&mut ws, json!({ "type": "subscribe", "topic": format!("order:{id}") })).await;
    assert_eq!(next_close(&mut ws).await.code, CloseCode::Policy);
    let mut ws = ws_connect(&app, None).await;
    send(&mut ws, json!({ "type": "auth", "token": "not-a-token" })).await;
    assert_eq!(next_close(&mut ws).await.code, CloseCode::Policy);

    // A good token in the first message works like the header.
    let mut ws = ws_connect(&app, None).await;
    send(&mut ws, json!({ "type": "auth", "token": shop.customer })).await;
    subscribe(&mut ws, &format!("order:{id}"), Some(0)).await;
    let (_, e) = next_ws_event(&mut ws).await;
    assert_eq!(e["type"], "order.placed");
}
