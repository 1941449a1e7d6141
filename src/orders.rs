//! Orders: what was bought, by whom, for how much, and where it is in its life.
//!
//! - `state`: the state machine ([`OrderStatus`]) and the saga's progress ([`SagaState`]);
//! - `cart`: the checkout request and the domain types it parses into;
//! - `checkout`: the saga that creates and pays orders (`pricing` prices the cart);
//! - `lifecycle`: the later transitions as service operations, `refund` the refund saga,
//!   `partial_refund` refunds of some lines or an amount (a saga step of their own);
//! - `shipping`: what staff give when shipping (carrier, tracking number), order numbers;
//! - `transition`: the one function every status change goes through;
//! - `recovery`: the background workers that finish interrupted sagas and expire
//!   reservations;
//! - `store`: all SQL of the `orders`, `order_lines` and `order_refunds` tables.

pub mod cart;
pub mod checkout;
pub mod lifecycle;
pub mod partial_refund;
mod pricing;
pub mod recovery;
mod refund;
pub mod shipping;
pub mod state;
mod store;
pub mod transition;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub use cart::{CheckoutRequest, PaymentRequest};
pub use shipping::{OrderNumber, ShipRequest};
pub use state::{OrderStatus, SagaState};

use crate::auth::scopes::Scope;
use crate::auth::{Actor, Email, Principal};
use crate::cache::CatalogCache;
use crate::config::{CheckoutConfig, Config};
use crate::db::{self, Db};
use crate::error::{Error, FieldError, Result};
use crate::flags::Flags;
use crate::pagination::{Cursor, Page, PageRequest};
use crate::payments::PaymentGateway;
use crate::ratelimit::Class;

/// The order service: checkout, reads, transitions, and the workers that finish sagas.
/// Holds only what orders need.
#[derive(Clone)]
pub struct Orders {
    pub(crate) db: Db,
    pub(crate) payments: Arc<dyn PaymentGateway>,
    pub(crate) flags: Arc<Flags>,
    pub(crate) checkout: CheckoutConfig,
    /// How long one gateway call may take with its retries (`PaymentsConfig::call_budget_ms`).
    pub(crate) payment_timeout_ms: u64,
    /// The catalog read cache: every stock change (reserve, release, ship) invalidates the
    /// products it touched, after the commit.
    pub(crate) cache: CatalogCache,
}

impl Orders {
    /// The service over `db`, charging through `payments`, with checkout settings and the
    /// gateway timeout from `config`.
    pub fn new(
        db: Db,
        payments: Arc<dyn PaymentGateway>,
        flags: Arc<Flags>,
        cache: CatalogCache,
        config: &Config,
    ) -> Self {
        Self {
            db,
            payments,
            flags,
            checkout: config.checkout.clone(),
            payment_timeout_ms: config.payments.call_budget_ms(),
            cache,
        }
    }
}

/// A line item: SKU, name and unit price as they were when the order was placed. Amounts
/// in minor units of the order's currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineItem {
    /// 1, 2, … in the order the cart listed them (repeated SKUs merged).
    pub line_no: i64,
    pub product_id: Option<Uuid>,
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    /// Units, 1 to 1000.
    pub quantity: i64,
    pub discount_minor: i64,
    /// unit_price_minor × quantity − discount_minor (checked: never wrapped).
    pub line_total_minor: i64,
}

/// An order: what was bought (`line_items`), by whom, for how much, and where it is in its
/// life (`status`, with the time of each step). Amounts are integer minor units of
/// `currency` (ISO 4217); `total_minor` = Σ line totals − discount, computed by the server.
/// Times are UTC (RFC 3339 in JSON). Read with [`get`] and [`list`]; created by
/// [`checkout::place_order`]; changed only through [`transition::apply`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    /// Human-facing order number (`OL-…`, or the number it had where it was imported from).
    pub number: String,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    /// What the customer pays: computed by the server, never taken from the client.
    pub total_minor: i64,
    pub line_items: Vec<LineItem>,
    /// Last four digits of the card charged.
    pub payment_last4: Option<String>,
    /// Why the order failed or was cancelled (`payments_unavailable`, `payment_rejected`,
    /// `reservation_expired`, …; a declined card does not fail an order).
    pub failure_reason: Option<String>,
    /// An unpaid order's stock is released at this time.
    pub reserved_until: Option<DateTime<Utc>>,
    pub ship_mode: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<serde_json::Value>,
    pub placed_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    /// Who carries the parcel, as staff entered it when shipping.
    pub carrier: Option<String>,
    /// The carrier's tracking number, as staff entered it when shipping.
    pub tracking_number: Option<String>,
    /// Σ refunds the gateway confirmed, minor units (0 ≤ refunded_minor ≤ total_minor).
    /// A partially refunded order keeps its status; a paid order refunded in full becomes
    /// `refunded`.
    pub refunded_minor: i64,
    pub delivered_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Which customer's orders `caller` may see: `None` for staff (all), else their own.
