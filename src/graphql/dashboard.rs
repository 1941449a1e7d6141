//! `dashboard` (staff): the same `dashboard::report` as `GET /api/v1/dashboard`. A section
//! that missed its deadline is null and named in `missing`.

use std::time::Duration;

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

use super::error::Gql;
use super::schema::{Long, app, principal};
use crate::dashboard::{self, PeriodParams};

#[derive(SimpleObject)]
pub struct DayRevenue {
    /// `YYYY-MM-DD`, UTC.
    day: String,
    currency: String,
    revenue_minor: Long,
    orders: Long,
}

#[derive(SimpleObject)]
pub struct StatusCount {
    status: String,
    orders: Long,
}

#[derive(SimpleObject)]
pub struct TopProduct {
    sku: String,
    name: String,
    currency: String,
    revenue_minor: Long,
    units: Long,
}

#[derive(SimpleObject)]
pub struct LowStock {
    product_id: String,
    sku: String,
    name: String,
    available: Long,
    low_stock_threshold: Long,
}

#[derive(SimpleObject)]
pub struct DayCount {
    day: String,
    count: Long,
}

#[derive(SimpleObject)]
pub struct NewCustomers {
    total: Long,
    by_day: Vec<DayCount>,
}

/// Sales, orders by status, top products, low stock and new customers for a period.
#[derive(SimpleObject)]
pub struct Dashboard {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    revenue_by_day: Option<Vec<DayRevenue>>,
    orders_by_status: Option<Vec<StatusCount>>,
    top_products: Option<Vec<TopProduct>>,
    low_stock: Option<Vec<LowStock>>,
    new_customers: Option<NewCustomers>,
    /// Sections left out (deadline missed), e.g. `["top_products"]`.
    missing: Vec<String>,
}

impl From<dashboard::Dashboard> for Dashboard {
    fn from(d: dashboard::Dashboard) -> Self {
        Self {
            from: d.from,
            to: d.to,
            revenue_by_day: d.revenue_by_day.map(|v| {
                v.into_iter()
                    .map(|r| DayRevenue {
                        day: r.day,
                        currency: r.currency,
                        revenue_minor: Long(r.revenue_minor),
                        orders: Long(r.orders),
                    })
                    .collect()
            }),
            orders_by_status: d
                .orders_by_status
                .map(|v| v.into_iter().map(|s| StatusCount { status: s.status, orders: Long(s.orders) }).collect()),
            top_products: d.top_products.map(|v| {
                v.into_iter()
                    .map(|t| TopProduct {
                        sku: t.sku,
                        name: t.name,
                        currency: t.currency,
                        revenue_minor: Long(t.revenue_minor),
                        units: Long(t.units),
                    })
                    .collect()
            }),
            low_stock: d.low_stock.map(|v| {
                v.into_iter()
                    .map(|l| LowStock {
                        product_id: l.product_id,
                        sku: l.sku,
                        name: l.name,
                        available: Long(l.available),
                        low_stock_threshold: Long(l.low_stock_threshold),
                    })
                    .collect()
            }),
            new_customers: d.new_customers.map(|n| NewCustomers {
                total: Long(n.total),
                by_day: n.by_day.into_iter().map(|c| DayCount { day: c.day, count: Long(c.count) }).collect(),
            }),
            missing: d.missing.into_iter().map(str::to_owned).collect(),
        }
    }
}

#[derive(Default)]
pub struct DashboardQueries;

#[Object]
impl DashboardQueries {
    /// The staff dashboard for whole UTC days `from..=to` (default: the last 30 days).
    async fn dashboard(
        &self,
        ctx: &Context<'_>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> async_graphql::Result<Dashboard> {
        let app = app(ctx);
        let deadline = Duration::from_millis(app.config.dashboard.deadline_ms);
        let params = PeriodParams { from, to };
        let d = dashboard::report(&principal(ctx)?, app.dashboard.as_ref(), &params, deadline).await.gql()?;
        Ok(d.into())
    }
}
