//! `orders.csv`: one row per order line,
//! `order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity,discount`.
//! Rows with the same `order_number` form one order and must agree on its customer, date,
//! status and currency. `unit_price` and `discount` (the line's total discount, default 0)
//! are decimals in major units. The customer must exist (import customers first); a SKU
//! that is not in the catalog still makes a line, linked to no product.
//!
//! An order is imported whole or not at all: if any of its rows is bad, the bad rows are
//! reported and so is the skipped order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Fields, Table, timestamp};
use crate::auth::{Email, parse_name};
use crate::catalog::Sku;
use crate::imports::records::{Batch, CustomerKey, LineRecord, OrderRecord};
use crate::imports::report::RowError;
use crate::money::Currency;
use crate::orders::OrderStatus;

const REQUIRED: &[&str] =
    &["order_number", "customer_email", "placed_at", "status", "currency", "sku", "name", "unit_price", "quantity"];
const OPTIONAL: &[&str] = &["discount"];
/// The format as a streamed import reads it.
pub(crate) const FORMAT: super::Format =
    super::Format { required: REQUIRED, optional: OPTIONAL, parse, group_by: Some("order_number") };

/// The order-level fields of one row.
struct Head {
    email: Email,
    placed_at: DateTime<Utc>,
    status: OrderStatus,
    currency: Currency,
}

/// An order being assembled from its rows.
struct Group {
    record: Option<OrderRecord>,
    bad_lines: Vec<u64>,
    first_line: u64,
}

pub(crate) fn parse(table: &Table) -> (Batch, Vec<RowError>) {
    let mut errors = table.errors.clone();
    let mut groups: Vec<(String, Group)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (line, row) in &table.rows {
        let number = table.get(row, "order_number");
        let parsed = parse_row(table, row);
        if number.is_empty() {
            let mut f = parsed.err().unwrap_or_default();
            f.invalid("order_number", "must not be empty");
            errors.push(f.error(*line));
            continue;
        }
        let i = *index.entry(number.to_owned()).or_insert_with(|| {
            groups.push((number.to_owned(), Group { record: None, bad_lines: Vec::new(), first_line: *line }));
            groups.len() - 1
        });
        let Some((_, group)) = groups.get_mut(i) else { continue };
        let (head, order_line) = match parsed {
            Ok(p) => p,
            Err(f) => {
                errors.push(f.error(*line));
                group.bad_lines.push(*line);
                continue;
            }
        };
        match &mut group.record {
            None if group.bad_lines.is_empty() => {
                group.record = Some(OrderRecord {
                    number: number.to_owned(),
                    customer: CustomerKey::Email(head.email),
                    status: head.status,
                    placed_at: head.placed_at,
                    shipped_at: None,
                    delivered_at: None,
                    ship_mode: None,
                    shipping_address: None,
                    currency: head.currency,
                    lines: vec![order_line],
                    line: Some(*line),
                });
            }
            None => {}
            Some(order) => {
                let same = order.customer == CustomerKey::Email(head.email)
                    && order.placed_at == head.placed_at
                    && order.status == head.status
                    && order.currency == head.currency;
                if same {
                    order.lines.push(order_line);
                } else {
                    let reason = format!(
                        "customer_email, placed_at, status and currency must match line {} of order {number}",
                        group.first_line
                    );
                    errors.push(RowError::at(Some(*line), reason));
                    group.bad_lines.push(*line);
                }
            }
        }
    }
    let mut batch = Batch::default();
    for (number, group) in groups {
        if group.bad_lines.is_empty() {
            batch.orders.extend(group.record);
        } else {
            let lines: Vec<String> = group.bad_lines.iter().map(u64::to_string).collect();
            let which = match lines.as_slice() {
                [one] => format!("line {one} is"),
                many => format!("lines {} are", many.join(", ")),
            };
            let reason = format!("order {number} skipped: {which} invalid");
            errors.push(RowError::at(Some(group.first_line), reason));
        }
    }
    (batch, errors)
}

