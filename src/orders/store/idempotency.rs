//! Checkout idempotency keys: which order a customer's key created, and from what request.

use sqlx::AnyConnection;
use sqlx::Row;
use uuid::Uuid;

use crate::db;
use crate::error::Result;

/// The order a customer's idempotency key created, with the fingerprint of its request.
pub(in crate::orders) async fn find(
    conn: &mut AnyConnection,
    customer: Uuid,
    key: &str,
) -> Result<Option<(Uuid, String)>> {
    let row = sqlx::query("SELECT id, request_fingerprint FROM orders WHERE customer_id = $1 AND idempotency_key = $2")
        .bind(customer.to_string())
        .bind(key)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((db::parse_id(&r.try_get::<String, _>("id")?)?, r.try_get("request_fingerprint")?))).transpose()
}

/// Whether `e` is the unique index on (customer, idempotency key): a concurrent request with
/// the same key created its order first.
pub(in crate::orders) fn is_key_taken(e: &sqlx::Error) -> bool {
    db::is_unique_violation(e, "idempotency_key")
}
