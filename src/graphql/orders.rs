//! Orders: `orders` (a Relay connection: own orders for customers, all for staff, as the
//! service decides), `order`; `checkout`, `payOrder`, `cancelOrder`, `shipOrder`,
//! `deliverOrder`, `refundOrder`. Thin: each resolver calls the same `orders` function as
//! REST with the caller's principal. A line's `product` goes through the DataLoader.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::error::{Gql, rename_fields, to_graphql};
use super::loaders::ProductLoader;
use super::products::{PageInfo, ProductNode, connection_cost, page_size};
use super::schema::{Long, app, int, principal, uuid};
use crate::orders::cart::LineItemRequest;
use crate::orders::checkout;
use crate::orders::shipping::{Carrier, TrackingNumber};
use crate::orders::{self, CheckoutRequest, LineItem, Order, OrderFilter, PaymentRequest, ShipRequest, lifecycle};

/// Where an order is in its life (docs/ARCHITECTURE.md, the state machine).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::orders::state::OrderStatus")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Failed,
    Refunded,
}

/// A line item: SKU, name and unit price as they were at checkout; minor units.
pub struct LineItemNode(LineItem);

#[Object(name = "LineItem")]
impl LineItemNode {
    async fn line_no(&self) -> i32 {
        int(self.0.line_no)
    }
    async fn product_id(&self) -> Option<ID> {
        self.0.product_id.map(|p| ID(p.to_string()))
    }
    /// The product now, if it still exists and the caller may see it (batched: one query
    /// for every line of the page).
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ProductNode>> {
        let Some(id) = self.0.product_id else { return Ok(None) };
        let loader = ctx.data_unchecked::<DataLoader<ProductLoader>>();
        let p = loader.load_one(id).await.map_err(|e| to_graphql(&e))?;
        Ok(p.map(ProductNode))
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn unit_price_minor(&self) -> Long {
        Long(self.0.unit_price_minor)
    }
    /// Units, 1 to 1000.
    async fn quantity(&self) -> i32 {
        int(self.0.quantity)
    }
    async fn discount_minor(&self) -> Long {
        Long(self.0.discount_minor)
    }
    /// unitPriceMinor × quantity − discountMinor.
    async fn line_total_minor(&self) -> Long {
        Long(self.0.line_total_minor)
    }
}

/// An order. Amounts are minor units of `currency`; `totalMinor` is computed by the server.
pub struct OrderNode(pub Order);

#[Object(name = "Order")]
impl OrderNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Human-facing number (`OL-…`).
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }
    async fn status(&self) -> OrderStatus {
        self.0.status.into()
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn subtotal_minor(&self) -> Long {
        Long(self.0.subtotal_minor)
    }
    async fn discount_minor(&self) -> Long {
        Long(self.0.discount_minor)
    }
    async fn total_minor(&self) -> Long {
        Long(self.0.total_minor)
    }
    async fn refunded_minor(&self) -> Long {
        Long(self.0.refunded_minor)
    }
    async fn line_items(&self) -> Vec<LineItemNode> {
        self.0.line_items.iter().cloned().map(LineItemNode).collect()
    }
    /// Last four digits of the card charged.
    async fn payment_last4(&self) -> Option<&str> {
        self.0.payment_last4.as_deref()
    }
    /// Why the order failed or was cancelled.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }
    /// An unpaid order's stock is released at this time.
    async fn reserved_until(&self) -> Option<DateTime<Utc>> {
        self.0.reserved_until
    }
    async fn shipping_address(&self) -> Option<Json<serde_json::Value>> {
        self.0.shipping_address.clone().map(Json)
    }
    async fn carrier(&self) -> Option<&str> {
        self.0.carrier.as_deref()
    }
    async fn tracking_number(&self) -> Option<&str> {
        self.0.tracking_number.as_deref()
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    async fn shipped_at(&self) -> Option<DateTime<Utc>> {
        self.0.shipped_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(SimpleObject)]
pub struct OrderEdge {
    /// Pass as `after` to continue after this order.
    cursor: String,
    node: OrderNode,
}

/// One page of orders, newest first.
#[derive(SimpleObject)]
pub struct OrderConnection {
    edges: Vec<OrderEdge>,
    page_info: PageInfo,
}

#[derive(Default)]
pub struct OrderQueries;

#[Object]
impl OrderQueries {
    /// Orders newest first: a customer's own, or (staff) everyone's, filtered as
    /// `GET /api/v1/orders`. FORBIDDEN for a customer asking for another's `customerId`.
    #[graphql(complexity = "connection_cost(first, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        status: Option<OrderStatus>,
        #[graphql(desc = "Staff only: this customer's orders.")] customer_id: Option<ID>,
        customer_email: Option<String>,
        number: Option<String>,
        #[graphql(desc = "Placed at or after this instant.")] placed_from: Option<DateTime<Utc>>,
        #[graphql(desc = "Placed before this instant.")] placed_to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<OrderConnection> {
        let principal = principal(ctx)?;
        let filter = OrderFilter {
            status: status.map(Into::into),
            customer_id: customer_id.as_ref().map(|c| uuid("customerId", c)).transpose()?,
            customer_email,
            number,
            placed_from,
            placed_to,
            limit: page_size(first).or(Some(20)),
            cursor: after,
        };
        let page = orders::list(&app(ctx).orders, &principal, &filter)
            .await
            .map_err(|e| rename_fields(e, &[("limit", "first"), ("cursor", "after")]))
            .gql()?;
        let edges: Vec<OrderEdge> = page
            .items
            .into_iter()
            .map(|o| OrderEdge { cursor: orders::cursor_after(&o), node: OrderNode(o) })
            .collect();
        let page_info =
            PageInfo { has_next_page: page.next_cursor.is_some(), end_cursor: edges.last().map(|e| e.cursor.clone()) };
        Ok(OrderConnection { edges, page_info })
    }

    /// One order: the caller's own, or any for staff. Another customer's order is NOT_FOUND.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderNode> {
        let id = uuid("id", &id)?;
        Ok(OrderNode(orders::get(&app(ctx).orders, &principal(ctx)?, id).await.gql()?))
    }
}

