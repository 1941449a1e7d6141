//! Domain events, typed: one payload struct per event type, with its name and version in
//! one place ([`Event`]), its JSON Schema generated from the struct (docs/EVENTS.md, kept in
//! sync by a test). Nothing builds event JSON by hand.
//!
//! Events are written to the transactional outbox in the same transaction as the change
//! they describe ([`record`]), so an event exists exactly when its change committed.
//! Publishing them to a bus is the relay's job.
//!
//! Imports do not emit one event per row: an import of thousands of rows would flood every
//! consumer with changes nobody acts on one by one. Each import run that changed anything
//! records one [`ImportCompleted`] summary instead; consumers that mirror the catalog
//! re-read it when they see one.

pub mod bus;
pub mod consumers;
pub mod nats;
pub mod prune;
pub mod relay;
pub mod replay;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;

/// A customer placed an order: stock is reserved, payment pending.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// What the customer pays, in minor units of `currency`.
    pub total_minor: i64,
    /// ISO 4217.
    pub currency: String,
}

/// The payment of an order succeeded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderPaid {
    pub order_id: Uuid,
}

/// An order changed status after checkout: `order.cancelled`, `order.delivered` or
/// `order.refunded`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderTransitioned {
    pub order_id: Uuid,
    /// The status it left (`pending_payment`, `paid`, `shipped`).
    pub from: String,
    /// Why, for cancellations (`cancelled_by_customer`, `cancelled_by_staff`,
    /// `reservation_expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A paid order was shipped (`order.shipped`): its reserved stock left on-hand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderShipped {
    pub order_id: Uuid,
    /// The status it left (`paid`).
    pub from: String,
    /// Who carries the parcel (`UPS`, `DHL Express`, …), as staff entered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The carrier's tracking number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
}

/// Units of one order line refunded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundedLine {
    pub line_no: i64,
    pub quantity: i64,
}

/// Part of an order's payment was paid back (`order.partially_refunded`): the gateway
/// confirmed a refund of `amount_minor`. The order keeps its status; when the refunds reach
/// the total of a paid order, `order.refunded` follows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderPartiallyRefunded {
    pub order_id: Uuid,
    pub refund_id: Uuid,
    /// This refund, in minor units of the order's currency.
    pub amount_minor: i64,
    /// Σ settled refunds of the order so far, this one included.
    pub refunded_minor: i64,
    /// The lines refunded (empty for a refund by amount).
    pub lines: Vec<RefundedLine>,
    /// Whether the refunded lines' reserved units went back to available stock (refunded
    /// before shipping); after shipping, stock is unchanged.
    pub stock_released: bool,
}

/// Checkout failed and was compensated: the reservation is released. A declined card does
/// not fail the order: it stays payable until its reservation expires (`order.cancelled`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderFailed {
    pub order_id: Uuid,
    /// `payments_unavailable` (the payment provider's breaker was open at checkout),
    /// `payment_rejected`, `payment_interrupted`, …
    pub reason: String,
}

/// Staff changed a product's on-hand stock.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StockAdjusted {
    pub product_id: Uuid,
    /// Units added to on-hand stock (negative: removed).
    pub delta: i64,
    pub reason: String,
}

/// A product's available stock is at or under its low-stock threshold.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StockLow {
    pub product_id: Uuid,
    /// on_hand − reserved, in units.
    pub available: i64,
}

/// A product was created.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductCreated {
    pub product_id: Uuid,
    pub sku: String,
}

/// A product's name, description, price, currency, status or category changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductUpdated {
    pub product_id: Uuid,
}

/// An import run finished and changed data (one summary instead of one event per row).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportCompleted {
    /// What was imported: `superstore`, `products`, `customers` or `orders`.
    pub kind: String,
    /// Rows created or updated, per table (`products`, `customers`, `orders`, …).
    #[schema(value_type = Object)]
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// A background job's progress (`job.progress`, at most about once a second per job).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobProgress {
    pub job_id: Uuid,
    /// `import.products`, `export.orders`, …
    pub kind: String,
    /// Units done (rows for imports).
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
}

/// A background job finished (`job.succeeded`, `job.failed`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobFinished {
    pub job_id: Uuid,
    pub kind: String,
    /// The job's result summary (succeeded) or null.
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// Why it failed (failed) or null.
    pub error: Option<String>,
}

/// Every domain event orderly records. The serialized payload is the variant's struct.
#[derive(Debug, Clone)]
pub enum Event {
    OrderPlaced(OrderPlaced),
    OrderPaid(OrderPaid),
    OrderCancelled(OrderTransitioned),
    OrderShipped(OrderShipped),
    OrderDelivered(OrderTransitioned),
    OrderRefunded(OrderTransitioned),
    OrderPartiallyRefunded(OrderPartiallyRefunded),
    OrderFailed(OrderFailed),
    StockAdjusted(StockAdjusted),
    StockLow(StockLow),
    ProductCreated(ProductCreated),
    ProductUpdated(ProductUpdated),
    ImportCompleted(ImportCompleted),
    JobProgress(JobProgress),
    JobSucceeded(JobFinished),
    JobFailed(JobFinished),
}