fn parse_row(table: &Table, row: &csv::StringRecord) -> Result<(Head, LineRecord), Fields> {
    let get = |c: &str| table.get(row, c);
    let mut f = Fields::default();
    let email = f.take("customer_email", Email::parse(get("customer_email")));
    let placed_at = f.take("placed_at", timestamp(get("placed_at")));
    let status = f.take("status", OrderStatus::parse(get("status")));
    let currency = f.take("currency", Currency::parse(get("currency")));
    let sku = f.take("sku", Sku::parse(get("sku")));
    let name = f.take("name", parse_name(get("name")));
    let quantity = f.take("quantity", quantity(get("quantity")));
    let (unit, discount) = match &currency {
        Some(c) => {
            let unit = f.take("unit_price", c.parse_amount(get("unit_price")));
            let raw = get("discount");
            let discount = f.take("discount", if raw.is_empty() { Ok(0) } else { c.parse_amount(raw) });
            (unit, discount)
        }
        None => (None, None),
    };
    let (
        Some(email),
        Some(placed_at),
        Some(status),
        Some(currency),
        Some(sku),
        Some(name),
        Some(qty),
        Some(unit),
        Some(discount),
    ) = (email, placed_at, status, currency, sku, name, quantity, unit, discount)
    else {
        return Err(f);
    };
    let Some(gross) = unit.checked_mul(qty) else {
        f.invalid("quantity", "unit_price × quantity is too large");
        return Err(f);
    };
    if discount > gross {
        f.invalid("discount", "must not exceed unit_price × quantity");
        return Err(f);
    }
    let line = LineRecord {
        sku,
        name,
        unit_price_minor: unit,
        quantity: qty,
        discount_minor: discount,
        line_total_minor: gross - discount,
    };
    Ok((Head { email, placed_at, status, currency }, line))
}

/// A whole number > 0.
fn quantity(raw: &str) -> Result<i64, String> {
    match raw.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{raw:?} is not a whole number > 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "order_number,customer_email,placed_at,status,currency,sku,name,unit_price,quantity,discount\n";

    #[test]
    fn rows_of_one_number_form_one_order_with_exact_totals() {
        let csv = format!(
            "{HEADER}1001,ann@example.com,2024-03-01,delivered,USD,CH-1,Oak chair,129.90,2,10\n\
             1001,ann@example.com,2024-03-01,delivered,USD,DK-1,Desk,300,1,\n\
             1002,bob@example.com,2024-03-02T09:30:00Z,cancelled,EUR,CH-1,Oak chair,99.5,1,0\n"
        );
        let table = Table::read(csv.as_bytes(), REQUIRED, OPTIONAL).expect("csv");
        let (batch, errors) = parse(&table);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(batch.orders.len(), 2);
        let first = &batch.orders[0];
        assert_eq!(first.lines.len(), 2);
        assert_eq!(first.lines[0].line_total_minor, 24980);
        assert_eq!(first.totals(), Ok((55980, 1000, 54980)));
        assert_eq!(batch.orders[1].currency.as_str(), "EUR");
    }

    #[test]
    fn a_bad_row_skips_its_whole_order_and_is_reported() {
        let csv = format!(
            "{HEADER}1001,ann@example.com,2024-03-01,delivered,USD,CH-1,Oak chair,129.90,2,0\n\
             1001,ann@example.com,2024-03-01,delivered,USD,DK-1,Desk,300,0,\n\
             1002,bob@example.com,2024-03-02,shipped,USD,CH-1,Oak chair,10,1,11\n\
             1003,cy@example.com,2024-03-02,teleported,USD,CH-1,Oak chair,10,1,\n\
             1004,cy@example.com,2024-03-02,shipped,USD,CH-1,Oak chair,10,1,\n\
             1004,cy@example.com,2024-03-03,shipped,USD,CH-1,Oak chair,10,1,\n\
             ,cy@example.com,2024-03-02,shipped,USD,CH-1,Oak chair,10,1,\n"
        );
        let table = Table::read(csv.as_bytes(), REQUIRED, OPTIONAL).expect("csv");
        let (batch, errors) = parse(&table);
        assert!(batch.orders.is_empty());
        let at =
            |line: u64| errors.iter().filter(|e| e.line == Some(line)).map(|e| e.reason.as_str()).collect::<Vec<_>>();
        assert!(at(3).iter().any(|r| r.contains("quantity:")), "{errors:?}");
        assert!(at(2).iter().any(|r| r.contains("order 1001 skipped")), "{errors:?}");
        assert!(at(4).iter().any(|r| r.contains("discount:")), "{errors:?}");
        assert!(at(5).iter().any(|r| r.contains("status:")), "{errors:?}");
        assert!(at(7).iter().any(|r| r.contains("must match line 6")), "{errors:?}");
        assert!(at(8).iter().any(|r| r.contains("order_number:")), "{errors:?}");
    }
}
