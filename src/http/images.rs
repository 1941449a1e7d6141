//! `/products/{id}/images` and `/images/{id}`: product images as streams (docs/FILES.md).
//!
//! Upload: the raw image is the request body (`Content-Type` optional, checked against the
//! sniffed type; `Content-Disposition: attachment; filename=…` optional), streamed to
//! storage as it arrives. Download: the stored bytes, streamed, with the sniffed type,
//! `nosniff`, an inline `Content-Disposition`, the sha256 as strong `ETag`
//! (`If-None-Match` → 304) and single byte ranges (`Range`, `If-Range`; RFC 9110 §14).
//! Every rule (who, which product, which types, how big) is in `crate::files::images`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caching::{Cacheability, IfNoneMatch, catalog_cacheability};
use super::extract::{Json, Path};
use super::problem::{Problem, problem_response};
use super::range::{self, Ranged};
use crate::auth::Principal;
use crate::conditional;
use crate::error::{Error, Result};
use crate::files::images::{self, Image, Upload};
use crate::files::names;
use crate::services::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_images, upload_image)).routes(routes!(download_image, delete_image))
}

/// Upload a product image (staff): the raw bytes as the body, streamed to storage. The type
/// is sniffed from the content and must be an allowed image type (`storage.allowed_types`);
/// a `Content-Type` other than `application/octet-stream` must agree with it. At most
/// `storage.max_upload_bytes` (413 as soon as the body passes it; nothing is kept).
#[utoipa::path(post, path = "/products/{id}/images", tag = "files",
    security(("bearer" = []), ("api_key" = ["catalog:write"])),
    params(("id" = Uuid, Path, description = "the product"),
        ("Content-Disposition" = Option<String>, Header, description = "`attachment; filename=\"name.png\"` (or `filename*=UTF-8''…`): the file name, sanitised")),
    request_body(description = "the image bytes", content(
        ("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"),
        ("application/octet-stream"))),
    responses((status = 201, body = Image, headers(("Location" = String, description = "the download URL"))),
        (status = 400, description = "the body broke off", body = Problem),
        (status = 404, description = "no such product", body = Problem),
        (status = 413, description = "larger than `storage.max_upload_bytes`; nothing was kept", body = Problem),
        (status = 415, description = "not an allowed image type (sniffed from the content), or not the declared `Content-Type`", body = Problem)))]
async fn upload_image(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let upload = Upload {
        product_id: id,
        declared_type: text(header::CONTENT_TYPE).map(str::to_owned),
        file_name: text(header::CONTENT_DISPOSITION).and_then(names::from_content_disposition),
        content_length: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        body: body.into_data_stream(),
    };
    let image = images::upload(&state.images, &principal, upload).await?;
    let location = HeaderValue::from_str(&image.url).map_err(|e| Error::Internal(e.into()))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(image)).into_response())
}

/// A product's images, in display order. Public like the product.
#[utoipa::path(get, path = "/products/{id}/images", tag = "files",
    security((), ("bearer" = []), ("api_key" = ["catalog:read"])),
    params(("id" = Uuid, Path, description = "the product")),
    responses((status = 200, body = Vec<Image>), (status = 404, body = Problem)))]
async fn list_images(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Image>>> {
    Ok(Json(images::list(&state.images, &principal, id).await?))
}

/// Download an image, streamed: the sniffed `Content-Type`, `Content-Disposition: inline`
/// with the file name, the sha256 as strong `ETag` (`If-None-Match` → 304), and one byte
/// range at a time (`Range: bytes=…` → 206; unsatisfiable → 416 with `Content-Range: bytes
/// */len`; `If-Range`; several ranges → the whole image).
#[utoipa::path(get, path = "/images/{id}", tag = "files",
    security((), ("bearer" = []), ("api_key" = ["catalog:read"])),
    params(("id" = Uuid, Path, description = "the image"), IfNoneMatch,
        ("Range" = Option<String>, Header, description = "`bytes=first-last`, `bytes=first-` or `bytes=-suffix` (RFC 9110 §14.2)"),
        ("If-Range" = Option<String>, Header, description = "the ETag: send the range only if the image is still this one")),
    responses(
        (status = 200, description = "the image", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("image/bmp"), ("image/tiff"), ("image/avif")),
            headers(("ETag" = String, description = "the sha256, quoted"), ("Accept-Ranges" = String), ("Content-Disposition" = String))),
        (status = 206, description = "the requested byte range", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("image/bmp"), ("image/tiff"), ("image/avif")),
            headers(("Content-Range" = String, description = "`bytes first-last/len`"))),
        (status = 304, description = "not modified"),
        (status = 404, body = Problem),
        (status = 416, description = "no requested range lies within the image", body = Problem,
            headers(("Content-Range" = String, description = "`bytes */len`")))))]
async fn download_image(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let image = images::get(&state.images, &principal, id).await?;
    let etag = format!("\"{}\"", image.sha256);
    let len = image.size_bytes;
    let not_modified =
        headers.get(header::IF_NONE_MATCH).is_some_and(|v| conditional::none_match(v.as_bytes(), etag.as_bytes()));
    let mut res = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match range::evaluate(&headers, len, &etag) {
            Ranged::Full => {
                let body = images::read(&state.images, &image, None).await?;
                let mut res = Response::new(Body::from_stream(body.map(|c| c.map_err(std::io::Error::other))));
                res.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                res
            }
            Ranged::Partial(r) => {
                let body = images::read(&state.images, &image, Some(r.clone())).await?;
                let mut res = Response::new(Body::from_stream(body.map(|c| c.map_err(std::io::Error::other))));
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = res.headers_mut();
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
                h.insert(header::CONTENT_RANGE, header_value(&range::content_range(&r, len))?);
                res
            }
            Ranged::Unsatisfiable => {
                let mut res = range_not_satisfiable();
                res.headers_mut().insert(header::CONTENT_RANGE, header_value(&range::unsatisfied_range(len))?);
                return Ok(res);
            }
        }
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, header_value(&etag)?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if catalog_cacheability(principal.actor.is_none()) == Cacheability::Public {
        // Anyone may store it, revalidating with the ETag; staff views keep `no-store`.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, no-cache"));
    }
    h.insert(header::VARY, HeaderValue::from_static("authorization, x-api-key"));
    if !not_modified {
        h.insert(header::CONTENT_TYPE, header_value(&image.content_type)?);
        h.insert(header::CONTENT_DISPOSITION, header_value(&names::content_disposition("inline", &image.file_name))?);
    }
    Ok(res)
}

/// Delete an image (staff).
#[utoipa::path(delete, path = "/images/{id}", tag = "files",
    security(("bearer" = []), ("api_key" = ["catalog:write"])),
    params(("id" = Uuid, Path, description = "the image")),
    responses((status = 204, description = "deleted"), (status = 404, body = Problem)))]
async fn delete_image(State(state): State<AppState>, principal: Principal, Path(id): Path<Uuid>) -> Result<StatusCode> {
    images::delete(&state.images, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|e| Error::Internal(e.into()))
}

/// 416 as problem+json (code `range-not-satisfiable`); the caller adds `Content-Range`.
fn range_not_satisfiable() -> Response {
    let status = StatusCode::RANGE_NOT_SATISFIABLE;
    let problem = Problem {
        type_uri: "/problems/range-not-satisfiable".to_owned(),
        title: "Range Not Satisfiable".to_owned(),
        status: status.as_u16(),
        detail: "no requested range lies within the image".to_owned(),
        code: "range-not-satisfiable".to_owned(),
        errors: Vec::new(),
        extensions: Default::default(),
    };
    problem_response(status, &problem)
}
