//! The file-storage seam: one [`Storage`] over an `object_store` backend.
//!
//! - Default (`storage.url` empty): a local directory, `<data_dir>/files`.
//! - `ORDERLY_STORAGE_URL=s3://bucket/prefix?endpoint=http://127.0.0.1:5000&allow_http=true&region=us-east-1`:
//!   any S3-compatible store. Query parameters are `object_store` S3 options
//!   (`AmazonS3ConfigKey`: `endpoint`, `region`, `allow_http`, `access_key_id`,
//!   `secret_access_key`, …); the standard `AWS_*` environment variables also apply.
//!
//! Writes stream: [`Storage::put_stream`] never holds a whole file in memory, and stops
//! with [`Error::PayloadTooLarge`] as soon as the size limit is passed (nothing is kept).

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};

/// Bytes of an upload buffered per part (S3's smallest multipart part: 5 MiB).
const UPLOAD_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload being written at once.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// What [`Storage::put_stream`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes written.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content (strong `ETag`s, integrity checks).
    pub sha256: String,
}

/// File storage shared by every replica (S3) or local to one host (the default directory).
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// `"local"` or `"s3"`, for `/readyz` and logs.
    backend: &'static str,
}

impl Storage {
    /// Builds the configured backend; creates the local directory when it is the default.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let url = config.storage.url.expose();
        if url.is_empty() {
            let dir = config.data_dir.join("files");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .with_context(|| format!("opening {}", dir.display()))?;
            return Ok(Self { store: Arc::new(local), backend: "local" });
        }
        let parsed = url::Url::parse(url).context("storage.url is not a URL")?;
        anyhow::ensure!(
            parsed.scheme() == "s3",
            "storage.url must be s3://bucket[/prefix] (got scheme {})",
            parsed.scheme()
        );
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(parsed.host_str().context("storage.url names no bucket")?);
        for (key, value) in parsed.query_pairs() {
            let key: object_store::aws::AmazonS3ConfigKey =
                key.to_ascii_lowercase().parse().with_context(|| format!("storage.url: unknown option {key}"))?;
            builder = builder.with_config(key, value.into_owned());
        }
        let s3 = builder.build().context("configuring S3 storage from storage.url")?;
        let prefix = parsed.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { Arc::new(s3) } else { Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) };
        Ok(Self { store, backend: "s3" })
    }

    /// A storage over any backend (tests: `object_store::memory::InMemory`).
    pub fn new(store: Arc<dyn ObjectStore>, backend: &'static str) -> Self {
        Self { store, backend }
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The backend itself, for reads with options (ranges, `head`, conditional gets).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Streams `body` to `key`, at most `max_bytes` bytes. Over the limit: the partial
    /// upload is aborted and [`Error::PayloadTooLarge`] returned. A body error is returned
    /// as `Error::BadRequest`. Keys are `/`-separated (`images/<product>/<id>`); callers
    /// build them from ids, never from client-supplied names.
    pub async fn put_stream<S, E>(&self, key: &str, body: S, max_bytes: u64) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let path = ObjectPath::from(key);
        // object_store's default (10 MiB parts, 8 in flight) holds up to 80 MiB of one
        // upload in memory when the client sends faster than the store writes. 5 MiB is S3's
        // smallest part; two in flight keep an upload at ≤ 15 MiB whatever its size.
        let mut writer = BufWriter::with_capacity(self.store.clone(), path, UPLOAD_PART_BYTES)
            .with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::BadRequest(format!("the upload was interrupted: {e}")));
                }
            };
            size = size.saturating_add(chunk.len() as u64);
            if size > max_bytes {
                let _ = writer.abort().await;
                return Err(Error::PayloadTooLarge);
            }
            hasher.update(&chunk);
            writer.put(chunk).await.map_err(storage_error)?;
        }
        tokio::io::AsyncWriteExt::shutdown(&mut writer).await.map_err(|e| Error::Internal(anyhow::Error::new(e)))?;
        Ok(Stored { size, sha256: hex::encode(hasher.finalize()) })
    }

    /// Deletes `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// A storage failure as the service error: a missing object is `NotFound("file")`, anything
/// else internal (the cause is logged once at the boundary, never shown).
pub fn storage_error(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound("file"),
        other => Error::Internal(anyhow::Error::new(other).context("file storage")),
    }
}
