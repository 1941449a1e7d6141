//! Batch operations: many items of one operation in one call (issue 11, part 3). Each item
//! goes through the SAME write as the single operation (`catalog::products::apply_update`,
//! `inventory::adjust_in`, `orders::transition::apply_in`), inside a transaction the batch
//! owns, each item under its own SQL `SAVEPOINT`, so a failing item leaves nothing behind.
//!
//! - **`all_or_nothing`**: one transaction for the whole batch (at most [`MAX_ITEMS`]
//!   items). If any item fails, the transaction is rolled back: failed items report their
//!   problem, the others `rolled_back` (problem code `batch-rolled-back`).
//! - **`per_item`**: transactions of at most [`CHUNK`] items, committed one after the
//!   other; a failing item is rolled back to its savepoint and never changes the others.
//!
//! Authorization and rate limiting happen once per batch, with the single operation's rule
//! (the batch draws one unit of the `api` class). Events go to the outbox in the item's
//! transaction, as the single operations write them, and the catalog read cache is
//! invalidated after each commit. A database failure (not an item's own problem) fails the
//! whole call: in `per_item` mode, the chunks committed before it stay committed.

pub mod catalog;
pub mod orders;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cache::CatalogCache;
use crate::db::{Db, Tx};
use crate::error::{Error, ErrorKind, FieldError, Result};

/// The most items in one batch request; more is a 422 on `items`.
pub const MAX_ITEMS: usize = 1000;
/// The most items in one transaction of a `per_item` batch.
pub const CHUNK: usize = 100;

/// How a batch treats a failing item. JSON: `"all_or_nothing"` or `"per_item"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every item or none: one failure rolls the whole batch back.
    AllOrNothing,
    /// Each item on its own: a failure changes nothing but that item.
    PerItem,
}

/// What happened to one item. JSON: `"succeeded"`, `"failed"` or `"rolled_back"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Succeeded,
    Failed,
    /// `all_or_nothing` only: the item would have succeeded, but another one failed.
    RolledBack,
}

/// The result of item `index` (0-based, in request order); `error` is set unless it
/// succeeded.
#[derive(Debug)]
pub struct ItemOutcome {
    pub index: usize,
    pub status: ItemStatus,
    pub error: Option<Error>,
}

/// A product (or its stock) named by id or by SKU: exactly one of the two.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Id(Uuid),
    Sku(crate::catalog::Sku),
}

impl Target {
    /// Errors (on `id`/`sku`): both or neither given, or a SKU that does not parse.
    pub(crate) fn parse(id: Option<Uuid>, sku: Option<&str>) -> std::result::Result<Self, FieldError> {
        match (id, sku) {
            (Some(id), None) => Ok(Target::Id(id)),
            (None, Some(sku)) => {
                crate::catalog::Sku::parse(sku).map(Target::Sku).map_err(|m| FieldError::new("sku", m))
            }
            _ => Err(FieldError::new("id", "give exactly one of id and sku")),
        }
    }

    /// The product's id, read in `tx`; 404 `product` if there is none.
    pub(crate) async fn resolve(&self, tx: &mut Tx) -> Result<Uuid> {
        match self {
            Target::Id(id) => Ok(*id),
            Target::Sku(sku) => {
                let id: Option<String> = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
                    .bind(sku.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
                let id = id.ok_or(Error::NotFound("product"))?;
                Ok(crate::db::parse_id(&id)?)
            }
        }
    }
}

pub(crate) type ItemFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Uuid>>> + Send + 'a>>;

/// One kind of batch item: applies a parsed item inside `tx` and returns the products whose
/// cached reads change.
pub(crate) trait Op: Sync {
    type Item: Sync;
    fn apply<'a>(&'a self, tx: &'a mut Tx, item: &'a Self::Item) -> ItemFuture<'a>;
}

/// 422 on `items` for an empty batch or one over [`MAX_ITEMS`].
pub(crate) fn check_size(len: usize) -> Result<()> {
    if len == 0 || len > MAX_ITEMS {
        return Err(Error::Validation(vec![FieldError::new("items", format!("must hold 1 to {MAX_ITEMS} items"))]));
    }
    Ok(())
}

/// An item error that is the server's, not the item's: it fails the whole call.
fn is_fatal(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable)
}

/// Runs `items` (already parsed: an `Err` is that item's failure) through `op` in `mode`.
pub(crate) async fn run<O: Op>(
    db: &Db,
    cache: &CatalogCache,
    mode: Mode,
    items: Vec<Result<O::Item>>,
    op: &O,
) -> Result<Vec<ItemOutcome>> {
    let chunk = match mode {
        Mode::AllOrNothing => MAX_ITEMS,
        Mode::PerItem => CHUNK,
    };
    let mut outcomes = Vec::with_capacity(items.len());
    let mut items = items.into_iter().enumerate().peekable();
    while items.peek().is_some() {
        let mut tx = db.begin_write().await?;
        let mut changed = Vec::new();
        let mut failed = false;
        for (index, item) in items.by_ref().take(chunk) {
            let result = match item {
                Err(e) => Err(e),
                Ok(item) => in_savepoint(&mut tx, op, &item).await?,
            };
            match result {
                Ok(products) => {
                    changed.extend(products);
                    outcomes.push(ItemOutcome { index, status: ItemStatus::Succeeded, error: None });
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    failed = true;
                    outcomes.push(ItemOutcome { index, status: ItemStatus::Failed, error: Some(e) });
                }
            }
        }
        if mode == Mode::AllOrNothing && failed {
            tx.rollback().await?;
            for o in &mut outcomes {
                if o.status == ItemStatus::Succeeded {
                    o.status = ItemStatus::RolledBack;
                    o.error = Some(Error::conflict(
                        "batch-rolled-back",
                        "another item of this all_or_nothing batch failed; nothing was changed",
                    ));
                }
            }
            return Ok(outcomes);
        }
        tx.commit().await?;
        if !changed.is_empty() {
            changed.sort_unstable();
            changed.dedup();
            cache.products_changed(&changed).await;
        }
    }
    Ok(outcomes)
}

/// Applies one item under a savepoint: released on success, rolled back to on failure.
/// The outer `Err` is a failure of the savepoint statements themselves (fatal).
async fn in_savepoint<O: Op>(tx: &mut Tx, op: &O, item: &O::Item) -> Result<Result<Vec<Uuid>>> {
    sqlx::query("SAVEPOINT batch_item").execute(&mut **tx).await?;
    let result = op.apply(tx, item).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO SAVEPOINT batch_item").execute(&mut **tx).await?;
    }
    sqlx::query("RELEASE SAVEPOINT batch_item").execute(&mut **tx).await?;
    Ok(result)
}
