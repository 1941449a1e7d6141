//! Product images: upload (streamed to [`Storage`], sniffed, size-limited), list, download
//! (a byte range of the stored object), delete. Every rule lives here, not in a transport:
//!
//! - writes (upload, delete) need staff with `catalog:write`; reads follow the product's
//!   visibility (public for active products, an API key needs `catalog:read`; images of an
//!   archived product are staff-only, others get 404);
//! - the product must exist (404 `not-found`);
//! - the type is sniffed from the first bytes (`infer`), never taken from the name or the
//!   header: it must be one of `storage.allowed_types` (415 `unsupported-media-type`), and
//!   a `Content-Type` other than `application/octet-stream` must agree with it (415);
//! - at most `storage.max_upload_bytes`, checked against `Content-Length` before reading and
//!   while streaming (413 `payload-too-large`; the partial object is removed);
//! - the client's file name is sanitised ([`names::sanitise`]) and only ever a label.
//!
//! docs/FILES.md describes the API and the storage backends.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;
use uuid::Uuid;

use super::names;
use super::storage::{Storage, storage_error};
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::config::StorageConfig;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::ratelimit::Class;

/// How many leading bytes are gathered for sniffing (every image signature `infer` knows
/// fits well within it); a shorter file is sniffed whole.
const SNIFF_BYTES: usize = 512;

/// The product-image service: database, storage and the upload rules. Cheap to clone.
#[derive(Clone)]
pub struct Images {
    db: Db,
    storage: Storage,
    max_upload_bytes: u64,
    allowed_types: Vec<String>,
}

/// A stored product image. JSON shape as below; `size_bytes` in bytes, `sha256` lowercase
/// hex (also the download's strong `ETag`), `url` the download path.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Image {
    pub id: Uuid,
    pub product_id: Uuid,
    /// The sniffed media type (`image/png`, …).
    pub content_type: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// The sanitised name the client sent (or `image.<ext>`), with the extension of
    /// `content_type` added when it had none of its own.
    pub file_name: String,
    /// Order among the product's images, 0 first (upload order).
    pub position: i64,
    pub created_at: DateTime<Utc>,
    /// `/api/v1/images/{id}`.
    pub url: String,
    #[serde(skip)]
    storage_key: String,
}

/// One upload, as a transport hands it over: the product, what the client claimed (both
/// only checked, never trusted), and the body as a stream of chunks.
pub struct Upload<S> {
    pub product_id: Uuid,
    /// The request's `Content-Type`, if any.
    pub declared_type: Option<String>,
    /// The client's file name (e.g. from `Content-Disposition`), unsanitised.
    pub file_name: Option<String>,
    /// The request's `Content-Length`, if any: over the limit is refused before reading.
    pub content_length: Option<u64>,
    pub body: S,
}

impl Images {
    pub fn new(db: Db, storage: Storage, config: &StorageConfig) -> Self {
        Self { db, storage, max_upload_bytes: config.max_upload_bytes, allowed_types: config.allowed_types.clone() }
    }

    /// `storage.max_upload_bytes`.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }
}

