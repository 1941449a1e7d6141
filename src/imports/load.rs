//! The common loader: writes a [`Batch`] of normalized records in one transaction,
//! idempotently. Every insert is `ON CONFLICT (<natural key>) DO NOTHING`, so what exists
//! already is left exactly as it is and a second run of the same batch inserts nothing.
//!
//! Rows go in multi-row `INSERT`s of at most [`CHUNK_ROWS`] rows, a thousand bound values
//! and 12 kB of data (see [`MAX_BOUND_VALUES`] and [`MAX_BOUND_BYTES`] for why small
//! beats big on both backends), so ten thousand rows take a few hundred round trips, not
//! ten thousand. A record the database would refuse (a broken invariant, an unknown
//! parent, customer or category) is rejected up front and reported instead, so one bad
//! record never aborts the rest.

mod orders;

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::records::{Batch, CategoryRecord, CustomerRecord, ProductRecord, StockCountRecord};
use super::report::{LoadReport, RowError, Tally};
use crate::db::{self, Arg, Db, SqlBuilder, Tx};
use crate::events::{self, Event, ImportCompleted};
use crate::inventory::InitialStock;
use crate::inventory::count::{self, CountOutcome};
use crate::money::Price;

/// Rows per `INSERT` at most (and keys per `IN (…)` lookup).
pub const CHUNK_ROWS: usize = 500;
/// Bound values per statement at most. SQLite looks `$N` names up linearly, so preparing
/// and binding a statement costs O(values²): about 50 ms for 8,000 values (500 orders),
/// about 1 ms for 1,000. Smaller statements import Superstore 2–3 times faster.
const MAX_BOUND_VALUES: usize = 1_000;
/// Bytes of bound values per statement at most, so that a statement's `Bind` message fits
/// one TLS record (16 KiB). sqlx does not set `TCP_NODELAY`, so with TLS a message spread
/// over two records waits (Nagle) for the server's delayed ACK: 40 ms per statement on
/// Linux, which made a Superstore import on PostgreSQL 5 times slower.
const MAX_BOUND_BYTES: usize = 12_000;

/// How many rows of `rows` go in one statement: all statements of one insert get the same
/// shape (so the prepared statement is reused), sized for the widest row.
fn rows_per_statement(rows: &[Vec<Value>]) -> usize {
    let columns = rows.first().map_or(1, Vec::len).max(1);
    let widest = rows
        .iter()
        .map(|row| {
            // Each value also costs a length and a format code in the Bind message.
            row.iter()
                .map(|v| match v {
                    Value::Bind(Arg::Text(s)) => s.len() + 6,
                    Value::Bind(Arg::Int(_)) => 8 + 6,
                    Value::Null | Value::Sql(_) => 0,
                })
                .sum::<usize>()
        })
        .max()
        .unwrap_or(1)
        .max(1);
    (MAX_BOUND_VALUES / columns).min(MAX_BOUND_BYTES / widest).clamp(1, CHUNK_ROWS)
}

/// Writes `batch` in one transaction: categories, then products with their inventory rows,
/// customers, and orders with their lines (only for orders created in this run). Historical
/// orders never reserve or move stock. Fails only on database errors (nothing is written
/// then); refused records are listed in [`LoadReport::rejected`].
#[tracing::instrument(skip_all, fields(
    import.categories = batch.categories.len(),
    import.products = batch.products.len(),
    import.customers = batch.customers.len(),
    import.orders = batch.orders.len(),
))]
///
/// A run that created anything records one `import.completed` event with the counts, in
/// the same transaction (docs/EVENTS.md: one summary, not one event per row).
pub async fn load(db: &Db, kind: &str, batch: Batch) -> Result<LoadReport, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let report = load_in(&mut tx, kind, batch, true).await?;
    tx.commit().await?;
    tracing::info!(import.created = report.created(), import.rejected = report.rejected.len(), "import loaded");
    Ok(report)
}