/// A cart line.
#[derive(InputObject)]
pub struct LineItemInput {
    sku: String,
    /// 1 to 1000.
    quantity: i32,
}

/// A card to pay with (a sandbox test card such as `4242424242424242`); never stored.
#[derive(InputObject)]
pub struct PaymentInput {
    card_number: String,
}

/// A cart to check out. Prices come from the catalog.
#[derive(InputObject)]
pub struct CheckoutInput {
    /// 1 to 100 lines.
    line_items: Vec<LineItemInput>,
    /// Pay now; without it the order waits in PENDING_PAYMENT.
    payment: Option<PaymentInput>,
    /// A JSON object of at most 2000 bytes.
    shipping_address: Option<Json<serde_json::Value>>,
    /// Makes retries safe (as REST's `Idempotency-Key`): 1 to 255 visible ASCII characters.
    idempotency_key: Option<String>,
}

#[derive(Default)]
pub struct OrderMutations;

#[Object]
impl OrderMutations {
    /// Check out: price the cart, reserve stock, create the order and, with `payment`,
    /// charge it. PAYMENT_REQUIRED when the card is declined (the order stays payable),
    /// CONFLICT `insufficient-stock`, UNAVAILABLE `payments-unavailable`.
    async fn checkout(&self, ctx: &Context<'_>, input: CheckoutInput) -> async_graphql::Result<OrderNode> {
        let req = CheckoutRequest {
            line_items: input
                .line_items
                .into_iter()
                .map(|l| LineItemRequest { sku: l.sku, quantity: i64::from(l.quantity) })
                .collect(),
            payment: input.payment.map(|p| PaymentRequest { card_number: p.card_number }),
            shipping_address: input.shipping_address.map(|j| j.0),
            idempotency_key: input.idempotency_key,
        };
        Ok(OrderNode(checkout::place_order(&app(ctx).orders, &principal(ctx)?, req).await.gql()?))
    }

    /// Pay an order waiting for payment.
    async fn pay_order(&self, ctx: &Context<'_>, id: ID, payment: PaymentInput) -> async_graphql::Result<OrderNode> {
        let id = uuid("id", &id)?;
        let req = PaymentRequest { card_number: payment.card_number };
        Ok(OrderNode(checkout::pay(&app(ctx).orders, &principal(ctx)?, id, req).await.gql()?))
    }

    /// Cancel an unpaid order (its customer or staff); its stock is released.
    async fn cancel_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderNode> {
        let id = uuid("id", &id)?;
        Ok(OrderNode(lifecycle::cancel(&app(ctx).orders, &principal(ctx)?, id).await.gql()?))
    }

    /// Mark a paid order shipped (staff), optionally with carrier and tracking number.
    async fn ship_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        carrier: Option<String>,
        tracking_number: Option<String>,
    ) -> async_graphql::Result<OrderNode> {
        let id = uuid("id", &id)?;
        let mut errors = Vec::new();
        let carrier = carrier.as_deref().map(Carrier::parse).transpose().unwrap_or_else(|m| {
            errors.push(crate::error::FieldError::new("carrier", m));
            None
        });
        let tracking_number = tracking_number.as_deref().map(TrackingNumber::parse).transpose().unwrap_or_else(|m| {
            errors.push(crate::error::FieldError::new("tracking_number", m));
            None
        });
        if !errors.is_empty() {
            return Err(to_graphql(&crate::error::Error::Validation(errors)));
        }
        let req = ShipRequest { carrier, tracking_number };
        Ok(OrderNode(lifecycle::ship(&app(ctx).orders, &principal(ctx)?, id, req).await.gql()?))
    }

    /// Mark a shipped order delivered (staff).
    async fn deliver_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderNode> {
        let id = uuid("id", &id)?;
        Ok(OrderNode(lifecycle::deliver(&app(ctx).orders, &principal(ctx)?, id).await.gql()?))
    }

    /// Refund a paid, unshipped order in full (staff).
    async fn refund_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderNode> {
        let id = uuid("id", &id)?;
        Ok(OrderNode(lifecycle::refund(&app(ctx).orders, &principal(ctx)?, id).await.gql()?))
    }
}
