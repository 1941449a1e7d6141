//! `POST /imports/{entity}`: an import file streamed to storage, then a job (the rules live
//! in [`crate::imports::upload`]). In the router's `streamed` group: the service enforces
//! `imports.max_upload_bytes` while the body streams.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::imports::upload::UploadRequest;
use crate::jobs::JobView;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_import))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// `generic` (default; docs/IMPORTS.md) or `superstore` (orders only).
    format: Option<String>,
}

/// Import a CSV (`text/csv`) or NDJSON (`application/x-ndjson`) file of products,
/// customers, orders or counted stock levels (staff). The body is streamed to storage and imported by a job:
/// 202 with the job (poll `GET /jobs/{id}`); with an `Idempotency-Key` used before by the
/// caller, 200 with that job (the body is not read).
#[utoipa::path(post, path = "/imports/{entity}", tag = "jobs", security(("bearer" = []), ("api_key" = ["catalog:write", "orders:write"])),
    params(("entity" = String, Path, description = "products, customers, orders or stock"), ImportQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "the same key again returns the first job")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 202, body = JobView), (status = 200, body = JobView), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn start_import(
    State(state): State<AppState>,
    principal: Principal,
    Path(entity): Path<String>,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let req = UploadRequest {
        entity,
        format: q.format,
        content_type: text(header::CONTENT_TYPE),
        idempotency_key: text(header::HeaderName::from_static("idempotency-key")),
    };
    let (job, created) = state.imports.upload(&principal, req, body.into_data_stream()).await?;
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let location = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)).ok();
    let mut response = (status, Json(job)).into_response();
    if let Some(l) = location {
        response.headers_mut().insert(header::LOCATION, l);
    }
    Ok(response)
}
