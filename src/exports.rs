//! Streaming exports (issue 11, part 5): orders (one row per line, in the generic import
//! format of `docs/IMPORTS.md`), products and customers, as CSV or NDJSON, filtered by a
//! date range and a status.
//!
//! Rows come straight from a database cursor (`sqlx` `fetch`) in a spawned task, are
//! encoded into chunks of about [`CHUNK_BYTES`], and cross a channel of [`CHANNEL_CHUNKS`]
//! chunks to the consumer (an HTTP body, or a job writing to storage). The channel is the
//! back pressure: memory stays constant whatever the size of the export. A consumer that
//! goes away (a client disconnects) ends the task at its next chunk.
//!
//! Who may: staff only (products: `catalog:read`; orders and customers: `orders:read`).

pub mod encode;
pub mod jobs;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::auth::scopes::Scope;
use crate::db::Db;
use crate::error::{Error, FieldError, Result};
use crate::ratelimit::Class;

/// A chunk is sent once it holds this many bytes (64 KiB).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the cursor and the consumer.
pub const CHANNEL_CHUNKS: usize = 4;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Orders,
    Products,
    Customers,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Orders => "orders",
            Kind::Products => "products",
            Kind::Customers => "customers",
        }
    }
}

/// The encoding: `csv` (RFC 4180, a header row; the generic import columns) or `ndjson`
/// (one JSON object per line, amounts in minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Csv,
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Query parameters of an export, raw: parsed by [`ExportQuery::parse`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (default) or `ndjson`.
    pub format: Option<Format>,
    /// RFC 3339; rows at or after it (orders: `placed_at`; others: `created_at`).
    pub from: Option<String>,
    /// RFC 3339; rows strictly before it.
    pub to: Option<String>,
    /// Orders: an order status; products: `active` or `archived`; customers: not allowed.
    pub status: Option<String>,
}

/// A parsed export request.
#[derive(Debug, Clone)]
pub struct Export {
    pub kind: Kind,
    pub format: Format,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<String>,
}

impl ExportQuery {
    /// Errors: 422 naming every bad field (`from`, `to` not RFC 3339 or `to` before `from`;
    /// `status` unknown for the kind).
    pub fn parse(&self, kind: Kind) -> Result<Export> {
        let mut errors = Vec::new();
        let mut time = |field: &str, raw: &Option<String>| {
            raw.as_deref().and_then(|r| match DateTime::parse_from_rfc3339(r) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    errors.push(FieldError::new(field, "must be an RFC 3339 time (2016-11-08T14:30:00Z)"));
                    None
                }
            })
        };
        let from = time("from", &self.from);
        let to = time("to", &self.to);
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            errors.push(FieldError::new("to", "must not be before from"));
        }
        if let Some(s) = self.status.as_deref() {
            let ok = match kind {
                Kind::Orders => crate::orders::OrderStatus::parse(s).is_ok(),
                Kind::Products => crate::catalog::ProductStatus::parse(s).is_ok(),
                Kind::Customers => false,
            };
            if !ok {
                errors.push(FieldError::new("status", format!("not a status of {}", kind.as_str())));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        Ok(Export { kind, format: self.format.unwrap_or_default(), from, to, status: self.status.clone() })
    }
}

/// Who may export `kind`: staff with `catalog:read` (products) or `orders:read` (orders,
/// customers); 401/403 otherwise.
pub fn authorize(principal: &Principal, kind: Kind) -> Result<()> {
    let scope = if kind == Kind::Products { Scope::CatalogRead } else { Scope::OrdersRead };
    principal.require_staff(scope).map(|_| ())
}

/// A running export: the file name to offer and the stream of encoded chunks. A database
/// failure mid-stream ends the stream with an error (the body is cut: the client sees an
/// incomplete transfer, never a partial file that looks whole).
pub struct ExportStream {
    pub filename: String,
    pub content_type: &'static str,
    pub body: ReceiverStream<std::result::Result<Bytes, ExportFailed>>,
}

/// An export that stopped mid-stream (the cause is logged where it happened).
#[derive(Debug, thiserror::Error)]
#[error("the export failed")]
pub struct ExportFailed;

/// Starts the export `query` of `kind` for `principal` (authorized and validated first:
/// 401/403/422 before any row is read).
pub async fn export(db: &Db, principal: &Principal, kind: Kind, query: &ExportQuery) -> Result<ExportStream> {
    principal.admit(Class::Api).await?;
    authorize(principal, kind)?;
    let export = query.parse(kind)?;
    Ok(start(db.clone(), export))
}

/// Starts an export without authorization (the caller decided): see [`export`].
pub fn start(db: Db, export: Export) -> ExportStream {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let filename =
        format!("{}-{}.{}", export.kind.as_str(), Utc::now().format("%Y%m%dT%H%M%SZ"), export.format.extension());
    let content_type = export.format.content_type();
    tokio::spawn(async move {
        if let Err(e) = produce(&db, &export, &tx).await
            && !matches!(e, Produce::Gone)
        {
            tracing::error!(error = %e, export.kind = export.kind.as_str(), "export failed");
            let _ = tx.send(Err(ExportFailed)).await;
        }
    });
    ExportStream { filename, content_type, body: ReceiverStream::new(rx) }
}

#[derive(Debug, thiserror::Error)]
enum Produce {
    #[error("the consumer went away")]
    Gone,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Encode(String),
}

async fn produce(
    db: &Db,
    export: &Export,
    tx: &mpsc::Sender<std::result::Result<Bytes, ExportFailed>>,
) -> std::result::Result<(), Produce> {
    let mut encoder = encode::Encoder::new(db, export).await?;
    let query = encoder.query(export);
    let mut rows = query.build().fetch(db.pool());
    while let Some(row) = rows.next().await {
        encoder.row(&row?).map_err(Produce::Encode)?;
        if encoder.buffered() >= CHUNK_BYTES {
            let chunk = encoder.take().map_err(Produce::Encode)?;
            tx.send(Ok(chunk)).await.map_err(|_| Produce::Gone)?;
        }
    }
    let last = encoder.take().map_err(Produce::Encode)?;
    if !last.is_empty() {
        tx.send(Ok(last)).await.map_err(|_| Produce::Gone)?;
    }
    Ok(())
}
