//! Batch cancel: the single cancel's rule (`orders::lifecycle::cancel`) for many orders.

use uuid::Uuid;

use super::{ItemFuture, ItemOutcome, Mode, Op, check_size, run};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::orders::transition::{self, Step};
use crate::orders::{Orders, owner_filter};
use crate::ratelimit::Class;

/// Cancels up to 1,000 unpaid orders (see [`crate::batch`] for the modes); their stock is
/// released and `order.cancelled` recorded, as by the single cancel. Who may: as the single
/// cancel, staff with `orders:write` any order, a customer their own orders (another
/// customer's order is that item's 404, exactly as if it did not exist).
///
/// Errors of the whole call: 401/403 as the single cancel; 422 on `items` (empty or over
/// 1,000). Errors of an item: 404 no such order (or not the caller's); 409
/// `invalid-transition` naming the current status (paid, shipped, … or already cancelled).
pub async fn cancel_orders(
    svc: &Orders,
    principal: &Principal,
    mode: Mode,
    ids: Vec<Uuid>,
) -> Result<Vec<ItemOutcome>> {
    principal.admit(Class::Api).await?;
    let caller = principal.require(Scope::OrdersWrite)?;
    check_size(ids.len())?;
    let op = Cancel { caller: caller.id, owner: owner_filter(&caller) };
    run(&svc.db, &svc.cache, mode, ids.into_iter().map(Ok).collect(), &op).await
}

struct Cancel {
    caller: Uuid,
    /// `Some(customer)`: only that customer's orders.
    owner: Option<Uuid>,
}

impl Op for Cancel {
    type Item = Uuid;
    fn apply<'a>(&'a self, tx: &'a mut Tx, id: &'a Uuid) -> ItemFuture<'a> {
        Box::pin(async move {
            let customer: Option<String> = sqlx::query_scalar("SELECT customer_id FROM orders WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut **tx)
                .await?;
            let customer = customer.ok_or(Error::NotFound("order"))?;
            let customer = crate::db::parse_id(&customer)?;
            if self.owner.is_some_and(|owner| owner != customer) {
                return Err(Error::NotFound("order"));
            }
            let reason = if self.caller == customer { "cancelled_by_customer" } else { "cancelled_by_staff" };
            let moved = transition::apply_in(tx, *id, Step::Cancelled { reason }).await?.map_err(Error::from)?;
            Ok(moved.map(|lines| lines.iter().map(|l| l.product_id).collect()).unwrap_or_default())
        })
    }
}
