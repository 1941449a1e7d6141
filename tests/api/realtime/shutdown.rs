//! Shutdown ends live streams at once, so the HTTP drain does not wait its grace period.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;
use crate::helpers::Options;

#[tokio::test]
async fn shutdown_ends_sse_streams_and_closes_websockets_with_1001() {
    // A grace period far longer than the test's deadlines: only closing the streams
    // ourselves lets the drain finish in time.
    let config = vec![("http.shutdown_grace_ms", "120000".to_string())];
    let app = TestApp::spawn_with(Options { config, ..Default::default() }).await;
    let shop = shop(&app).await;
    let id = pending_order(&app, &shop.customer, &shop.sku).await;
    let mut stream = sse(&app, &format!("/api/v1/orders/{id}/events"), &shop.customer, Some(0)).await;
    assert_eq!(envelope(&next_event(&mut stream).await)["type"], "order.placed");
    let mut ws = ws_connect(&app, Some(&shop.staff)).await;
    subscribe(&mut ws, "feed", None).await;

    let stopping = tokio::spawn(app.stop());
    let end = tokio::time::timeout(WAIT, async {
        while let Some(item) = stream.next().await {
            item.expect("a clean end, not a broken stream");
        }
    });
    end.await.expect("the SSE stream ends when the server drains");
    let close = loop {
        // Events published before the drain may still come first.
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a close in time") {
            Some(Ok(Message::Close(Some(f)))) => break f,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Away);
    tokio::time::timeout(WAIT, stopping).await.expect("the drain does not wait for live streams").unwrap();
}