/// [`load`] inside the caller's transaction (a batch of an import job, committed with the
/// job's row problems). With `summary`, records the `import.completed` event too.
pub async fn load_in(tx: &mut Tx, kind: &str, batch: Batch, summary: bool) -> Result<LoadReport, sqlx::Error> {
    let mut report = LoadReport::default();
    let now = db::now();
    let product_slugs = batch.products.iter().filter_map(|p| p.category_slug.clone());
    let categories = load_categories(tx, &batch.categories, product_slugs, &now, &mut report).await?;
    load_products(tx, batch.products, &categories, &now, &mut report).await?;
    load_customers(tx, batch.customers, &mut report).await?;
    orders::load_orders(tx, batch.orders, &mut report).await?;
    load_stock_counts(tx, batch.stock_counts, &mut report).await?;
    if summary && report.created() > 0 {
        record_summary(tx, kind, &report).await?;
    }
    Ok(report)
}

/// Sets the counted stock levels (`inventory::count`): a SKU counted twice in the batch
/// keeps its first count and the later rows are rejected, like a SKU listed twice in a
/// products file.
async fn load_stock_counts(
    tx: &mut Tx,
    records: Vec<StockCountRecord>,
    report: &mut LoadReport,
) -> Result<(), sqlx::Error> {
    let mut first_line: HashMap<&str, Option<u64>> = HashMap::new();
    let mut counts = Vec::with_capacity(records.len());
    let mut lines = Vec::with_capacity(records.len());
    for r in &records {
        if let Some(first) = first_line.get(r.sku.as_str()) {
            let at = first.map(|l| format!(" (line {l})")).unwrap_or_default();
            report.rejected.push(RowError::at(r.line, format!("stock {}: SKU appears earlier{at}", r.sku.as_str())));
            continue;
        }
        first_line.insert(r.sku.as_str(), r.line);
        counts.push((r.sku.as_str(), r.on_hand));
        lines.push(r.line);
    }
    let outcomes = count::apply_counts(tx, &counts).await.map_err(into_sqlx)?;
    for ((outcome, (sku, _)), line) in outcomes.into_iter().zip(&counts).zip(lines) {
        match outcome {
            CountOutcome::Updated { product_id, .. } => {
                report.stock_levels.created += 1;
                report.changed_products.push(product_id);
            }
            CountOutcome::Unchanged { .. } => report.stock_levels.present += 1,
            CountOutcome::Refused(why) => report.rejected.push(RowError::at(line, format!("stock {sku}: {why}"))),
        }
    }
    Ok(())
}

/// The loader reports database failures only; any other error of a service function it
/// calls would be a bug, and surfaces as one.
fn into_sqlx(e: crate::error::Error) -> sqlx::Error {
    match e {
        crate::error::Error::Database(e) => e,
        other => sqlx::Error::Protocol(format!("stock count: {other}")),
    }
}

/// Records one `import.completed` event with `report`'s counts.
pub async fn record_summary(tx: &mut Tx, kind: &str, report: &LoadReport) -> Result<(), sqlx::Error> {
    let counts = [
        ("categories", report.categories.created),
        ("products", report.products.created),
        ("customers", report.customers.created),
        ("orders", report.orders.created),
        ("order_lines", report.order_lines_created),
    ];
    let counts = counts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let summary = ImportCompleted { kind: kind.to_owned(), counts };
    events::record(tx, Event::ImportCompleted(summary)).await
}

/// A value in a row for [`insert_rows`].
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// Bound as a `$N` parameter.
    Bind(Arg),
    Null,
    /// A fixed SQL literal such as `'active'`, never input.
    Sql(&'static str),
}

pub(super) fn text(s: impl Into<String>) -> Value {
    Value::Bind(Arg::Text(s.into()))
}

pub(super) fn int(i: i64) -> Value {
    Value::Bind(Arg::Int(i))
}

pub(super) fn opt_text(s: Option<impl Into<String>>) -> Value {
    s.map_or(Value::Null, text)
}

/// Runs `head (…), (…) tail` for each chunk of `rows` and returns the first column of every
/// row the statements return (`tail` usually ends in `RETURNING <key>`; without one the
/// result is empty). `head` and `tail` are fixed SQL; values are always bound.
pub(super) async fn insert_rows(
    tx: &mut Tx,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut returned = Vec::new();
    for chunk in rows.chunks(rows_per_statement(&rows)) {
        let mut b = SqlBuilder::new(head);
        for (i, row) in chunk.iter().enumerate() {
            b.push(if i == 0 { "(" } else { ", (" });
            for (j, value) in row.iter().enumerate() {
                let placeholder = match value {
                    Value::Bind(arg) => b.arg(arg.clone()),
                    Value::Null => "NULL".to_owned(),
                    Value::Sql(literal) => (*literal).to_owned(),
                };
                b.push(if j == 0 { "" } else { ", " }).push(&placeholder);
            }
            b.push(")");
        }
        b.push(tail);
        for row in b.build().fetch_all(&mut **tx).await? {
            returned.push(row.try_get::<String, _>(0)?);
        }
    }
    Ok(returned)
}

