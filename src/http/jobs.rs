//! `/jobs`: background jobs for their creator and staff (the rules live in
//! [`crate::jobs::Jobs`]): read, list, cancel, download the result file and the per-row
//! error report (CSV: `line,field,message`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::auth::Principal;
use crate::error::Result;
use crate::jobs::{JobView, Jobs};
use crate::pagination::{Page, PageParams};
use crate::services::AppState;

/// Error-report rows read from the database per round while streaming.
const ERROR_PAGE: i64 = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_result))
        .routes(routes!(job_errors))
}

/// The caller's background jobs (staff: everyone's), newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", security(("bearer" = []), ("api_key" = [])), params(PageParams),
    responses((status = 200, body = Page<JobView>), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<Page<JobView>>> {
    Ok(Json(state.jobs.list(&principal, &q).await?))
}

/// A job: state, progress (`done` of `total`), attempts, result or error. Visible to its
/// creator and staff; 404 to anyone else.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the job")),
    responses((status = 200, body = JobView), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn get_job(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Json<JobView>> {
    Ok(Json(state.jobs.get(&principal, id).await?))
}

/// Cancel a job: a queued job never runs; a running one stops at its next progress report
/// (`cancel_requested` until then). 409 once it has ended.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the job")),
    responses((status = 200, body = JobView), (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<JobView>> {
    Ok(Json(state.jobs.cancel(&principal, id).await?))
}

/// The file a job produced (an export), streamed as an attachment.
#[utoipa::path(get, path = "/jobs/{id}/result", tag = "jobs", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the job")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"),
              (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn job_result(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Response> {
    let key = state.jobs.result_file(&principal, id).await?;
    let got = state
        .storage
        .store()
        .get(&object_store::path::Path::from(key.as_str()))
        .await
        .map_err(crate::files::storage::storage_error)?;
    let size = got.meta.size;
    let (content_type, ext) = match key.rsplit('.').next() {
        Some("csv") => ("text/csv; charset=utf-8", "csv"),
        Some("ndjson") => ("application/x-ndjson", "ndjson"),
        Some("gz") => ("application/gzip", "gz"),
        _ => ("application/octet-stream", "bin"),
    };
    let disposition = format!("attachment; filename=\"job-{id}.{ext}\"");
    let body = Body::from_stream(got.into_stream());
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}

/// The rows a job could not import and why, as CSV (`line,field,message`; `field` is
/// empty for a problem of the whole row), in file order, streamed.
#[utoipa::path(get, path = "/jobs/{id}/errors", tag = "jobs", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the job")),
    responses((status = 200, description = "the error report", content_type = "text/csv"),
              (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn job_errors(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<Response> {
    state.jobs.authorize_errors(&principal, id).await?;
    let body = Body::from_stream(error_report(state.jobs.clone(), id));
    let disposition = format!("attachment; filename=\"job-{id}-errors.csv\"");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}

/// The header, then a page of rows at a time; a database failure ends the stream with an
/// error (the client sees a cut response, never a partial report passed as whole).
fn error_report(
    jobs: Jobs,
    id: Uuid,
) -> impl futures_util::Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let header = futures_util::stream::once(async { Ok(bytes::Bytes::from_static(b"line,field,message\n")) });
    let pages = futures_util::stream::unfold(Some((0i64, 0i64)), move |after| {
        let jobs = jobs.clone();
        async move {
            let after = after?;
            match jobs.problems(id, after, ERROR_PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|(line, seq, _)| (*line, *seq));
                    let more = rows.len() as i64 == ERROR_PAGE;
                    let mut w = csv::Writer::from_writer(Vec::new());
                    for (_, _, p) in &rows {
                        if let Err(e) = w.write_record([p.line.to_string().as_str(), &p.field, &p.message]) {
                            return Some((Err(std::io::Error::other(e)), None));
                        }
                    }
                    let bytes = w.into_inner().map_err(|e| std::io::Error::other(e.to_string()));
                    Some((bytes.map(bytes::Bytes::from), if more { next } else { None }))
                }
                Err(e) => {
                    tracing::warn!(error = %e, job.id = %id, "streaming a job's error report failed");
                    Some((Err(std::io::Error::other("the error report could not be read")), None))
                }
            }
        }
    });
    header.chain(pages)
}
