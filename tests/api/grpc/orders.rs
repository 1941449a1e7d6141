//! OrderService: checkout, reads, transitions and the order's event stream.

use std::time::Duration;

use orderly::grpc::pb;
use tonic::Code;

use super::{assert_status, authed, order_of, orders};
use crate::helpers::TestApp;

#[tokio::test]
async fn a_customer_checks_out_lists_and_cancels_over_grpc_and_stock_follows() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let product = app.create_product(&staff, "GRPC-ORD-1", 1250, 10).await;
    let product_id = product["id"].as_str().unwrap();
    let (customer, customer_id, _) = app.register_customer("grpc-buyer@example.com").await;
    let mut client = orders(&app).await;

    let order = client.place_order(authed(order_of("GRPC-ORD-1", 3, None), &customer)).await.unwrap().into_inner();
    assert_eq!(order.status(), pb::OrderStatus::PendingPayment);
    assert_eq!(order.customer_id, customer_id);
    assert_eq!((order.total_minor, order.currency.as_str()), (3750, "USD"));
    assert_eq!(order.line_items.len(), 1);
    assert_eq!((order.line_items[0].quantity, order.line_items[0].unit_price_minor), (3, 1250));
    assert!(order.reserved_until.is_some() && order.paid_at.is_none());
    assert_eq!(app.stock(&staff, product_id).await, (10, 3, 7));

    let listed = client.list_orders(authed(pb::ListOrdersRequest::default(), &customer)).await.unwrap().into_inner();
    assert_eq!(listed.orders.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), [order.id.as_str()]);

    let cancelled = client
        .cancel_order(authed(pb::OrderActionRequest { id: order.id.clone() }, &customer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), pb::OrderStatus::Cancelled);
    assert_eq!(app.stock(&staff, product_id).await, (10, 0, 10));
    let again =
        client.cancel_order(authed(pb::OrderActionRequest { id: order.id.clone() }, &customer)).await.unwrap_err();
    assert_status(&again, Code::FailedPrecondition, "invalid-transition");

    let (_, rest) = app.get(&format!("/api/v1/orders/{}", order.id), Some(&customer)).await;
    assert_eq!(rest["status"], "cancelled", "REST sees what gRPC did");
}

#[tokio::test]
async fn a_paid_order_is_shipped_and_delivered_by_staff_only() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "GRPC-SHIP", 100, 5).await;
    let (customer, _, _) = app.register_customer("grpc-ship@example.com").await;
    let mut client = orders(&app).await;
    let order = client
        .place_order(authed(order_of("GRPC-SHIP", 1, Some("4242424242424242")), &customer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.status(), pb::OrderStatus::Paid);
    assert_eq!(order.payment_last4, "4242");

    let ship = pb::ShipOrderRequest {
        id: order.id.clone(),
        carrier: Some("UPS".into()),
        tracking_number: Some("1Z999".into()),
    };
    assert_status(
        &client.ship_order(authed(ship.clone(), &customer)).await.unwrap_err(),
        Code::PermissionDenied,
        "forbidden",
    );
    let bad = pb::ShipOrderRequest { tracking_number: Some("no!pe".into()), ..ship.clone() };
    assert_status(
        &client.ship_order(authed(bad, &staff)).await.unwrap_err(),
        Code::InvalidArgument,
        "validation-error",
    );
    let shipped = client.ship_order(authed(ship, &staff)).await.unwrap().into_inner();
    assert_eq!((shipped.status(), shipped.carrier.as_str()), (pb::OrderStatus::Shipped, "UPS"));
    let action = pb::OrderActionRequest { id: order.id.clone() };
    assert_status(
        &client.refund_order(authed(action.clone(), &staff)).await.unwrap_err(),
        Code::FailedPrecondition,
        "invalid-transition",
    );
    assert_status(
        &client.deliver_order(authed(action.clone(), &customer)).await.unwrap_err(),
        Code::PermissionDenied,
        "forbidden",
    );
    let delivered = client.deliver_order(authed(action, &staff)).await.unwrap().into_inner();
    assert_eq!(delivered.status(), pb::OrderStatus::Delivered);
    assert!(delivered.delivered_at.is_some());
}

