//! The product write shared by the single update and the batch operations.

use uuid::Uuid;

use super::map_write_error;
use crate::catalog::ProductStatus;
use crate::db;
use crate::error::{Error, Result};
use crate::events::{self, Event, ProductUpdated};

/// Parsed changes to one product, as [`apply_update`] writes them; `None` leaves a field.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UpdateFields<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub price_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub status: Option<ProductStatus>,
    pub category_id: Option<Uuid>,
}

/// The write of [`update`] inside the caller's transaction: the conditional UPDATE (with
/// `if_version < 0`, unconditional; else only at that `version` and `available`) and its
/// `product.updated` event. Used by `update` and by the batch operations (`crate::batch`),
/// which invalidate the cache after their commit. No authorization, no validation: the
/// callers parse the fields first.
///
/// Errors: 404 if there is no such product; 412 if the condition no longer holds; 422 on
/// `category_id` if the category does not exist. On an error the caller must roll back.
pub(crate) async fn apply_update(
    tx: &mut db::Tx,
    id: Uuid,
    f: &UpdateFields<'_>,
    if_version: i64,
    if_available: i64,
) -> Result<()> {
    let n = sqlx::query(
        "UPDATE products SET name = COALESCE($1, name), description = COALESCE($2, description), \
         price_minor = COALESCE($3, price_minor), currency = COALESCE($4, currency), \
         status = COALESCE($5, status), category_id = COALESCE($6, category_id), \
         version = version + 1, updated_at = $7 WHERE id = $8 AND ($9 < 0 OR (version = $9 AND \
         COALESCE((SELECT on_hand - reserved FROM inventory WHERE product_id = $8), 0) = $10))",
    )
    .bind(f.name)
    .bind(f.description)
    .bind(f.price_minor)
    .bind(f.currency)
    .bind(f.status.map(ProductStatus::as_str))
    .bind(f.category_id.map(|c| c.to_string()))
    .bind(db::now())
    .bind(id.to_string())
    .bind(if_version)
    .bind(if_available)
    .execute(&mut **tx)
    .await
    .map_err(|e| map_write_error(e, ""))?
    .rows_affected();
    if n == 0 {
        let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM products WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        return Err(if exists.is_some() { Error::PreconditionFailed } else { Error::NotFound("product") });
    }
    events::record(tx, Event::ProductUpdated(ProductUpdated { product_id: id })).await?;
    Ok(())
}
