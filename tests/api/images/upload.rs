//! Uploads: what is refused (and leaves nothing behind), what is kept, and by whom.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{elf, exists, png, product, stored_keys, upload};
use crate::helpers::{Options, TestApp, assert_problem};

#[tokio::test]
async fn a_staff_upload_is_stored_with_its_sniffed_type_size_and_hash() {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    let bytes = png(5000);
    let (status, body) = upload(&app, Some(&staff), &pid, bytes.clone(), Some("image/png"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(body["size_bytes"], 5000);
    assert_eq!(body["file_name"], "image.png");
    assert_eq!(body["position"], 0);
    use sha2::Digest;
    assert_eq!(body["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    let (status, list) = app.get(&format!("/api/v1/products/{pid}/images"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], body["id"]);
    let (_, second) = upload(&app, Some(&staff), &pid, png(100), None, None).await;
    assert_eq!(second["position"], 1, "no Content-Type: the sniffed type decides");
    assert_eq!(stored_keys(&app).await.len(), 2);
}

#[tokio::test]
async fn an_executable_renamed_png_is_refused_and_nothing_is_kept() {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    for ct in [Some("image/png"), Some("application/octet-stream"), None] {
        let disposition = Some("attachment; filename=\"photo.png\"");
        let (status, body) = upload(&app, Some(&staff), &pid, elf(), ct, disposition).await;
        assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
        assert!(body["detail"].as_str().unwrap().contains("application/x-executable"), "{body}");
    }
    assert!(stored_keys(&app).await.is_empty());
    let (_, list) = app.get(&format!("/api/v1/products/{pid}/images"), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_svg_is_refused_whatever_it_claims_to_be() {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    for ct in ["image/svg+xml", "image/png"] {
        let (status, body) = upload(&app, Some(&staff), &pid, svg.to_vec(), Some(ct), None).await;
        assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    }
    assert!(stored_keys(&app).await.is_empty());
}

#[tokio::test]
async fn a_content_type_that_disagrees_with_the_content_is_refused() {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    let (status, body) = upload(&app, Some(&staff), &pid, png(64), Some("image/gif"), None).await;
    assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    assert!(body["detail"].as_str().unwrap().contains("image/png but was sent as image/gif"), "{body}");
    let (status, body) = upload(&app, Some(&staff), &pid, png(64), Some("text/html"), None).await;
    assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    let (status, body) = upload(&app, Some(&staff), &pid, Vec::new(), Some("image/png"), None).await;
    assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    assert!(stored_keys(&app).await.is_empty());
}

#[tokio::test]
async fn file_names_are_sanitised() {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    let cases = [
        ("attachment; filename=\"../../x\"", "x.png"),
        ("attachment; filename=\"..\\\\..\\\\evil.png\"", "evil.png"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd.png"),
        ("attachment; filename=\"a\tb.png\"", "ab.png"),
        ("attachment; filename*=UTF-8''a%7F%1Bb%E2%80%AEgnp.exe", "abgnp.exe.png"),
        ("attachment; filename*=UTF-8''%C3%A9t%C3%A9%0D%0A.png", "été.png"),
    ];
    for (disposition, want) in cases {
        let (status, body) = upload(&app, Some(&staff), &pid, png(32), None, Some(disposition)).await;
        assert_eq!(status, StatusCode::CREATED, "{disposition}: {body}");
        assert_eq!(body["file_name"], want, "{disposition}");
    }
    // The name never reaches the storage key: keys are ids.
    for key in stored_keys(&app).await {
        assert!(key.starts_with(&format!("images/{pid}/")) && !key.contains(".."), "{key}");
    }
}

#[tokio::test]
async fn a_customer_or_anonymous_caller_cannot_upload_or_delete() {
    let app = TestApp::spawn().await;
    let (staff, pid) = product(&app).await;
    let (customer, _, _) = app.register_customer("img-customer@example.com").await;
    let (status, body) = upload(&app, Some(&customer), &pid, png(64), Some("image/png"), None).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = upload(&app, None, &pid, png(64), Some("image/png"), None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(stored_keys(&app).await.is_empty());

    let (_, image) = upload(&app, Some(&staff), &pid, png(64), None, None).await;
    let path = format!("/api/v1/images/{}", image["id"].as_str().unwrap());
    let (status, body) = app.request(reqwest::Method::DELETE, &path, Some(&customer), None).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app.request(reqwest::Method::DELETE, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&path, None).await.0, StatusCode::OK, "still there");

    let (status, _) = app.request(reqwest::Method::DELETE, &path, Some(&staff), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, None).await.0, StatusCode::NOT_FOUND);
    assert!(stored_keys(&app).await.is_empty(), "the object went with the row");
    let (status, _) = app.request(reqwest::Method::DELETE, &path, Some(&staff), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_upload_to_a_missing_product_is_404_and_keeps_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff().await;
    let missing = uuid::Uuid::now_v7();
    let (status, body) = upload(&app, Some(&staff), &missing.to_string(), png(64), None, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    assert!(stored_keys(&app).await.is_empty());
}

const LIMIT: u64 = 64 * 1024;

async fn limited_app() -> TestApp {
    TestApp::spawn_with(Options { config: vec![("storage.max_upload_bytes", LIMIT.to_string())], ..Default::default() })
        .await
}

#[tokio::test]
async fn an_upload_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
    let app = limited_app().await;
    let (staff, pid) = product(&app).await;
    let (status, body) = upload(&app, Some(&staff), &pid, png(LIMIT as usize), None, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(&app, Some(&staff), &pid, png(LIMIT as usize + 1), None, None).await;
    assert_problem(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert_eq!(stored_keys(&app).await.len(), 1);
}

/// A chunked body (no `Content-Length`) of up to 256 MiB, sent over a raw socket while the
/// answer is awaited: the server must answer 413 once the limit is passed, long before the
/// body ends, and keep nothing.
#[tokio::test]
async fn an_oversized_streamed_upload_is_cut_at_the_limit_while_streaming() {
    const TOTAL: u64 = 256 * 1024 * 1024;
    let app = limited_app().await;
    let (staff, pid) = product(&app).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/v1/products/{pid}/images HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {staff}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = png(16 * 1024);
        let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk, b"\r\n".to_vec()].concat();
        while counter.load(Ordering::Relaxed) < TOTAL {
            writer.write_all(&framed).await?;
            counter.fetch_add(16 * 1024, Ordering::Relaxed);
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), reader.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    let sent_when_answered = sent.load(Ordering::Relaxed);
    sender.abort();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload-too-large"), "{answer}");
    assert!(sent_when_answered < TOTAL / 4, "answered after {sent_when_answered} of {TOTAL} bytes");
    // The aborted upload leaves nothing: not a row, not an object, not a part.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(stored_keys(&app).await.is_empty(), "{:?}", stored_keys(&app).await);
    let (_, list) = app.get(&format!("/api/v1/products/{pid}/images"), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    assert!(!exists(&app, &format!("images/{pid}")).await);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_read() {
    let app = limited_app().await;
    let (staff, pid) = product(&app).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/products/{pid}/images HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {staff}\r\n\
         Content-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        10 * LIMIT
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Not one body byte sent: the answer comes from the declared length alone.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"));
    assert!(stored_keys(&app).await.is_empty());
}