pub(crate) fn owner_filter(caller: &Actor) -> Option<Uuid> {
    if caller.is_staff() { None } else { Some(caller.id) }
}

/// An order as `principal` may see it (scope `orders:read`; `api` rate-limit class): a
/// customer's view of another customer's order is 404, exactly as if it did not exist.
pub async fn get(svc: &Orders, principal: &Principal, id: Uuid) -> Result<Order> {
    principal.admit(Class::Api).await?;
    let caller = principal.require(Scope::OrdersRead)?;
    store::find(&svc.db, id, owner_filter(&caller)).await
}

/// The order numbered `number` (`OL-…`, or an imported order's number) as `principal` may
/// see it (scope `orders:read`; `api` rate-limit class): staff find any order; a customer
/// finds only their own, another customer's is 404 exactly as if it did not exist.
/// Errors: 422 on `number` if it is not an order number; 404.
pub async fn find_by_number(svc: &Orders, principal: &Principal, number: &str) -> Result<Order> {
    principal.admit(Class::Api).await?;
    let caller = principal.require(Scope::OrdersRead)?;
    let number = OrderNumber::parse(number).map_err(|m| Error::Validation(vec![FieldError::new("number", m)]))?;
    store::find_by_number(&svc.db, &number, owner_filter(&caller)).await
}

/// Order list filters, all optional and combined with AND. Customers always see only their
/// own orders.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// Staff only: orders of this customer.
    pub customer_id: Option<Uuid>,
    /// Orders of the customer with this email address (case-insensitive). For a customer it
    /// only narrows their own orders.
    #[param(format = Email, max_length = 254)]
    pub customer_email: Option<String>,
    /// The order with this number (`OL-…`, or an imported order's number): 1 to 64 ASCII
    /// letters, digits and `-_./#`, surrounding whitespace trimmed.
    #[param(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9._/#-]{1,64}[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub number: Option<String>,
    /// Placed at or after this instant (RFC 3339).
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed before this instant (RFC 3339).
    pub placed_to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque, base64url).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// The opaque cursor of `o` in [`list`]'s order: what `next_cursor` is when `o` ends a
/// page. For transports that give every item its own cursor (GraphQL edges).
pub fn cursor_after(o: &Order) -> String {
    Cursor { sort: "-placed_at".to_owned(), ..Cursor::text(db::ts(o.placed_at), o.id.to_string()) }.encode()
}

/// Orders newest first, keyset-paged (scope `orders:read`; `api` rate-limit class),
/// filtered by `f`. Customers see their own: 403 `forbidden` on another's `customer_id`;
/// 422 on `limit`/`cursor`, `customer_email` or `number` if invalid.
pub async fn list(svc: &Orders, principal: &Principal, f: &OrderFilter) -> Result<Page<Order>> {
    principal.admit(Class::Api).await?;
    let caller = principal.require(Scope::OrdersRead)?;
    let page = PageRequest::parse(f.limit, f.cursor.as_deref(), "-placed_at").map_err(Error::Validation)?;
    let mut errors = Vec::new();
    let email = f.customer_email.as_deref().map(Email::parse).transpose().unwrap_or_else(|m| {
        errors.push(FieldError::new("customer_email", m));
        None
    });
    let number = f.number.as_deref().map(OrderNumber::parse).transpose().unwrap_or_else(|m| {
        errors.push(FieldError::new("number", m));
        None
    });
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let customer = if caller.is_staff() {
        f.customer_id
    } else {
        if f.customer_id.is_some_and(|c| c != caller.id) {
            // Who may use a filter is authorization (403), not input validity: the same
            // query is valid for staff.
            return Err(Error::Forbidden("customers may list only their own orders"));
        }
        Some(caller.id)
    };
    let by = store::ListBy { customer, email: email.as_ref(), number: number.as_ref() };
    let orders = store::list(&svc.db, &by, f, &page).await?;
    let mut page = page.finish(orders, |o| Cursor::text(db::ts(o.placed_at), o.id.to_string()));
    store::attach_lines(&svc.db, &mut page.items).await?;
    Ok(page)
}
