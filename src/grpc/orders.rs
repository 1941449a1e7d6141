//! `orderly.v1.OrderService`: thin adapters over the orders service functions REST calls
//! (`checkout`, `orders::get`/`list`, `lifecycle`), and the server-streaming
//! `StreamOrderEvents` over `realtime` (the same topics, authorization, replay and hub as
//! SSE and WebSocket). Parse the message, call with the caller's principal, convert.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::caller::principal;
use super::pb;
use super::status::{ERROR_CODE, invalid, opt_uuid, uuid};
use super::timestamp;
use crate::events::bus::Envelope;
use crate::orders::cart::LineItemRequest;
use crate::orders::shipping::{Carrier, TrackingNumber};
use crate::orders::{self, CheckoutRequest, Order, OrderFilter, OrderStatus, PaymentRequest};
use crate::orders::{ShipRequest, checkout, lifecycle};
use crate::realtime::{Live, Subscriptions, Topic};
use crate::services::App;

/// The order service over the shared [`App`].
#[derive(Clone)]
pub struct OrdersApi {
    app: Arc<App>,
}

impl OrdersApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

fn status_out(s: OrderStatus) -> pb::OrderStatus {
    match s {
        OrderStatus::PendingPayment => pb::OrderStatus::PendingPayment,
        OrderStatus::Paid => pb::OrderStatus::Paid,
        OrderStatus::Shipped => pb::OrderStatus::Shipped,
        OrderStatus::Delivered => pb::OrderStatus::Delivered,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        OrderStatus::Failed => pb::OrderStatus::Failed,
        OrderStatus::Refunded => pb::OrderStatus::Refunded,
    }
}

fn status_in(raw: i32) -> Result<Option<OrderStatus>, Status> {
    Ok(match pb::OrderStatus::try_from(raw).map_err(|_| invalid("status", "unknown order status"))? {
        pb::OrderStatus::Unspecified => None,
        pb::OrderStatus::PendingPayment => Some(OrderStatus::PendingPayment),
        pb::OrderStatus::Paid => Some(OrderStatus::Paid),
        pb::OrderStatus::Shipped => Some(OrderStatus::Shipped),
        pb::OrderStatus::Delivered => Some(OrderStatus::Delivered),
        pb::OrderStatus::Cancelled => Some(OrderStatus::Cancelled),
        pb::OrderStatus::Failed => Some(OrderStatus::Failed),
        pb::OrderStatus::Refunded => Some(OrderStatus::Refunded),
    })
}

pub fn order_out(o: Order) -> pb::Order {
    pb::Order {
        id: o.id.to_string(),
        number: o.number,
        customer_id: o.customer_id.to_string(),
        status: status_out(o.status).into(),
        currency: o.currency,
        subtotal_minor: o.subtotal_minor,
        discount_minor: o.discount_minor,
        total_minor: o.total_minor,
        line_items: o
            .line_items
            .into_iter()
            .map(|l| pb::LineItem {
                line_no: l.line_no,
                product_id: l.product_id.map(|p| p.to_string()).unwrap_or_default(),
                sku: l.sku,
                name: l.name,
                unit_price_minor: l.unit_price_minor,
                quantity: l.quantity,
                discount_minor: l.discount_minor,
                line_total_minor: l.line_total_minor,
            })
            .collect(),
        payment_last4: o.payment_last4.unwrap_or_default(),
        failure_reason: o.failure_reason.unwrap_or_default(),
        refunded_minor: o.refunded_minor,
        carrier: o.carrier.unwrap_or_default(),
        tracking_number: o.tracking_number.unwrap_or_default(),
        shipping_address_json: o.shipping_address.map(|a| a.to_string()).unwrap_or_default(),
        placed_at: Some(timestamp(o.placed_at)),
        paid_at: o.paid_at.map(timestamp),
        shipped_at: o.shipped_at.map(timestamp),
        delivered_at: o.delivered_at.map(timestamp),
        closed_at: o.closed_at.map(timestamp),
        reserved_until: o.reserved_until.map(timestamp),
        updated_at: Some(timestamp(o.updated_at)),
    }
}

fn event_out(e: &Envelope) -> pb::OrderEvent {
    pb::OrderEvent {
        seq: e.seq,
        id: e.id.to_string(),
        r#type: e.event_type.clone(),
        version: e.version,
        aggregate_id: e.aggregate_id.to_string(),
        occurred_at: chrono::DateTime::parse_from_rfc3339(&e.occurred_at).ok().map(|t| timestamp(t.to_utc())),
        data_json: e.data.to_string(),
    }
}

