//! The staff dashboard: sales by day, orders by status, top products, low stock and new
//! customers for a period, fetched concurrently under one deadline. A source that misses
//! the deadline (or fails) is left out and named in `missing`: a partial answer, not a 500.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use crate::db::{self, Db};
use crate::error::Result;

/// Orders that count as revenue.
const REVENUE_STATUSES: &str = "('paid', 'shipped', 'delivered')";

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct DayRevenue {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub currency: String,
    pub revenue_minor: i64,
    pub orders: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct StatusCount {
    pub status: String,
    pub orders: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct TopProduct {
    pub sku: String,
    pub name: String,
    pub currency: String,
    pub revenue_minor: i64,
    pub units: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct LowStock {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub available: i64,
    pub low_stock_threshold: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct NewCustomers {
    pub total: i64,
    pub by_day: Vec<DayCount>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct DayCount {
    pub day: String,
    pub count: i64,
}

/// The half-open period `[from, to)` a dashboard covers.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// Whole UTC days `from..=to`.
    pub fn days(from: NaiveDate, to: NaiveDate) -> Self {
        let start = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
        let end = to.succ_opt().unwrap_or(to).and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
        Self { from: start, to: end }
    }
}

/// Where each dashboard section comes from. The seam lets a deployment move a source
/// elsewhere (a replica, a warehouse) and lets tests slow one down.
pub trait DashboardSources: Send + Sync + 'static {
    fn revenue_by_day(&self, p: Period) -> BoxFuture<'_, Result<Vec<DayRevenue>>>;
    fn orders_by_status(&self, p: Period) -> BoxFuture<'_, Result<Vec<StatusCount>>>;
    fn top_products(&self, p: Period, limit: i64) -> BoxFuture<'_, Result<Vec<TopProduct>>>;
    fn low_stock(&self, limit: i64) -> BoxFuture<'_, Result<Vec<LowStock>>>;
    fn new_customers(&self, p: Period) -> BoxFuture<'_, Result<NewCustomers>>;
}

/// The default: every section straight from the database.
pub struct SqlSources {
    db: Db,
}

impl SqlSources {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl DashboardSources for SqlSources {
    fn revenue_by_day(&self, p: Period) -> BoxFuture<'_, Result<Vec<DayRevenue>>> {
        async move {
            let sql = format!(
                "SELECT substr(placed_at, 1, 10) AS day, currency, CAST(SUM(total_minor) AS BIGINT) AS revenue, \
                 COUNT(*) AS orders FROM orders WHERE status IN {REVENUE_STATUSES} AND placed_at >= $1 AND placed_at < $2 \
                 GROUP BY substr(placed_at, 1, 10), currency ORDER BY day, currency"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(db::ts(p.from))
                .bind(db::ts(p.to))
                .fetch_all(self.db.pool())
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(DayRevenue {
                        day: r.try_get("day")?,
                        currency: r.try_get("currency")?,
                        revenue_minor: r.try_get("revenue")?,
                        orders: r.try_get("orders")?,
                    })
                })
                .collect()
        }
        .boxed()
    }

    fn orders_by_status(&self, p: Period) -> BoxFuture<'_, Result<Vec<StatusCount>>> {
        async move {
            let rows = sqlx::query(
                "SELECT status, COUNT(*) AS orders FROM orders WHERE placed_at >= $1 AND placed_at < $2 \
                 GROUP BY status ORDER BY status",
            )
            .bind(db::ts(p.from))
            .bind(db::ts(p.to))
            .fetch_all(self.db.pool())
            .await?;
            rows.iter()
                .map(|r| Ok(StatusCount { status: r.try_get("status")?, orders: r.try_get("orders")? }))
                .collect()
        }
        .boxed()
    }

    fn top_products(&self, p: Period, limit: i64) -> BoxFuture<'_, Result<Vec<TopProduct>>> {
        async move {
            let sql = format!(
                "SELECT l.sku, MAX(l.name) AS name, o.currency, CAST(SUM(l.line_total_minor) AS BIGINT) AS revenue, \
                 CAST(SUM(l.quantity) AS BIGINT) AS units FROM order_lines l JOIN orders o ON o.id = l.order_id \
                 WHERE o.status IN {REVENUE_STATUSES} AND o.placed_at >= $1 AND o.placed_at < $2 \
                 GROUP BY l.sku, o.currency ORDER BY revenue DESC, l.sku LIMIT $3"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(db::ts(p.from))
                .bind(db::ts(p.to))
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(TopProduct {
                        sku: r.try_get("sku")?,
                        name: r.try_get("name")?,
                        currency: r.try_get("currency")?,
                        revenue_minor: r.try_get("revenue")?,
                        units: r.try_get("units")?,
                    })
                })
                .collect()
        }
        .boxed()
    }

    fn low_stock(&self, limit: i64) -> BoxFuture<'_, Result<Vec<LowStock>>> {
        async move {
            let rows = sqlx::query(
                "SELECT p.id, p.sku, p.name, i.on_hand - i.reserved AS available, i.low_stock_threshold \
                 FROM inventory i JOIN products p ON p.id = i.product_id \
                 WHERE p.status = 'active' AND i.on_hand - i.reserved <= i.low_stock_threshold \
                 ORDER BY i.on_hand - i.reserved, p.sku LIMIT $1",
            )
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(LowStock {
                        product_id: r.try_get("id")?,
                        sku: r.try_get("sku")?,
                        name: r.try_get("name")?,
                        available: r.try_get("available")?,
                        low_stock_threshold: r.try_get("low_stock_threshold")?,
                    })
                })
                .collect()
        }
        .boxed()
    }

    fn new_customers(&self, p: Period) -> BoxFuture<'_, Result<NewCustomers>> {
        async move {
            let rows = sqlx::query(
                "SELECT substr(created_at, 1, 10) AS day, COUNT(*) AS n FROM users \
                 WHERE role = 'customer' AND created_at >= $1 AND created_at < $2 \
                 GROUP BY substr(created_at, 1, 10) ORDER BY day",
            )
            .bind(db::ts(p.from))
            .bind(db::ts(p.to))
            .fetch_all(self.db.pool())
            .await?;
            let by_day = rows
                .iter()
                .map(|r| Ok(DayCount { day: r.try_get("day")?, count: r.try_get("n")? }))
                .collect::<Result<Vec<_>>>()?;
            Ok(NewCustomers { total: by_day.iter().map(|d| d.count).sum(), by_day })
        }
        .boxed()
    }
}