/// `key → id` for the rows of `table` whose `key_column` is one of `keys` (`table` and
/// `key_column` are fixed SQL names, never input).
pub(super) async fn ids_by(
    tx: &mut Tx,
    table: &str,
    key_column: &str,
    keys: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut ids = HashMap::with_capacity(keys.len());
    let longest = keys.iter().map(|k| k.len() + 6).max().unwrap_or(1);
    for chunk in keys.chunks((MAX_BOUND_BYTES / longest).clamp(1, CHUNK_ROWS)) {
        let mut b = SqlBuilder::new(&format!("SELECT {key_column}, id FROM {table} WHERE {key_column} IN ("));
        for (i, key) in chunk.iter().enumerate() {
            let a = b.arg(Arg::Text(key.clone()));
            b.push(if i == 0 { "" } else { ", " }).push(&a);
        }
        b.push(")");
        for row in b.build().fetch_all(&mut **tx).await? {
            ids.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
        }
    }
    Ok(ids)
}

/// Inserts the categories a level at a time (roots, then their children, …) so that every
/// parent id is known, read back from the database, before a child refers to it. Returns
/// `slug → id` for every slug the batch mentions that exists now.
async fn load_categories(
    tx: &mut Tx,
    records: &[CategoryRecord],
    also_wanted: impl Iterator<Item = String>,
    now: &str,
    report: &mut LoadReport,
) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut seen = HashSet::new();
    let unique: Vec<&CategoryRecord> = records.iter().filter(|c| seen.insert(c.slug.clone())).collect();
    let mut wanted: Vec<String> = seen.into_iter().collect();
    wanted.extend(records.iter().filter_map(|c| c.parent_slug.clone()));
    wanted.extend(also_wanted);
    wanted.sort();
    wanted.dedup();
    let mut ids = ids_by(tx, "categories", "slug", &wanted).await?;
    let (present, mut pending): (Vec<&CategoryRecord>, Vec<&CategoryRecord>) =
        unique.into_iter().partition(|c| ids.contains_key(&c.slug));
    report.categories.present += present.len() as u64;
    while !pending.is_empty() {
        let (ready, rest): (Vec<&CategoryRecord>, Vec<&CategoryRecord>) =
            pending.into_iter().partition(|c| c.parent_slug.as_ref().is_none_or(|p| ids.contains_key(p)));
        if ready.is_empty() {
            for c in rest {
                let parent = c.parent_slug.as_deref().unwrap_or_default();
                report.rejected.push(RowError::at(None, format!("category {}: no parent category {parent}", c.slug)));
            }
            break;
        }
        let rows = ready
            .iter()
            .map(|c| {
                let parent = c.parent_slug.as_ref().and_then(|p| ids.get(p)).cloned();
                vec![text(db::new_id().to_string()), opt_text(parent), text(&c.name), text(&c.slug), text(now)]
            })
            .collect();
        let created = insert_rows(
            tx,
            "INSERT INTO categories (id, parent_id, name, slug, created_at) VALUES ",
            " ON CONFLICT (slug) DO NOTHING RETURNING slug",
            rows,
        )
        .await?;
        count(&mut report.categories, ready.len(), created.len());
        let slugs: Vec<String> = ready.iter().map(|c| c.slug.clone()).collect();
        ids.extend(ids_by(tx, "categories", "slug", &slugs).await?);
        pending = rest;
    }
    Ok(ids)
}

fn count(tally: &mut Tally, attempted: usize, created: usize) {
    tally.created += created as u64;
    tally.present += attempted.saturating_sub(created) as u64;
}