/// Name and payload version of each event type; a payload change that is not backwards
/// compatible bumps the version.
pub const CATALOG: &[(&str, u32)] = &[
    ("order.placed", 1),
    ("order.paid", 1),
    ("order.cancelled", 1),
    ("order.shipped", 1),
    ("order.delivered", 1),
    ("order.refunded", 1),
    ("order.partially_refunded", 1),
    ("order.failed", 1),
    ("inventory.adjusted", 1),
    ("inventory.low", 1),
    ("product.created", 1),
    ("product.updated", 1),
    ("import.completed", 1),
    ("job.progress", 1),
    ("job.succeeded", 1),
    ("job.failed", 1),
];

impl Event {
    /// The event type, e.g. `order.placed`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::OrderPlaced(_) => "order.placed",
            Event::OrderPaid(_) => "order.paid",
            Event::OrderCancelled(_) => "order.cancelled",
            Event::OrderShipped(_) => "order.shipped",
            Event::OrderDelivered(_) => "order.delivered",
            Event::OrderRefunded(_) => "order.refunded",
            Event::OrderPartiallyRefunded(_) => "order.partially_refunded",
            Event::OrderFailed(_) => "order.failed",
            Event::StockAdjusted(_) => "inventory.adjusted",
            Event::StockLow(_) => "inventory.low",
            Event::ProductCreated(_) => "product.created",
            Event::ProductUpdated(_) => "product.updated",
            Event::ImportCompleted(_) => "import.completed",
            Event::JobProgress(_) => "job.progress",
            Event::JobSucceeded(_) => "job.succeeded",
            Event::JobFailed(_) => "job.failed",
        }
    }

    /// The payload schema version of this event type.
    pub fn version(&self) -> u32 {
        let t = self.event_type();
        CATALOG.iter().find(|(name, _)| *name == t).map_or(1, |(_, v)| *v)
    }

    /// The entity the event is about (an order, a product; a fresh id for an import).
    pub fn aggregate_id(&self) -> Uuid {
        match self {
            Event::OrderPlaced(e) => e.order_id,
            Event::OrderPaid(e) => e.order_id,
            Event::OrderCancelled(e) | Event::OrderDelivered(e) | Event::OrderRefunded(e) => e.order_id,
            Event::OrderShipped(e) => e.order_id,
            Event::OrderPartiallyRefunded(e) => e.order_id,
            Event::OrderFailed(e) => e.order_id,
            Event::StockAdjusted(e) => e.product_id,
            Event::StockLow(e) => e.product_id,
            Event::ProductCreated(e) => e.product_id,
            Event::ProductUpdated(e) => e.product_id,
            Event::ImportCompleted(_) => Uuid::nil(),
            Event::JobProgress(e) => e.job_id,
            Event::JobSucceeded(e) | Event::JobFailed(e) => e.job_id,
        }
    }

    /// The payload as JSON text.
    pub fn payload_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Event::OrderPlaced(e) => serde_json::to_string(e),
            Event::OrderPaid(e) => serde_json::to_string(e),
            Event::OrderCancelled(e) | Event::OrderDelivered(e) | Event::OrderRefunded(e) => serde_json::to_string(e),
            Event::OrderShipped(e) => serde_json::to_string(e),
            Event::OrderPartiallyRefunded(e) => serde_json::to_string(e),
            Event::OrderFailed(e) => serde_json::to_string(e),
            Event::StockAdjusted(e) => serde_json::to_string(e),
            Event::StockLow(e) => serde_json::to_string(e),
            Event::ProductCreated(e) => serde_json::to_string(e),
            Event::ProductUpdated(e) => serde_json::to_string(e),
            Event::ImportCompleted(e) => serde_json::to_string(e),
            Event::JobProgress(e) => serde_json::to_string(e),
            Event::JobSucceeded(e) | Event::JobFailed(e) => serde_json::to_string(e),
        }
    }
}

