//! Stock counts: a counted level replaces a product's `on_hand` (a night's stocktake, a
//! supplier's stock file). Unlike an adjustment, a count is absolute, so applying the same
//! count twice changes nothing the second time: imports of stock levels are idempotent.
//!
//! Each change is a compare-and-set on the `on_hand` just read (`… WHERE on_hand = <read>`),
//! so a concurrent checkout or shipment between the read and the write is never
//! overwritten: the row is read again and the count applied to what is there now. A count
//! below what open orders hold reserved is refused (available stock is never negative).

use std::collections::HashMap;

use sqlx::Row;
use uuid::Uuid;

use super::{InitialStock, record_if_low};
use crate::db::{self, Arg, SqlBuilder, Tx};
use crate::error::Result;
use crate::events::{self, Event, StockAdjusted};

/// The `reason` of the `inventory.adjusted` event a count records.
pub const REASON: &str = "stock count";
/// SKUs per lookup statement.
const LOOKUP_CHUNK: usize = 500;
/// Reads and writes of one row at most when concurrent changes keep moving it.
const ATTEMPTS: usize = 3;

/// What applying one count did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountOutcome {
    /// `on_hand` was set; `delta` units were added (negative: removed).
    Updated { product_id: Uuid, delta: i64 },
    /// `on_hand` already was the counted level.
    Unchanged { product_id: Uuid },
    /// Not applied, and why (no such SKU; fewer counted than are reserved).
    Refused(String),
}

/// A product's stock as read for a count.
#[derive(Debug, Clone, Copy)]
struct Level {
    product_id: Uuid,
    on_hand: i64,
    reserved: i64,
}

/// Sets `on_hand` to each counted level in `tx`, one outcome per count in order. Records
/// `inventory.adjusted` (reason [`REASON`]) for every change and `inventory.low` for the
/// changed products at or under their threshold. Errors only on database failures.
pub(crate) async fn apply_counts(tx: &mut Tx, counts: &[(&str, InitialStock)]) -> Result<Vec<CountOutcome>> {
    let skus: Vec<&str> = counts.iter().map(|(sku, _)| *sku).collect();
    let mut levels = read_levels(tx, &skus).await?;
    let now = db::now();
    let mut outcomes = Vec::with_capacity(counts.len());
    let mut changed = Vec::new();
    for (sku, counted) in counts {
        let Some(level) = levels.remove(*sku) else {
            outcomes.push(CountOutcome::Refused(format!("no product with SKU {sku}")));
            continue;
        };
        let outcome = apply_one(tx, sku, level, counted.units(), &now).await?;
        if let CountOutcome::Updated { product_id, delta } = outcome {
            let reason = REASON.to_owned();
            events::record(tx, Event::StockAdjusted(StockAdjusted { product_id, delta, reason })).await?;
            changed.push(product_id);
        }
        outcomes.push(outcome);
    }
    record_if_low(tx, &changed).await?;
    Ok(outcomes)
}

/// Sets one product's `on_hand` to `counted`, reading it again when a concurrent change
/// moved it after `level` was read.
async fn apply_one(tx: &mut Tx, sku: &str, mut level: Level, counted: i64, now: &str) -> Result<CountOutcome> {
    for _ in 0..ATTEMPTS {
        if counted < level.reserved {
            return Ok(CountOutcome::Refused(format!(
                "counted {counted} but open orders hold {} reserved; ship or cancel them first",
                level.reserved
            )));
        }
        if counted == level.on_hand {
            return Ok(CountOutcome::Unchanged { product_id: level.product_id });
        }
        let n = sqlx::query(
            "UPDATE inventory SET on_hand = $1, updated_at = $2 \
             WHERE product_id = $3 AND on_hand = $4 AND reserved <= $1",
        )
        .bind(counted)
        .bind(now)
        .bind(level.product_id.to_string())
        .bind(level.on_hand)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 1 {
            // Both lie in [0, MAX_STOCK]: the difference cannot overflow.
            return Ok(CountOutcome::Updated { product_id: level.product_id, delta: counted - level.on_hand });
        }
        match read_levels(tx, &[sku]).await?.remove(sku) {
            Some(now_level) => level = now_level,
            None => return Ok(CountOutcome::Refused(format!("no product with SKU {sku}"))),
        }
    }
    Ok(CountOutcome::Refused("the stock kept changing while the count was applied; import the row again".into()))
}

/// `sku → level` of the products among `skus` (unknown SKUs are absent).
async fn read_levels(tx: &mut Tx, skus: &[&str]) -> Result<HashMap<String, Level>> {
    let mut levels = HashMap::with_capacity(skus.len());
    for chunk in skus.chunks(LOOKUP_CHUNK) {
        let mut b = SqlBuilder::new(
            "SELECT p.sku, i.product_id, i.on_hand, i.reserved \
             FROM products p JOIN inventory i ON i.product_id = p.id WHERE p.sku IN (",
        );
        for (i, sku) in chunk.iter().enumerate() {
            let a = b.arg(Arg::Text((*sku).to_owned()));
            b.push(if i == 0 { "" } else { ", " }).push(&a);
        }
        b.push(")");
        for row in b.build().fetch_all(&mut **tx).await? {
            let level = Level {
                product_id: db::parse_id(&row.try_get::<String, _>("product_id")?)?,
                on_hand: row.try_get("on_hand")?,
                reserved: row.try_get("reserved")?,
            };
            levels.insert(row.try_get::<String, _>("sku")?, level);
        }
    }
    Ok(levels)
}
