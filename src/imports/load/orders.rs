//! Historical orders and their lines. An order is inserted with its lines in the same
//! transaction or not at all, so an existing order number always has all its lines and
//! skipping it on a second run is correct.

use std::collections::{HashMap, HashSet};

use super::{Value, count, ids_by, insert_rows, int, opt_text, text};
use crate::db::{self, Tx};
use crate::imports::records::{CustomerKey, OrderRecord};
use crate::imports::report::{LoadReport, RowError};
use crate::orders::OrderStatus;

/// An order ready to insert: its record, resolved customer id and totals.
struct Ready {
    record: OrderRecord,
    customer_id: String,
    totals: (i64, i64, i64),
}

/// Inserts the orders whose number is new and, for exactly those, their lines. Orders that
/// name an unknown customer, hold stock (`pending_payment`, `paid`), break a line invariant
/// or repeat a number of the batch are rejected.
pub(super) async fn load_orders(
    tx: &mut Tx,
    records: Vec<OrderRecord>,
    report: &mut LoadReport,
) -> Result<(), sqlx::Error> {
    let customers = resolve_customers(tx, &records).await?;
    let mut skus: Vec<String> =
        records.iter().flat_map(|o| o.lines.iter().map(|l| l.sku.as_str().to_owned())).collect();
    skus.sort();
    skus.dedup();
    let products = ids_by(tx, "products", "sku", &skus).await?;

    let mut numbers = HashSet::new();
    let mut ready = Vec::with_capacity(records.len());
    for record in records {
        let reject = |reason: String| RowError::at(record.line, format!("order {}: {reason}", record.number));
        if !numbers.insert(record.number.clone()) {
            report.rejected.push(reject("the number appears earlier in this import".into()));
            continue;
        }
        if record.status.holds_reservation() {
            report.rejected.push(reject(format!(
                "status {} would hold stock; import orders as shipped, delivered, cancelled, failed or refunded",
                record.status.as_str()
            )));
            continue;
        }
        let totals = match record.totals() {
            Ok(t) => t,
            Err(e) => {
                report.rejected.push(reject(e));
                continue;
            }
        };
        let Some(customer_id) = customers.get(&lookup_key(&record.customer)).cloned() else {
            report.rejected.push(reject(format!("no customer with {}", record.customer)));
            continue;
        };
        ready.push(Ready { record, customer_id, totals });
    }

    for chunk in ready.chunks(super::CHUNK_ROWS) {
        let mut ids: HashMap<String, &OrderRecord> = HashMap::with_capacity(chunk.len());
        let mut rows = Vec::with_capacity(chunk.len());
        for r in chunk {
            let id = db::new_id().to_string();
            rows.push(order_row(&id, r));
            ids.insert(id, &r.record);
        }
        let created = insert_rows(
            tx,
            "INSERT INTO orders (id, number, customer_id, status, currency, subtotal_minor, discount_minor, \
             total_minor, saga_state, ship_mode, shipping_address, placed_at, shipped_at, delivered_at, \
             closed_at, updated_at) VALUES ",
            " ON CONFLICT (number) DO NOTHING RETURNING id",
            rows,
        )
        .await?;
        count(&mut report.orders, chunk.len(), created.len());
        let mut lines = Vec::new();
        for id in &created {
            let Some(order) = ids.get(id) else { continue };
            for (i, l) in order.lines.iter().enumerate() {
                lines.push(vec![
                    text(id),
                    int(i as i64 + 1),
                    opt_text(products.get(l.sku.as_str()).cloned()),
                    text(l.sku.as_str()),
                    text(&l.name),
                    int(l.unit_price_minor),
                    int(l.quantity),
                    int(l.discount_minor),
                    int(l.line_total_minor),
                ]);
            }
        }
        report.order_lines_created += lines.len() as u64;
        insert_rows(
            tx,
            "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity, \
             discount_minor, line_total_minor) VALUES ",
            "",
            lines,
        )
        .await?;
    }
    Ok(())
}

fn order_row(id: &str, r: &Ready) -> Vec<Value> {
    let o = &r.record;
    let (subtotal, discount, total) = r.totals;
    // The last thing known to have happened to it; a historical order's import is not a change.
    let updated_at =
        [Some(o.placed_at), o.shipped_at, o.delivered_at].into_iter().flatten().max().unwrap_or(o.placed_at);
    let address = o.shipping_address.as_ref().and_then(|a| serde_json::to_string(a).ok());
    vec![
        text(id),
        text(&o.number),
        text(&r.customer_id),
        text(o.status.as_str()),
        text(o.currency.as_str()),
        int(subtotal),
        int(discount),
        int(total),
        Value::Sql("'completed'"),
        opt_text(o.ship_mode.clone()),
        opt_text(address),
        text(db::ts(o.placed_at)),
        opt_text(o.shipped_at.map(db::ts)),
        opt_text(o.delivered_at.map(db::ts)),
        // Closed states get a closing time; the import knows no better than the order date.
        opt_text(
            matches!(o.status, OrderStatus::Cancelled | OrderStatus::Failed | OrderStatus::Refunded)
                .then(|| db::ts(updated_at)),
        ),
        text(db::ts(updated_at)),
    ]
}

/// A customer key as a map key: which column, and the value.
fn lookup_key(key: &CustomerKey) -> (&'static str, String) {
    match key {
        CustomerKey::ExternalRef(r) => ("external_ref", r.clone()),
        CustomerKey::Email(e) => ("email", e.as_str().to_owned()),
    }
}

/// [`lookup_key`] → user id, for every customer the orders name.
async fn resolve_customers(
    tx: &mut Tx,
    records: &[OrderRecord],
) -> Result<HashMap<(&'static str, String), String>, sqlx::Error> {
    let mut out = HashMap::new();
    for column in ["external_ref", "email"] {
        let mut keys: Vec<String> =
            records.iter().map(|o| lookup_key(&o.customer)).filter(|(c, _)| *c == column).map(|(_, k)| k).collect();
        keys.sort();
        keys.dedup();
        for (key, id) in ids_by(tx, "users", column, &keys).await? {
            out.insert((column, key), id);
        }
    }
    Ok(out)
}