/// Appends `event` to the outbox inside `tx`, with a new id (UUID v7, so ids sort by time).
pub async fn record(conn: &mut sqlx::AnyConnection, event: Event) -> Result<(), sqlx::Error> {
    let payload = event.payload_json().map_err(|e| sqlx::Error::Encode(e.into()))?;
    let aggregate = match event.aggregate_id() {
        id if id.is_nil() => db::new_id(),
        id => id,
    };
    sqlx::query(
        "INSERT INTO outbox (id, event_type, event_version, aggregate_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(db::new_id().to_string())
    .bind(event.event_type())
    .bind(i64::from(event.version()))
    .bind(aggregate.to_string())
    .bind(payload)
    .bind(db::now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The JSON Schema (OpenAPI 3.1 dialect, i.e. JSON Schema 2020-12) of each event type's
/// payload, by event type, for docs/EVENTS.md.
pub fn schemas() -> Vec<(&'static str, u32, serde_json::Value)> {
    fn schema<T: ToSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap_or_default()
    }
    let by_type = |t: &str| -> serde_json::Value {
        match t {
            "order.placed" => schema::<OrderPlaced>(),
            "order.paid" => schema::<OrderPaid>(),
            "order.cancelled" | "order.delivered" | "order.refunded" => schema::<OrderTransitioned>(),
            "order.shipped" => schema::<OrderShipped>(),
            "order.partially_refunded" => schema::<OrderPartiallyRefunded>(),
            "order.failed" => schema::<OrderFailed>(),
            "inventory.adjusted" => schema::<StockAdjusted>(),
            "inventory.low" => schema::<StockLow>(),
            "product.created" => schema::<ProductCreated>(),
            "product.updated" => schema::<ProductUpdated>(),
            "job.progress" => schema::<JobProgress>(),
            "job.succeeded" | "job.failed" => schema::<JobFinished>(),
            _ => schema::<ImportCompleted>(),
        }
    };
    CATALOG.iter().map(|(t, v)| (*t, *v, by_type(t))).collect()
}

/// docs/EVENTS.md's generated part: one section per event type with its JSON Schema.
pub fn schema_markdown() -> String {
    let mut out = String::new();
    for (t, v, schema) in schemas() {
        let pretty = serde_json::to_string_pretty(&schema).unwrap_or_default();
        out.push_str(&format!("### `{t}` (version {v})\n\n```json\n{pretty}\n```\n\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_catalogued_type_and_version() {
        let id = Uuid::nil();
        let t = || OrderTransitioned { order_id: id, from: "paid".into(), reason: None };
        let finished = || JobFinished { job_id: id, kind: "export.orders".into(), result: None, error: None };
        let all = [
            Event::OrderPlaced(OrderPlaced { order_id: id, customer_id: id, total_minor: 1, currency: "USD".into() }),
            Event::OrderPaid(OrderPaid { order_id: id }),
            Event::OrderCancelled(t()),
            Event::OrderShipped(OrderShipped {
                order_id: id,
                from: "paid".into(),
                carrier: Some("UPS".into()),
                tracking_number: None,
            }),
            Event::OrderDelivered(t()),
            Event::OrderRefunded(t()),
            Event::OrderPartiallyRefunded(OrderPartiallyRefunded {
                order_id: id,
                refund_id: id,
                amount_minor: 1,
                refunded_minor: 1,
                lines: vec![RefundedLine { line_no: 1, quantity: 1 }],
                stock_released: true,
            }),
            Event::OrderFailed(OrderFailed { order_id: id, reason: "payment_rejected".into() }),
            Event::StockAdjusted(StockAdjusted { product_id: id, delta: 1, reason: "restock".into() }),
            Event::StockLow(StockLow { product_id: id, available: 0 }),
            Event::ProductCreated(ProductCreated { product_id: id, sku: "A".into() }),
            Event::ProductUpdated(ProductUpdated { product_id: id }),
            Event::ImportCompleted(ImportCompleted { kind: "superstore".into(), counts: Default::default() }),
            Event::JobProgress(JobProgress { job_id: id, kind: "import.products".into(), done: 1, total: Some(2) }),
            Event::JobSucceeded(finished()),
            Event::JobFailed(finished()),
        ];
        let types: Vec<_> = all.iter().map(|e| e.event_type()).collect();
        let catalogued: Vec<_> = CATALOG.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, catalogued);
        assert!(all.iter().all(|e| e.version() >= 1 && e.payload_json().is_ok()));
    }

    /// Run with `ORDERLY_BLESS=1` to rewrite the generated part of docs/EVENTS.md.
    #[test]
    fn docs_events_md_holds_the_current_schemas() {
        const BEGIN: &str = "<!-- BEGIN GENERATED: event schemas -->\n";
        const END: &str = "<!-- END GENERATED -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/EVENTS.md");
        let doc = std::fs::read_to_string(path).expect("docs/EVENTS.md exists");
        let (head, rest) = doc.split_once(BEGIN).expect("docs/EVENTS.md has the BEGIN marker");
        let (_, tail) = rest.split_once(END).expect("docs/EVENTS.md has the END marker");
        let want = format!("{head}{BEGIN}{}{END}{tail}", schema_markdown());
        if std::env::var_os("ORDERLY_BLESS").is_some() {
            std::fs::write(path, &want).expect("write docs/EVENTS.md");
        }
        assert!(doc == want, "docs/EVENTS.md is out of date: run `ORDERLY_BLESS=1 cargo test --lib events`");
    }
}