/// The checkout request as the service reads it. The idempotency key comes from the
/// message or, failing that, the `idempotency-key` metadata entry (as REST's header).
fn checkout_request(
    metadata: &tonic::metadata::MetadataMap,
    m: pb::PlaceOrderRequest,
) -> Result<CheckoutRequest, Status> {
    let shipping_address = match m.shipping_address_json.trim() {
        "" => None,
        text => Some(serde_json::from_str(text).map_err(|_| invalid("shipping_address", "must be a JSON object"))?),
    };
    let idempotency_key = if m.idempotency_key.is_empty() {
        // Not ASCII text: an empty key, which the service refuses naming the field.
        metadata.get("idempotency-key").map(|v| v.to_str().unwrap_or_default().to_owned())
    } else {
        Some(m.idempotency_key)
    };
    Ok(CheckoutRequest {
        line_items: m.line_items.into_iter().map(|l| LineItemRequest { sku: l.sku, quantity: l.quantity }).collect(),
        payment: (!m.card_number.is_empty()).then_some(PaymentRequest { card_number: m.card_number }),
        shipping_address,
        idempotency_key,
    })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::OrderEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::order_service_server::OrderService for OrdersApi {
    async fn place_order(&self, mut req: Request<pb::PlaceOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let principal = principal(&mut req)?;
        let (metadata, _, m) = req.into_parts();
        let checkout = checkout_request(&metadata, m)?;
        Ok(Response::new(order_out(checkout::place_order(&self.app.orders, &principal, checkout).await?)))
    }

    async fn get_order(&self, mut req: Request<pb::GetOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let principal = principal(&mut req)?;
        let id = uuid("id", &req.get_ref().id)?;
        Ok(Response::new(order_out(orders::get(&self.app.orders, &principal, id).await?)))
    }

    async fn list_orders(
        &self,
        mut req: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let filter = OrderFilter {
            status: status_in(m.status)?,
            customer_id: opt_uuid("customer_id", m.customer_id.as_deref())?,
            number: m.number,
            limit: (m.limit != 0).then_some(m.limit),
            cursor: (!m.cursor.is_empty()).then_some(m.cursor),
            ..OrderFilter::default()
        };
        let page = orders::list(&self.app.orders, &principal, &filter).await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: page.items.into_iter().map(order_out).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn cancel_order(&self, mut req: Request<pb::OrderActionRequest>) -> Result<Response<pb::Order>, Status> {
        let principal = principal(&mut req)?;
        let id = uuid("id", &req.get_ref().id)?;
        Ok(Response::new(order_out(lifecycle::cancel(&self.app.orders, &principal, id).await?)))
    }

    async fn ship_order(&self, mut req: Request<pb::ShipOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let id = uuid("id", &m.id)?;
        let carrier = m.carrier.as_deref().map(Carrier::parse).transpose().map_err(|e| invalid("carrier", &e))?;
        let tracking_number = m
            .tracking_number
            .as_deref()
            .map(TrackingNumber::parse)
            .transpose()
            .map_err(|e| invalid("tracking_number", &e))?;
        let ship = ShipRequest { carrier, tracking_number };
        Ok(Response::new(order_out(lifecycle::ship(&self.app.orders, &principal, id, ship).await?)))
    }

    async fn deliver_order(&self, mut req: Request<pb::OrderActionRequest>) -> Result<Response<pb::Order>, Status> {
        let principal = principal(&mut req)?;
        let id = uuid("id", &req.get_ref().id)?;
        Ok(Response::new(order_out(lifecycle::deliver(&self.app.orders, &principal, id).await?)))
    }

    async fn refund_order(&self, mut req: Request<pb::OrderActionRequest>) -> Result<Response<pb::Order>, Status> {
        let principal = principal(&mut req)?;
        let id = uuid("id", &req.get_ref().id)?;
        Ok(Response::new(order_out(lifecycle::refund(&self.app.orders, &principal, id).await?)))
    }

    type StreamOrderEventsStream = EventStream;

    async fn stream_order_events(
        &self,
        mut req: Request<pb::StreamOrderEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let principal = principal(&mut req)?;
        let m = req.into_inner();
        let id = uuid("order_id", &m.order_id)?;
        let mut subs = self.app.realtime.subscriptions();
        subs.add(&principal, Topic::order(id), m.after_seq).await?;
        Ok(Response::new(Box::pin(events(subs, self.app.drain_signal()))))
    }
}

/// The events of `subs` until the server drains or the hub closes (the stream ends: OK),
/// the client lags too far behind (ABORTED `lagged`: resume with `after_seq`), or a replay
/// read fails (its status).
fn events(
    subs: Subscriptions,
    drain: watch::Receiver<bool>,
) -> impl Stream<Item = Result<pb::OrderEvent, Status>> + Send {
    subs.until_drained(drain).map(|item| match item {
        Ok(Live::Event(d)) => Ok(event_out(&d.event)),
        Ok(Live::Lagged) => {
            tracing::info!(transport = "grpc", "a live client fell behind the hub; its stream ends");
            let mut status = Status::aborted("the stream fell too far behind; resume with after_seq");
            status.metadata_mut().insert(ERROR_CODE, MetadataValue::from_static("lagged"));
            Err(status)
        }
        Err(e) => Err(Status::from(e)),
    })
}
