//! The HTTP surface: problem+json everywhere, body limits, OpenAPI, docs, health.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, assert_problem};

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app.client.delete(app.url("/api/v1/products")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "method-not-allowed");
}

#[tokio::test]
async fn malformed_json_is_400_and_a_wrong_media_type_is_415() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");
    let res = app.client.post(app.url("/api/v1/auth/login")).body("email=a").send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_content_length() {
    let app =
        TestApp::spawn_with(Options { config: vec![("http.max_body_bytes", "4096".into())], ..Default::default() })
            .await;
    let big = json!({ "email": "a".repeat(10_000), "password": "x" }).to_string();
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    // Chunked: no Content-Length, the limit must still hold while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.into_bytes().chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "payload-too-large");
}

#[tokio::test]
async fn the_openapi_document_describes_the_api_and_the_docs_work_offline() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for path in ["/api/v1/orders", "/api/v1/products/{id}", "/api/v1/auth/refresh", "/api/v1/dashboard"] {
        assert!(doc["paths"].get(path).is_some(), "missing {path}");
    }
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());

    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(!html.contains("https://"), "Swagger UI must not load assets from the internet");
    let res = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().get("x-request-id").is_some());
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn readiness_reports_the_database_and_turns_unready_while_draining() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"][0]["name"], "database");
    assert_eq!(body["checks"][0]["status"], "ok");
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_stops_accepting() {
    let app = TestApp::spawn().await;
    let base = app.base.clone();
    app.stop().await;
    let err = reqwest::Client::new().get(format!("{base}/healthz")).send().await;
    assert!(err.is_err(), "the listener must be closed after shutdown");
}

/// The sandbox, but every charge takes `delay`.
struct SlowGateway {
    sandbox: orderly::payments::sandbox::SandboxGateway,
    delay: std::time::Duration,
}

impl orderly::payments::PaymentGateway for SlowGateway {
    fn charge(
        &self,
        req: orderly::payments::ChargeRequest,
    ) -> futures_util::future::BoxFuture<'_, Result<orderly::payments::ChargeOutcome, orderly::payments::GatewayError>>
    {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.sandbox.charge(req).await
        })
    }
    fn lookup(
        &self,
        key: String,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<Option<orderly::payments::PaymentRecord>, orderly::payments::GatewayError>,
    > {
        self.sandbox.lookup(key)
    }
    fn void(&self, id: String) -> futures_util::future::BoxFuture<'_, Result<(), orderly::payments::GatewayError>> {
        self.sandbox.void(id)
    }
    fn refund(&self, id: String) -> futures_util::future::BoxFuture<'_, Result<(), orderly::payments::GatewayError>> {
        self.sandbox.refund(id)
    }
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_checkout_finish() {
    let db = std::sync::Arc::new(crate::helpers::TestDb::new().await);
    let gateway = SlowGateway {
        sandbox: orderly::payments::sandbox::SandboxGateway::new(TestApp::spawn_db(&db).await),
        delay: std::time::Duration::from_millis(800),
    };
    let app = TestApp::spawn_with(Options {
        db: Some(db),
        overrides: orderly::Overrides { payments: Some(std::sync::Arc::new(gateway)), ..Default::default() },
        ..Default::default()
    })
    .await;
    let staff = app.staff().await;
    app.create_product(&staff, "SD-1", 100, 5).await;
    let (customer, _, _) = app.register_customer("drain@example.com").await;
    let in_flight = {
        let (client, url) = (app.client.clone(), app.url("/api/v1/orders"));
        tokio::spawn(async move {
            let body = json!({ "line_items": [{ "sku": "SD-1", "quantity": 1 }], "payment": { "card_number": crate::helpers::GOOD_CARD } });
            let res = client.post(url).bearer_auth(customer).json(&body).send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let base = app.base.clone();
    app.stop().await;
    let (status, order) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "paid");
    assert!(reqwest::Client::new().get(format!("{base}/healthz")).send().await.is_err());
}
