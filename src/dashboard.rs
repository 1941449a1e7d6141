//! The staff dashboard: sales by day, orders by status, top products, low stock and new
//! customers for a period, fetched concurrently under one deadline. A source that misses
//! the deadline (or fails) is left out and named in `missing`: a partial answer, not a 500.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::{self, Db};
use crate::error::{Error, FieldError, Result};
use crate::ratelimit::Class;

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

/// The reporting period as a caller asks for it: whole UTC days, both optional. Checked by
/// [`Period::parse`] (and by [`report`], which names the field in its validation error).
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodParams {
    /// First day, `YYYY-MM-DD` (UTC). Default: 30 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day, inclusive. Default: today.
    pub to: Option<NaiveDate>,
}

/// A dashboard's reporting period: whole UTC days `first..=last`, never reversed and at most
/// [`Period::MAX_SPAN_DAYS`] apart. Sources see it as the half-open instant range
/// `[from(), to())`. Built only by [`Period::parse`] (deserialization included), so a
/// source never sees a reversed or unbounded period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PeriodParams")]
pub struct Period {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Period {
    /// The longest span from the first to the last day: about 10 years, in days.
    pub const MAX_SPAN_DAYS: i64 = 3_660;
    /// The span when only `to` (or nothing) is given: 30 days, `to` included.
    pub const DEFAULT_DAYS: u64 = 30;

    /// The period `from..=to` (whole UTC days), `to` defaulting to today and `from` to 29
    /// days before `to`. The message of an error concerns `from`: after `to`, or more than
    /// [`MAX_SPAN_DAYS`](Self::MAX_SPAN_DAYS) before it.
    pub fn parse(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<Self, String> {
        Self::parse_at(from, to, Utc::now().date_naive())
    }

    /// [`parse`](Self::parse) with `today` given, for a clock-independent answer.
    pub fn parse_at(from: Option<NaiveDate>, to: Option<NaiveDate>, today: NaiveDate) -> Result<Self, String> {
        let to = to.unwrap_or(today);
        let from =
            from.unwrap_or_else(|| to.checked_sub_days(Days::new(Self::DEFAULT_DAYS - 1)).unwrap_or(NaiveDate::MIN));
        if from > to {
            return Err("must not be after `to`".into());
        }
        if (to - from).num_days() > Self::MAX_SPAN_DAYS {
            return Err("the period may span at most 10 years".into());
        }
        let start = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
        let end = to.succ_opt().unwrap_or(to).and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default();
        Ok(Self { from: start, to: end })
    }

    /// The first instant of the period (midnight UTC of its first day).
    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }

    /// The first instant after the period (midnight UTC after its last day).
    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }
}

impl TryFrom<PeriodParams> for Period {
    type Error = String;
    fn try_from(p: PeriodParams) -> Result<Self, String> {
        Self::parse(p.from, p.to)
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

/// The dashboard for `params`' period, for staff: sessions of staff and admins, and their
/// API keys with `dashboard:read`. Every section is fetched from `sources` concurrently;
/// what is not done within `deadline` is `null` and listed in `missing`. Rate class `api`.
///
/// Errors: 401 `Unauthenticated`, 403 `InsufficientScope("dashboard:read")` (a key without
/// it) or `Forbidden` (customers), 422 `Validation` on `from` (after `to`, or a span over
/// [`Period::MAX_SPAN_DAYS`] days), 429 `RateLimited`.
pub async fn report(
    principal: &Principal,
    sources: &dyn DashboardSources,
    params: &PeriodParams,
    deadline: Duration,
) -> Result<Dashboard> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::DashboardRead)?;
    let period =
        Period::parse(params.from, params.to).map_err(|m| Error::Validation(vec![FieldError::new("from", m)]))?;
    Ok(build(sources, period, deadline).await)
}

/// Fetches every section concurrently; whatever is not done by `deadline` is reported
/// missing.
pub async fn build(sources: &dyn DashboardSources, period: Period, deadline: Duration) -> Dashboard {
    let until = tokio::time::Instant::now() + deadline;
    async fn within<T>(until: tokio::time::Instant, name: &'static str, f: BoxFuture<'_, Result<T>>) -> Option<T> {
        match tokio::time::timeout_at(until, f).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(dashboard.source = name, error = ?e, "dashboard source failed");
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
        from: period.from(),
        to: period.to(),
        revenue_by_day: revenue,
        orders_by_status: statuses,
        top_products: top,
        low_stock: low,
        new_customers: customers,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_period_covers_whole_days_with_the_last_one_included() {
        let p = Period::parse(Some(day("2024-02-01")), Some(day("2024-02-29"))).unwrap();
        assert_eq!(db::ts(p.from()), db::ts(day("2024-02-01").and_hms_opt(0, 0, 0).unwrap().and_utc()));
        assert_eq!(db::ts(p.to()), db::ts(day("2024-03-01").and_hms_opt(0, 0, 0).unwrap().and_utc()));
    }

    #[test]
    fn a_period_defaults_to_the_thirty_days_up_to_today() {
        let p = Period::parse_at(None, None, day("2024-03-30")).unwrap();
        assert_eq!((p.from().date_naive(), p.to().date_naive()), (day("2024-03-01"), day("2024-03-31")));
        let q = Period::parse_at(None, Some(day("2024-01-30")), day("2030-01-01")).unwrap();
        assert_eq!(q.from().date_naive(), day("2024-01-01"));
    }

    #[test]
    fn reversed_and_over_long_periods_are_refused() {
        assert_eq!(
            Period::parse(Some(day("2020-02-01")), Some(day("2020-01-01"))).unwrap_err(),
            "must not be after `to`"
        );
        assert!(Period::parse(Some(day("2010-01-01")), Some(day("2020-01-09"))).is_ok());
        assert_eq!(
            Period::parse(Some(day("2010-01-01")), Some(day("2020-01-10"))).unwrap_err(),
            "the period may span at most 10 years"
        );
        // The default `from` at the earliest date there is neither panics nor wraps.
        assert!(Period::parse(None, Some(NaiveDate::MIN)).is_ok());
    }

    #[test]
    fn a_period_deserializes_only_through_its_parse() {
        let ok: Period = serde_json::from_str(r#"{"from":"2024-01-01","to":"2024-01-31"}"#).unwrap();
        assert_eq!(ok.from().date_naive(), day("2024-01-01"));
        assert!(serde_json::from_str::<Period>(r#"{"from":"2024-02-01","to":"2024-01-31"}"#).is_err());
    }
}