/// Stores a new image of `upload.product_id` (staff, `catalog:write`). Errors: 401/403;
/// 404 `not-found` (no such product); 413 `payload-too-large`; 415
/// `unsupported-media-type` (not an allowed image, or not what `Content-Type` said); 400
/// `bad-request` (the body broke off). On any error nothing is kept.
pub async fn upload<S, E>(images: &Images, principal: &Principal, upload: Upload<S>) -> Result<Image>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    principal.admit(Class::Api).await?;
    let actor = principal.require_staff(Scope::CatalogWrite)?;
    let declared = upload.declared_type.as_deref().map(essence).filter(|t| t != "application/octet-stream");
    if let Some(t) = &declared
        && !images.allowed_types.contains(t)
    {
        return Err(not_allowed(images, &format!("the upload was sent as {t}")));
    }
    if upload.content_length.is_some_and(|n| n > images.max_upload_bytes) {
        return Err(Error::PayloadTooLarge);
    }
    product_exists(&images.db, upload.product_id).await?;

    let mut body = Box::pin(upload.body);
    let head = read_head(&mut body).await?;
    let sniffed = match infer::get(&head) {
        Some(kind) if images.allowed_types.iter().any(|t| t == kind.mime_type()) => kind.mime_type(),
        Some(kind) => return Err(not_allowed(images, &format!("the content is {}", kind.mime_type()))),
        None => return Err(not_allowed(images, "the content is not a recognised image")),
    };
    if let Some(t) = declared
        && t != sniffed
    {
        return Err(Error::UnsupportedContent(format!("the content is {sniffed} but was sent as {t}")));
    }

    let id = db::new_id();
    let key = format!("images/{}/{id}", upload.product_id);
    let rest = stream::once(async move { Ok::<Bytes, String>(head) }).chain(body.map(|c| c.map_err(|e| e.to_string())));
    let stored = images.storage.put_stream(&key, rest, images.max_upload_bytes).await?;
    let file_name = names::with_extension(&names::sanitise(upload.file_name.as_deref().unwrap_or("")), sniffed);
    let inserted = insert(&images.db, id, upload.product_id, &key, sniffed, &stored, &file_name, actor.id).await;
    match inserted {
        Ok(image) => Ok(image),
        Err(e) => {
            // The row failed (e.g. the product went away meanwhile): the object goes too.
            if let Err(cleanup) = images.storage.delete(&key).await {
                tracing::warn!(error = %cleanup, storage.key = %key, "could not remove an orphaned upload");
            }
            Err(e)
        }
    }
}

/// The images of a product, in `position` order. Public like the product (404 if the
/// product does not exist or is archived and the caller is not staff).
pub async fn list(images: &Images, principal: &Principal, product_id: Uuid) -> Result<Vec<Image>> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    visible_product(&images.db, product_id, principal.is_staff()).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM product_images WHERE product_id = $1 ORDER BY position, id"
    )))
    .bind(product_id.to_string())
    .fetch_all(images.db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One image's metadata, checked like [`list`]; read its bytes with [`read`].
pub async fn get(images: &Images, principal: &Principal, id: Uuid) -> Result<Image> {
    principal.admit(Class::Api).await?;
    principal.allow_public(Scope::CatalogRead)?;
    let row = sqlx::query(
        "SELECT i.*, p.status AS product_status FROM product_images i JOIN products p ON p.id = i.product_id \
         WHERE i.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(images.db.pool())
    .await?
    .ok_or(Error::NotFound("image"))?;
    let status: String = row.try_get("product_status")?;
    if status != "active" && !principal.is_staff() {
        return Err(Error::NotFound("image"));
    }
    from_row(&row)
}

/// The bytes of `image` in `range` (half-open, within `0..size_bytes`; `None`: all of it),
/// streamed from storage. `image` comes from [`get`] or [`list`], which did the checks.
pub async fn read(
    images: &Images,
    image: &Image,
    range: Option<Range<u64>>,
) -> Result<BoxStream<'static, std::result::Result<Bytes, object_store::Error>>> {
    if image.size_bytes == 0 || range.as_ref().is_some_and(|r| r.is_empty()) {
        return Ok(stream::empty().boxed());
    }
    let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
    let got = images.storage.store().get_opts(&ObjectPath::from(image.storage_key.as_str()), options).await;
    Ok(got.map_err(storage_error)?.into_stream())
}

/// Deletes an image (staff, `catalog:write`): the row first, then the object (a failure to
/// remove the object is logged, not returned: the image is gone from the API either way).
/// 404 if there is no such image.
pub async fn delete(images: &Images, principal: &Principal, id: Uuid) -> Result<()> {
    principal.admit(Class::Api).await?;
    principal.require_staff(Scope::CatalogWrite)?;
    let key: Option<String> = sqlx::query_scalar("DELETE FROM product_images WHERE id = $1 RETURNING storage_key")
        .bind(id.to_string())
        .fetch_optional(images.db.pool())
        .await?;
    let key = key.ok_or(Error::NotFound("image"))?;
    if let Err(e) = images.storage.delete(&key).await {
        tracing::warn!(error = %e, storage.key = %key, "image row deleted but its object was not");
    }
    Ok(())
}

/// `image/png; charset=x` → `image/png`; `image/jpg` and `image/pjpeg` → `image/jpeg`.
fn essence(content_type: &str) -> String {
    let t = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match t.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".to_owned(),
        _ => t,
    }
}