/// The dashboard. A section is `null` when its source missed the deadline or failed; its
/// name is then listed in `missing`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub revenue_by_day: Option<Vec<DayRevenue>>,
    pub orders_by_status: Option<Vec<StatusCount>>,
    pub top_products: Option<Vec<TopProduct>>,
    pub low_stock: Option<Vec<LowStock>>,
    pub new_customers: Option<NewCustomers>,
    /// Sections left out, e.g. `["top_products"]`. Empty when the answer is complete.
    pub missing: Vec<&'static str>,
}

/// Fetches every section concurrently; whatever is not done by `deadline` is reported
/// missing.
pub async fn build(sources: &dyn DashboardSources, period: Period, deadline: Duration) -> Dashboard {
    let until = tokio::time::Instant::now() + deadline;
    async fn within<T>(until: tokio::time::Instant, name: &'static str, f: BoxFuture<'_, Result<T>>) -> Option<T> {
        match tokio::time::timeout_at(until, f).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(dashboard.source = name, error = %e, "dashboard source failed");
                None
            }
            Err(_) => {
                tracing::warn!(dashboard.source = name, "dashboard source missed the deadline");
                None
            }
        }
    }
    let (revenue, statuses, top, low, customers) = tokio::join!(
        within(until, "revenue_by_day", sources.revenue_by_day(period)),
        within(until, "orders_by_status", sources.orders_by_status(period)),
        within(until, "top_products", sources.top_products(period, 10)),
        within(until, "low_stock", sources.low_stock(20)),
        within(until, "new_customers", sources.new_customers(period)),
    );
    let mut missing = Vec::new();
    for (name, present) in [
        ("revenue_by_day", revenue.is_some()),
        ("orders_by_status", statuses.is_some()),
        ("top_products", top.is_some()),
        ("low_stock", low.is_some()),
        ("new_customers", customers.is_some()),
    ] {
        if !present {
            missing.push(name);
        }
    }
    Dashboard {
        from: period.from,
        to: period.to,
        revenue_by_day: revenue,
        orders_by_status: statuses,
        top_products: top,
        low_stock: low,
        new_customers: customers,
        missing,
    }
}
