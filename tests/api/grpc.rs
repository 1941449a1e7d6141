//! gRPC (`orderly.v1` on its own port) through the generated tonic clients: the same
//! scenarios and rules as REST, the status mapping, health, the order stream, deadlines.

mod catalog;
mod orders;
mod server;

use orderly::grpc::pb;
use orderly::grpc::pb::catalog_service_client::CatalogServiceClient;
use orderly::grpc::pb::inventory_service_client::InventoryServiceClient;
use orderly::grpc::pb::order_service_client::OrderServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::helpers::TestApp;

pub async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(app.grpc_base.clone()).unwrap().connect().await.unwrap()
}

pub async fn catalog(app: &TestApp) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::new(channel(app).await)
}

pub async fn inventory(app: &TestApp) -> InventoryServiceClient<Channel> {
    InventoryServiceClient::new(channel(app).await)
}

pub async fn orders(app: &TestApp) -> OrderServiceClient<Channel> {
    OrderServiceClient::new(channel(app).await)
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// Asserts the status code and our stable code (`orderly-error-code`).
pub fn assert_status(status: &Status, code: Code, stable: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let got = status.metadata().get("orderly-error-code").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(got.as_deref(), Some(stable), "{status:?}");
}

/// One line of `quantity` units of `sku`, paid with `card` if given.
pub fn order_of(sku: &str, quantity: i64, card: Option<&str>) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        line_items: vec![pb::LineItemRequest { sku: sku.into(), quantity }],
        card_number: card.unwrap_or_default().into(),
        ..Default::default()
    }
}