fn not_allowed(images: &Images, what: &str) -> Error {
    Error::UnsupportedContent(format!("{what}; allowed image types are {}", images.allowed_types.join(", ")))
}

/// Up to [`SNIFF_BYTES`] leading bytes (fewer only at the end of the body).
async fn read_head<S, E>(body: &mut std::pin::Pin<Box<S>>) -> Result<Bytes>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut head = BytesMut::new();
    while head.len() < SNIFF_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(Error::BadRequest(format!("the upload was interrupted: {e}"))),
            None => break,
        }
    }
    if head.is_empty() {
        return Err(Error::UnsupportedContent("the upload is empty".into()));
    }
    Ok(head.freeze())
}

async fn product_exists(db: &Db, id: Uuid) -> Result<()> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM products WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    found.map(|_| ()).ok_or(Error::NotFound("product"))
}

async fn visible_product(db: &Db, id: Uuid, staff: bool) -> Result<()> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM products WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    match status {
        Some(s) if staff || s == "active" => Ok(()),
        _ => Err(Error::NotFound("product")),
    }
}

const COLUMNS: &str = "id, product_id, storage_key, content_type, size_bytes, sha256, file_name, position, created_at";

#[allow(clippy::too_many_arguments)]
async fn insert(
    db: &Db,
    id: Uuid,
    product_id: Uuid,
    key: &str,
    content_type: &str,
    stored: &super::storage::Stored,
    file_name: &str,
    by: Uuid,
) -> Result<Image> {
    let size = i64::try_from(stored.size).map_err(|_| Error::PayloadTooLarge)?;
    let sql = format!(
        "INSERT INTO product_images (id, product_id, storage_key, content_type, size_bytes, sha256, \
         file_name, position, created_at, created_by) \
         SELECT $1, $2, $3, $4, $5, $6, $7, COALESCE(MAX(position) + 1, 0), $8, $9 \
         FROM product_images WHERE product_id = $2 RETURNING {COLUMNS}"
    );
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(product_id.to_string())
        .bind(key)
        .bind(content_type)
        .bind(size)
        .bind(&stored.sha256)
        .bind(file_name)
        .bind(db::now())
        .bind(by.to_string())
        .fetch_one(&mut *tx)
        .await?;
    let image = from_row(&row)?;
    tx.commit().await?;
    Ok(image)
}

fn from_row(row: &AnyRow) -> Result<Image> {
    let id = db::parse_id(&row.try_get::<String, _>("id")?)?;
    let size: i64 = row.try_get("size_bytes")?;
    Ok(Image {
        id,
        product_id: db::parse_id(&row.try_get::<String, _>("product_id")?)?,
        content_type: row.try_get("content_type")?,
        size_bytes: u64::try_from(size).map_err(|_| sqlx::Error::Decode("negative size".into()))?,
        sha256: row.try_get("sha256")?,
        file_name: row.try_get("file_name")?,
        position: row.try_get("position")?,
        created_at: db::parse_ts(&row.try_get::<String, _>("created_at")?)?,
        url: format!("/api/v1/images/{id}"),
        storage_key: row.try_get("storage_key")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_are_compared_by_essence() {
        assert_eq!(essence("Image/PNG; charset=binary"), "image/png");
        assert_eq!(essence("image/jpg"), "image/jpeg");
    }
}
