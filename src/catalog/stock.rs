//! Stock adjustments as a catalog operation: they change a product's representation
//! (`available`, hence its ETag), so they take the product's `If-Match` and invalidate the
//! read cache. The stock arithmetic and its SQL live in `inventory`.

use uuid::Uuid;

use super::Catalog;
use super::products;
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::conditional::{IfMatch, Representation};
use crate::error::{Error, Result};
use crate::inventory::{self, Inventory, StockDelta, StockGuard};
use crate::ratelimit::Class;
use crate::validate;

/// Adds `delta` units (negative to remove) to the product's `on_hand`, recording
/// `inventory.adjusted` (and `inventory.low` at the threshold). With `if_match`, only if it
/// matches the product's current ETag (RFC 9110 §13.1.1, strong comparison; `*` matches
/// any existing product), checked atomically with the update. Needs staff with
/// `catalog:write`.
///
/// Errors, each changing nothing: 422 on `delta` (zero, or more than 10^9 in size) and on
/// `reason` (empty or over 200 characters), all bad fields at once; 404 if there is no such
/// product; 412 if `if_match` does not match; 409 `insufficient-stock` if less would be on
/// hand than is reserved; 409 `stock-limit` above 10^12 units on hand.
pub async fn adjust(
    cat: &Catalog,
    principal: &Principal,
    product_id: Uuid,
    delta: i64,
    reason: &str,
    if_match: Option<&IfMatch>,
) -> Result<Inventory> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    validate! {
        delta <- "delta" => StockDelta::parse(delta);
        reason <- "reason" => crate::auth::parse_name(reason);
    }
    let guard = match if_match {
        None => None,
        Some(condition) => {
            let current = products::fetch(&cat.db, product_id, true).await?;
            if !condition.matches(&Representation::json(&current)?.etag) {
                return Err(Error::PreconditionFailed);
            }
            Some(StockGuard { product_version: current.version, available: current.available })
        }
    };
    let result = inventory::apply_adjustment(&cat.db, product_id, delta, reason, guard).await;
    if result.is_ok() {
        cat.cache.products_changed(&[product_id]).await;
    }
    result
}