/// Inserts new products (the first record of a SKU wins) and an inventory row for each
/// product created now; existing products and their stock are left alone.
async fn load_products(
    tx: &mut Tx,
    records: Vec<ProductRecord>,
    categories: &HashMap<String, String>,
    now: &str,
    report: &mut LoadReport,
) -> Result<(), sqlx::Error> {
    let mut first_line: HashMap<String, Option<u64>> = HashMap::new();
    let mut rows = Vec::with_capacity(records.len());
    let mut stock: HashMap<String, (i64, i64)> = HashMap::new();
    for p in records {
        let reject = |reason: String| RowError::at(p.line, format!("product {}: {reason}", p.sku.as_str()));
        if let Some(first) = first_line.get(p.sku.as_str()) {
            let at = first.map(|l| format!(" (line {l})")).unwrap_or_default();
            report.rejected.push(reject(format!("SKU appears earlier{at}")));
            continue;
        }
        first_line.insert(p.sku.as_str().to_owned(), p.line);
        if p.price_minor < 0 || p.on_hand < 0 || p.low_stock_threshold < 0 {
            report.rejected.push(reject("price, stock and threshold must not be negative".into()));
            continue;
        }
        // The catalog's own bounds, so imported rows obey what the API enforces.
        if let Err(why) = Price::parse(p.price_minor) {
            report.rejected.push(reject(format!("price_minor {why}")));
            continue;
        }
        if let Err(why) = InitialStock::parse(p.on_hand) {
            report.rejected.push(reject(format!("on_hand {why}")));
            continue;
        }
        let category = match &p.category_slug {
            Some(slug) => match categories.get(slug) {
                Some(id) => Some(id.clone()),
                None => {
                    report.rejected.push(reject(format!("no category {slug}")));
                    continue;
                }
            },
            None => None,
        };
        let id = db::new_id().to_string();
        stock.insert(id.clone(), (p.on_hand, p.low_stock_threshold));
        rows.push(vec![
            text(&id),
            text(p.sku.as_str()),
            text(p.name),
            text(p.description),
            int(p.price_minor),
            text(p.currency.as_str()),
            opt_text(category),
            Value::Sql("'active'"),
            Value::Sql("1"),
            text(now),
            text(now),
        ]);
    }
    let attempted = rows.len();
    let created = insert_rows(
        tx,
        "INSERT INTO products (id, sku, name, description, price_minor, currency, category_id, status, \
         version, created_at, updated_at) VALUES ",
        " ON CONFLICT (sku) DO NOTHING RETURNING id",
        rows,
    )
    .await?;
    count(&mut report.products, attempted, created.len());
    let inventory = created
        .iter()
        .filter_map(|id| stock.get(id).map(|(on_hand, threshold)| (id, *on_hand, *threshold)))
        .map(|(id, on_hand, threshold)| vec![text(id), int(on_hand), int(0), int(threshold), text(now)])
        .collect();
    insert_rows(
        tx,
        "INSERT INTO inventory (product_id, on_hand, reserved, low_stock_threshold, updated_at) VALUES ",
        "",
        inventory,
    )
    .await?;
    Ok(())
}

/// Inserts customers without a password (role `customer`). A clash on email or
/// `external_ref` leaves the existing user as it is.
async fn load_customers(tx: &mut Tx, records: Vec<CustomerRecord>, report: &mut LoadReport) -> Result<(), sqlx::Error> {
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(records.len());
    for c in records {
        let email_new = seen.insert(c.email.as_str().to_owned());
        let ref_new = c.external_ref.as_ref().is_none_or(|r| seen.insert(format!("\u{0}ref:{r}")));
        if !email_new || !ref_new {
            let reason = format!("customer {}: email or external_ref appears earlier", c.email.as_str());
            report.rejected.push(RowError::at(c.line, reason));
            continue;
        }
        let created_at = db::ts(c.created_at);
        rows.push(vec![
            text(db::new_id().to_string()),
            text(c.email.as_str()),
            text(c.name),
            opt_text(c.external_ref),
            opt_text(c.segment),
            Value::Sql("'customer'"),
            text(&created_at),
            text(created_at),
        ]);
    }
    let attempted = rows.len();
    let created = insert_rows(
        tx,
        "INSERT INTO users (id, email, name, external_ref, segment, role, created_at, updated_at) VALUES ",
        " ON CONFLICT DO NOTHING RETURNING id",
        rows,
    )
    .await?;
    count(&mut report.customers, attempted, created.len());
    Ok(())
}