#[tokio::test]
async fn another_customers_order_is_not_found_for_reads_actions_and_streams() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "GRPC-MINE", 100, 5).await;
    let (alice, _, _) = app.register_customer("grpc-alice@example.com").await;
    let (bob, _, _) = app.register_customer("grpc-bob@example.com").await;
    let mut client = orders(&app).await;
    let order = client.place_order(authed(order_of("GRPC-MINE", 1, None), &alice)).await.unwrap().into_inner();

    let get = client.get_order(authed(pb::GetOrderRequest { id: order.id.clone() }, &bob)).await.unwrap_err();
    assert_status(&get, Code::NotFound, "not-found");
    let cancel = client.cancel_order(authed(pb::OrderActionRequest { id: order.id.clone() }, &bob)).await.unwrap_err();
    assert_status(&cancel, Code::NotFound, "not-found");
    let watch = pb::StreamOrderEventsRequest { order_id: order.id.clone(), after_seq: Some(0) };
    let stream = client.stream_order_events(authed(watch, &bob)).await.unwrap_err();
    assert_status(&stream, Code::NotFound, "not-found");
    let listed = client.list_orders(authed(pb::ListOrdersRequest::default(), &bob)).await.unwrap().into_inner();
    assert!(listed.orders.is_empty());
    let theirs = pb::ListOrdersRequest { customer_id: Some(order.customer_id.clone()), ..Default::default() };
    assert_status(&client.list_orders(authed(theirs, &bob)).await.unwrap_err(), Code::PermissionDenied, "forbidden");

    let still = client.get_order(authed(pb::GetOrderRequest { id: order.id }, &alice)).await.unwrap().into_inner();
    assert_eq!(still.status(), pb::OrderStatus::PendingPayment, "Bob's cancel changed nothing");
}

#[tokio::test]
async fn bad_checkouts_are_invalid_argument_or_failed_precondition_and_reserve_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let product = app.create_product(&staff, "GRPC-BAD", 100, 2).await;
    let product_id = product["id"].as_str().unwrap();
    let (customer, _, _) = app.register_customer("grpc-bad@example.com").await;
    let mut client = orders(&app).await;

    let zero = client.place_order(authed(order_of("GRPC-BAD", 0, None), &customer)).await.unwrap_err();
    assert_status(&zero, Code::InvalidArgument, "validation-error");
    assert!(zero.message().contains("line_items[0].quantity"), "{}", zero.message());
    let address = pb::PlaceOrderRequest { shipping_address_json: "{not json".into(), ..order_of("GRPC-BAD", 1, None) };
    assert_status(
        &client.place_order(authed(address, &customer)).await.unwrap_err(),
        Code::InvalidArgument,
        "validation-error",
    );
    let short = client.place_order(authed(order_of("GRPC-BAD", 3, None), &customer)).await.unwrap_err();
    assert_status(&short, Code::FailedPrecondition, "insufficient-stock");
    let details: serde_json::Value =
        serde_json::from_str(short.metadata().get("orderly-error-details").unwrap().to_str().unwrap()).unwrap();
    assert_eq!(details["available"], 2);
    let declined =
        client.place_order(authed(order_of("GRPC-BAD", 1, Some("4000000000000002")), &customer)).await.unwrap_err();
    assert_status(&declined, Code::FailedPrecondition, "payment-declined");
    let anonymous = client.place_order(order_of("GRPC-BAD", 1, None)).await.unwrap_err();
    assert_status(&anonymous, Code::Unauthenticated, "unauthenticated");

    // Only the declined checkout holds stock (its order stays payable); nothing else reserved.
    assert_eq!(app.stock(&staff, product_id).await, (2, 1, 1));
    let listed = client.list_orders(authed(pb::ListOrdersRequest::default(), &customer)).await.unwrap().into_inner();
    assert_eq!(listed.orders.len(), 1);
}

#[tokio::test]
async fn the_order_stream_replays_and_delivers_the_orders_events_then_ends_on_drain() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    app.create_product(&staff, "GRPC-STREAM", 100, 5).await;
    let (customer, _, _) = app.register_customer("grpc-stream@example.com").await;
    let mut client = orders(&app).await;
    let order = client.place_order(authed(order_of("GRPC-STREAM", 1, None), &customer)).await.unwrap().into_inner();

    let watch = pb::StreamOrderEventsRequest { order_id: order.id.clone(), after_seq: Some(0) };
    let mut stream = client.stream_order_events(authed(watch, &customer)).await.unwrap().into_inner();
    let placed = next_event(&mut stream).await.unwrap().unwrap();
    assert_eq!((placed.r#type.as_str(), placed.aggregate_id.as_str()), ("order.placed", order.id.as_str()));
    assert!(placed.seq > 0);
    let data: serde_json::Value = serde_json::from_str(&placed.data_json).unwrap();
    assert!(data.is_object(), "{data}");

    client.cancel_order(authed(pb::OrderActionRequest { id: order.id.clone() }, &customer)).await.unwrap();
    let cancelled = next_event(&mut stream).await.unwrap().unwrap();
    assert_eq!(cancelled.r#type, "order.cancelled");
    assert!(cancelled.seq > placed.seq);

    let stopping = tokio::spawn(app.stop());
    let end = next_event(&mut stream).await;
    assert!(matches!(end, Ok(None)), "the stream ends cleanly (OK) on drain: {end:?}");
    tokio::time::timeout(Duration::from_secs(20), stopping).await.unwrap().unwrap();
}

/// The stream's next message, waiting at most 20 s.
async fn next_event(s: &mut tonic::Streaming<pb::OrderEvent>) -> Result<Option<pb::OrderEvent>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(20), s.message()).await.expect("an event in time")
}
