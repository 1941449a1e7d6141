//! Product images: uploads are sniffed, size-limited while streaming, named safely and
//! staff-only; downloads stream with `nosniff`, `ETag`/`If-None-Match` and byte ranges.
//! Runs on the local directory, or on a real S3-compatible server when
//! `ORDERLY_TEST_S3_URL` is set (each test under its own prefix, see `helpers`).

mod download;
mod upload;

use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// A PNG signature followed by `len - 8` bytes of a deterministic pattern (the server only
/// sniffs the signature; the pattern makes range slices distinguishable).
pub fn png(len: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend((0..len.saturating_sub(8)).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8));
    out
}

/// A minimal ELF executable header (x86-64), padded to 128 bytes.
pub fn elf() -> Vec<u8> {
    let mut out = b"\x7fELF\x02\x01\x01\x00".to_vec();
    out.resize(16, 0);
    out.extend_from_slice(&[2, 0, 0x3e, 0, 1, 0, 0, 0]);
    out.resize(128, 0);
    out
}

/// Uploads `bytes` as the raw body; returns status and JSON.
pub async fn upload(
    app: &TestApp,
    token: Option<&str>,
    product_id: &str,
    bytes: Vec<u8>,
    content_type: Option<&str>,
    disposition: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url(&format!("/api/v1/products/{product_id}/images"))).body(bytes);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(d) = disposition {
        req = req.header("content-disposition", d);
    }
    let res = req.send().await.expect("upload request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The keys of every stored image object (any product), from the app's own storage.
pub async fn stored_keys(app: &TestApp) -> Vec<String> {
    let prefix = object_store::path::Path::from("images");
    let metas: Vec<_> = app.app.storage.store().list(Some(&prefix)).try_collect().await.expect("list storage");
    metas.into_iter().map(|m| m.location.to_string()).collect()
}

/// Whether `key` exists in the app's storage.
pub async fn exists(app: &TestApp, key: &str) -> bool {
    app.app.storage.store().head(&object_store::path::Path::from(key)).await.is_ok()
}

/// A product made by a new staff user: (staff token, product id).
pub async fn product(app: &TestApp) -> (String, String) {
    let staff = app.staff().await;
    let p = app.create_product(&staff, "IMG-1", 1000, 1).await;
    (staff, p["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn readyz_reports_the_storage_backend_in_use() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    let storage = body["checks"].as_array().unwrap().iter().find(|c| c["name"] == "storage").cloned().unwrap();
    let want = if crate::helpers::test_s3_url().is_some() { "s3" } else { "local" };
    assert_eq!(storage["backend"], want, "{storage}");
    assert_eq!(storage["status"], "ok", "{storage}");
}
