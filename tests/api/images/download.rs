//! Downloads: headers, conditional requests and byte ranges (RFC 9110 §13, §14).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{png, product, upload};
use crate::helpers::TestApp;

const LEN: usize = 10_000;

/// A product with one 10,000-byte PNG: (app, image path, the bytes, the ETag).
async fn one_image() -> (TestApp, String, Vec<u8>, String) {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    let bytes = png(LEN);
    let disposition = Some("attachment; filename*=UTF-8''caf%C3%A9 photo.png");
    let (status, body) = upload(&app, Some(&staff), &pid, bytes.clone(), Some("image/png"), disposition).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/api/v1/images/{}", body["id"].as_str().unwrap());
    let etag = format!("\"{}\"", body["sha256"].as_str().unwrap());
    (app, path, bytes, etag)
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let (status, h) = (res.status(), res.headers().clone());
    (status, h, res.bytes().await.unwrap().to_vec())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn a_download_streams_the_bytes_with_safe_headers_and_no_compression() {
    let (app, path, bytes, etag) = one_image().await;
    let (status, h, body) = get(&app, &path, &[("accept-encoding", "gzip, br, zstd")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    assert_eq!(header(&h, "content-type"), "image/png");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&h, "content-disposition"),
        "inline; filename=\"caf_ photo.png\"; filename*=UTF-8''caf%C3%A9%20photo.png"
    );
    assert_eq!(header(&h, "etag"), etag);
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert_eq!(header(&h, "content-length"), LEN.to_string());
    assert_eq!(header(&h, "content-encoding"), "", "images are never compressed");
}

#[tokio::test]
async fn if_none_match_with_the_etag_answers_304_without_a_body() {
    let (app, path, _, etag) = one_image().await;
    for value in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
        let (status, h, body) = get(&app, &path, &[("if-none-match", &value)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{value}");
        assert!(body.is_empty());
        assert_eq!(header(&h, "etag"), etag);
    }
    let (status, _, body) = get(&app, &path, &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), LEN);
}

#[tokio::test]
async fn a_single_range_answers_206_with_exactly_those_bytes() {
    let (app, path, bytes, _) = one_image().await;
    let cases: [(&str, std::ops::Range<usize>); 5] = [
        ("bytes=0-0", 0..1),
        ("bytes=100-199", 100..200),
        ("bytes=9990-", 9990..LEN),
        ("bytes=-50", LEN - 50..LEN),
        ("bytes=9000-99999", 9000..LEN),
    ];
    for (range, want) in cases {
        let (status, h, body) = get(&app, &path, &[("range", range)]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body, bytes[want.clone()], "{range}");
        assert_eq!(header(&h, "content-range"), format!("bytes {}-{}/{LEN}", want.start, want.end - 1), "{range}");
        assert_eq!(header(&h, "content-length"), want.len().to_string());
        assert_eq!(header(&h, "content-type"), "image/png");
    }
}

#[tokio::test]
async fn unsatisfiable_ranges_answer_416_with_the_length() {
    let (app, path, _, _) = one_image().await;
    for range in
        ["bytes=10000-", "bytes=20000-30000", "bytes=-0", "bytes=10000-10001, 20000-", "bytes=99999999999999999999999-"]
    {
        let (status, h, body) = get(&app, &path, &[("range", range)]).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&h, "content-range"), format!("bytes */{LEN}"), "{range}");
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "range-not-satisfiable");
    }
}

#[tokio::test]
async fn malformed_foreign_or_multiple_ranges_get_the_whole_image() {
    let (app, path, bytes, _) = one_image().await;
    for range in ["bytes=5-1", "items=0-1", "bytes=a-b", "bytes=0-1, 5-6"] {
        let (status, h, body) = get(&app, &path, &[("range", range)]).await;
        assert_eq!(status, StatusCode::OK, "{range}");
        assert_eq!(body, bytes, "{range}");
        assert_eq!(header(&h, "content-range"), "");
    }
}

#[tokio::test]
async fn if_range_sends_the_range_only_while_the_etag_matches() {
    let (app, path, bytes, etag) = one_image().await;
    let (status, _, body) = get(&app, &path, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[..10]);
    for stale in ["\"stale\"", &format!("W/{etag}"), "Thu, 01 Jan 2026 00:00:00 GMT"] {
        let (status, _, body) = get(&app, &path, &[("range", "bytes=0-9"), ("if-range", stale)]).await;
        assert_eq!(status, StatusCode::OK, "{stale}");
        assert_eq!(body, bytes, "{stale}");
    }
}

#[tokio::test]
async fn a_missing_image_is_404() {
    let app = TestApp::spawn().await;
    let (status, _) = app.get(&format!("/api/v1/images/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/products/{}/images", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
