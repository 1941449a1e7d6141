//! Imports over the API: a staff upload is checked (entity, format, content type, the
//! first bytes sniffed), streamed to storage under `imports.max_upload_bytes`, and becomes
//! an import job ([`super::job`]). A client-supplied key makes the call idempotent: the
//! same caller and key give the same job, and the second upload is not even read.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::job::{ImportParams, kind};
use super::stream::Encoding;
use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::config::ImportsConfig;
use crate::error::{Error, FieldError, Result};
use crate::files::storage::Storage;
use crate::jobs::{JobView, Jobs, NewJob};

/// Bytes of the upload's start that are sniffed.
const SNIFF_BYTES: usize = 1024;

/// What the caller asked for.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// `products`, `customers`, `orders` or `stock` (the path).
    pub entity: String,
    /// `generic` (default) or `superstore` (orders only, CSV).
    pub format: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
    pub idempotency_key: Option<String>,
}

/// The import service: storage, the jobs it creates, and `imports.*`.
#[derive(Clone)]
pub struct Imports {
    jobs: Jobs,
    storage: Storage,
    config: ImportsConfig,
}

impl Imports {
    pub fn new(jobs: Jobs, storage: Storage, config: &ImportsConfig) -> Self {
        Self { jobs, storage, config: config.clone() }
    }

    /// Starts an import of `body`. Returns the job and whether it was created now (`false`:
    /// the caller's earlier job with the same key). Staff only: products and stock need
    /// `catalog:write`, customers and orders `orders:write` (API keys). Errors: 401, 403;
    /// 422 unknown entity, format or key; 415 a content type other than `text/csv` or
    /// `application/x-ndjson`, or a body that does not look like it; 413 over
    /// `imports.max_upload_bytes` (nothing is kept); 400 an empty or interrupted upload.
    pub async fn upload<S, E>(&self, principal: &Principal, req: UploadRequest, body: S) -> Result<(JobView, bool)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let scope =
            if ["products", "stock"].contains(&req.entity.as_str()) { Scope::CatalogWrite } else { Scope::OrdersWrite };
        let actor = principal.require_staff(scope)?;
        let format = req.format.as_deref().unwrap_or("generic");
        let mut invalid = Vec::new();
        if !["products", "customers", "orders", "stock"].contains(&req.entity.as_str()) {
            invalid.push(FieldError::new("entity", "must be products, customers, orders or stock"));
        } else if !["generic", "superstore"].contains(&format) {
            invalid.push(FieldError::new("format", "must be generic or superstore"));
        }
        let job_kind = kind(&req.entity, format);
        if invalid.is_empty() && job_kind.is_none() {
            invalid.push(FieldError::new("format", "superstore files import orders: POST /imports/orders"));
        }
        if let Some(k) = &req.idempotency_key
            && (k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            invalid.push(FieldError::new("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
        }
        let (Some(job_kind), true) = (job_kind, invalid.is_empty()) else { return Err(Error::Validation(invalid)) };
        let encoding = encoding_of(req.content_type.as_deref()).ok_or(Error::UnsupportedMediaType)?;
        if format == "superstore" && encoding != Encoding::Csv {
            return Err(Error::UnsupportedMediaType);
        }
        if let Some(key) = &req.idempotency_key
            && let Some(job) = self.jobs.by_key(actor.id, key).await?
        {
            return Ok((job, false));
        }

        let mut body = Box::pin(body);
        let first = match body.next().await {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(Error::BadRequest(format!("the upload was interrupted: {e}"))),
            None => return Err(Error::BadRequest("the file is empty".into())),
        };
        if !sniff(&first[..first.len().min(SNIFF_BYTES)], encoding) {
            return Err(Error::UnsupportedMediaType);
        }
        let file = format!("imports/{}", crate::db::new_id());
        let whole = futures_util::stream::once(async move { Ok::<Bytes, E>(first) }).chain(body);
        let stored = self.storage.put_stream(&file, whole, self.config.max_upload_bytes).await?;
        let params = ImportParams {
            entity: req.entity.clone(),
            format: format.to_owned(),
            encoding,
            file: file.clone(),
            bytes: stored.size,
            sha256: stored.sha256,
        };
        let params = serde_json::to_value(params).map_err(|e| Error::Internal(e.into()))?;
        let new = NewJob {
            kind: job_kind.to_owned(),
            params,
            created_by: Some(actor.id),
            idempotency_key: req.idempotency_key,
        };
        let (job, created) = self.jobs.enqueue(new).await?;
        if !created {
            // Another call with the same key won the race: its upload is the one imported.
            self.storage.delete(&file).await?;
        }
        Ok((job, created))
    }
}

/// `text/csv` or `application/x-ndjson` (also `application/ndjson`), parameters ignored.
fn encoding_of(content_type: Option<&str>) -> Option<Encoding> {
    let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Some(Encoding::Csv),
        "application/x-ndjson" | "application/ndjson" => Some(Encoding::Ndjson),
        _ => None,
    }
}

/// Whether the first bytes look like the declared text: UTF-8 (a character cut at the end
/// is fine), no control characters but tab and line breaks, and NDJSON starts with `{`
/// where CSV does not start with `{` or `[`. Executables, archives, images and PDFs fail.
fn sniff(start: &[u8], encoding: Encoding) -> bool {
    let start = start.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(start);
    let text = match std::str::from_utf8(start) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&start[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return false,
    };
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) {
        return false;
    }
    let first = text.trim_start().chars().next();
    match encoding {
        Encoding::Ndjson => first == Some('{'),
        Encoding::Csv => first.is_some_and(|c| c != '{' && c != '['),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_accepts_text_of_the_declared_kind_only() {
        assert!(sniff(b"sku,name\nA,Chair\n", Encoding::Csv));
        assert!(sniff(b"\xEF\xBB\xBFsku,name\n", Encoding::Csv));
        assert!(sniff("name\nCaf\u{e9}".as_bytes(), Encoding::Csv));
        assert!(sniff(&"sku\nCaf\u{e9}".as_bytes()[..8], Encoding::Csv), "a character cut at the end is fine");
        assert!(!sniff(b"\x7fELF\x02\x01\x01\x00", Encoding::Csv));
        assert!(!sniff(b"PK\x03\x04", Encoding::Csv));
        assert!(!sniff(b"\x89PNG\r\n\x1a\n", Encoding::Csv));
        assert!(!sniff(b"{\"sku\":\"A\"}\n", Encoding::Csv));
        assert!(sniff(b"  {\"sku\":\"A\"}\n", Encoding::Ndjson));
        assert!(!sniff(b"sku,name\n", Encoding::Ndjson));
        assert!(!sniff(b"", Encoding::Csv));
    }

    #[test]
    fn content_types_are_csv_or_ndjson() {
        assert_eq!(encoding_of(Some("text/csv; charset=utf-8")), Some(Encoding::Csv));
        assert_eq!(encoding_of(Some("Application/X-NDJSON")), Some(Encoding::Ndjson));
        assert_eq!(encoding_of(Some("application/json")), None);
        assert_eq!(encoding_of(None), None);
    }
}
