//! `GET /exports/{orders,products,customers}`: streamed CSV or NDJSON downloads
//! (`crate::exports`). The body is the export's chunk stream; the global compression layer
//! compresses it when the client accepts gzip, br or zstd.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::exports::{self, ExportQuery, Kind};
use crate::jobs::JobView;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_orders))
        .routes(routes!(export_products))
        .routes(routes!(export_customers))
        .routes(routes!(start_export_job))
}

/// Starts an export as a background job, for exports too large to download in one
/// request: the same kinds, query and rules as `GET /exports/{kind}`. Answers 202 with the
/// queued job; poll `GET /jobs/{id}` and download `GET /jobs/{id}/result` once it has
/// succeeded. `Idempotency-Key` makes a retry return the same job.
#[utoipa::path(post, path = "/exports/{kind}/jobs", tag = "exports", security(("bearer" = []), ("api_key" = ["orders:read"])),
    params(("kind" = Kind, Path, description = "orders, products or customers"), ExportQuery),
    responses((status = 202, body = JobView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn start_export_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(kind): Path<Kind>,
    Query(q): Query<ExportQuery>,
) -> Result<(StatusCode, Json<JobView>)> {
    let job = exports::jobs::enqueue(&state.jobs, &principal, kind, &q).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

async fn respond(state: &AppState, principal: &Principal, kind: Kind, query: &ExportQuery) -> Result<Response> {
    let stream = exports::export(&state.db, principal, kind, query).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", stream.filename))
        .map_err(|e| Error::Internal(e.into()))?;
    let mut res = Response::new(Body::from_stream(stream.body));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(stream.content_type));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Orders with their lines, one row per line, in the generic `orders.csv` import format
/// (docs/IMPORTS.md), ordered by `placed_at`, order number and line (staff, `orders:read`).
/// Filters: `from`/`to` on `placed_at`, `status`. Streamed as an attachment.
#[utoipa::path(get, path = "/exports/orders", tag = "exports", security(("bearer" = []), ("api_key" = ["orders:read"])),
    params(ExportQuery),
    responses((status = 200, description = "The export, streamed as an attachment",
        content((String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn export_orders(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    respond(&state, &principal, Kind::Orders, &q).await
}

/// Products in the generic `products.csv` import format, by SKU (staff, `catalog:read`).
/// Filters: `from`/`to` on `created_at`, `status` (`active`, `archived`).
#[utoipa::path(get, path = "/exports/products", tag = "exports", security(("bearer" = []), ("api_key" = ["catalog:read"])),
    params(ExportQuery),
    responses((status = 200, description = "The export, streamed as an attachment",
        content((String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn export_products(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    respond(&state, &principal, Kind::Products, &q).await
}

/// Customers in the generic `customers.csv` import format, by email (staff, `orders:read`).
/// Filters: `from`/`to` on `created_at`; `status` is refused (422).
#[utoipa::path(get, path = "/exports/customers", tag = "exports", security(("bearer" = []), ("api_key" = ["orders:read"])),
    params(ExportQuery),
    responses((status = 200, description = "The export, streamed as an attachment",
        content((String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn export_customers(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    respond(&state, &principal, Kind::Customers, &q).await
}
