//! The gRPC server itself: credentials in metadata, health following the drain, deadlines,
//! request ids and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use orderly::Overrides;
use orderly::grpc::pb;
use orderly::payments::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway, PaymentRecord};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{assert_status, authed, catalog, channel, order_of, orders};
use crate::helpers::{Options, TestApp};

#[tokio::test]
async fn health_is_serving_and_turns_not_serving_when_the_server_drains() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(channel(&app).await);
    for service in ["", "orderly.v1.CatalogService", "orderly.v1.InventoryService", "orderly.v1.OrderService"] {
        let res = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(res.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "orderly.v1.Nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopping = tokio::spawn(app.stop());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.expect("an update in time");
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    // A watch never ends by itself: close it so the drain need not wait out the grace period.
    drop(watch);
    drop(health);
    tokio::time::timeout(Duration::from_secs(30), stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn credentials_come_from_metadata_and_bad_ones_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let mut client = orders(&app).await;
    let list = || pb::ListOrdersRequest::default();

    let err = client.list_orders(authed(list(), "not-a-token")).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "invalid-token");
    let mut basic = Request::new(list());
    basic.metadata_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_status(&client.list_orders(basic).await.unwrap_err(), Code::Unauthenticated, "unauthenticated");
    // Public reads refuse a bad credential too (as REST does) rather than serve it anonymously.
    let mut cat = catalog(&app).await;
    let err = cat.list_categories(authed(pb::ListCategoriesRequest {}, "not-a-token")).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "invalid-token");

    // An API key in `x-api-key`, with its scopes enforced by the service.
    let (_, customer_id, _) = app.register_customer("grpc-key@example.com").await;
    let admin = app.admin().await;
    let body = serde_json::json!({"name": "ci", "scopes": ["orders:read"], "owner_id": customer_id});
    let (status, key) = app.post("/api/v1/api-keys", Some(&admin), &body).await;
    assert!(status.is_success(), "{key}");
    let secret = key["key"].as_str().unwrap();
    let mut with_key = Request::new(list());
    with_key.metadata_mut().insert("x-api-key", secret.parse().unwrap());
    assert!(client.list_orders(with_key).await.unwrap().into_inner().orders.is_empty());
    let mut write = Request::new(order_of("ANY", 1, None));
    write.metadata_mut().insert("x-api-key", secret.parse().unwrap());
    assert_status(&client.place_order(write).await.unwrap_err(), Code::PermissionDenied, "insufficient-scope");
}

/// A gateway whose charges take 3 s.
struct SlowGateway;

impl PaymentGateway for SlowGateway {
    fn charge(&self, _req: ChargeRequest) -> BoxFuture<'_, Result<ChargeOutcome, GatewayError>> {
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(ChargeOutcome::Succeeded { payment_id: "pay_slow".into() })
        }
        .boxed()
    }
    fn lookup(&self, _key: String) -> BoxFuture<'_, Result<Option<PaymentRecord>, GatewayError>> {
        async { Ok(None) }.boxed()
    }
    fn void(&self, _payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        async { Ok(()) }.boxed()
    }
    fn refund(&self, _payment_id: String) -> BoxFuture<'_, Result<(), GatewayError>> {
        async { Ok(()) }.boxed()
    }
}

#[tokio::test]
async fn a_call_past_its_deadline_is_cut_off_by_the_server() {
    let overrides = Overrides { payments: Some(Arc::new(SlowGateway)), ..Overrides::default() };
    let app = TestApp::spawn_with(Options { overrides, ..Options::default() }).await;
    let staff = app.staff().await;
    app.create_product(&staff, "GRPC-SLOW", 100, 5).await;
    let (customer, _, _) = app.register_customer("grpc-slow@example.com").await;
    let mut client = orders(&app).await;

    let mut req = authed(order_of("GRPC-SLOW", 1, Some("4242424242424242")), &customer);
    req.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = client.place_order(req).await.unwrap_err();
    assert!(matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "cut at the deadline, not after the charge: {:?}",
        started.elapsed()
    );

    // The server counted it as cut off (tonic's client does not enforce `grpc-timeout` itself).
    let metrics = app.client.get(format!("{}/metrics", app.admin_base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("orderly_grpc_requests_total")
            && l.contains("/orderly.v1.OrderService/PlaceOrder")
            && l.contains("code=\"CANCELLED\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn each_call_gets_a_request_id_and_is_counted_by_method_and_code() {
    let app = TestApp::spawn().await;
    let mut client = catalog(&app).await;
    let mut req = Request::new(pb::ListCategoriesRequest {});
    req.metadata_mut().insert("x-request-id", "grpc-test-id-1".parse().unwrap());
    let res = client.list_categories(req).await.unwrap();
    assert_eq!(res.metadata().get("x-request-id").unwrap(), "grpc-test-id-1");
    let res = client.list_categories(pb::ListCategoriesRequest {}).await.unwrap();
    let generated = res.metadata().get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    let missing = client.get_product(pb::GetProductRequest { id: uuid::Uuid::now_v7().to_string() }).await.unwrap_err();
    assert!(missing.metadata().get("x-request-id").is_some(), "errors carry it too");

    let metrics = app.client.get(format!("{}/metrics", app.admin_base)).send().await.unwrap().text().await.unwrap();
    let counted = |method: &str, code: &str| {
        metrics.lines().any(|l| {
            l.starts_with("orderly_grpc_requests_total")
                && l.contains(method)
                && l.contains(&format!("code=\"{code}\""))
        })
    };
    assert!(counted("/orderly.v1.CatalogService/ListCategories", "OK"), "{metrics}");
    assert!(counted("/orderly.v1.CatalogService/GetProduct", "NOT_FOUND"), "{metrics}");
    assert!(metrics.contains("orderly_grpc_request_duration_seconds_bucket"), "{metrics}");
}

/// Server reflection answers `list_services` in both versions: v1 (the standard) and
/// v1alpha (what grpcurl 1.8 and most CLI tools speak), naming every orderly.v1 service.
#[tokio::test]
async fn reflection_v1_and_v1alpha_both_list_the_services() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = TestApp::spawn().await;
    let want = [
        "orderly.v1.CatalogService",
        "orderly.v1.InventoryService",
        "orderly.v1.OrderService",
        "grpc.health.v1.Health",
    ];

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel(&app).await);
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([req])).await.expect("v1 reflection").into_inner();
    let answer = answers.message().await.expect("v1 answer").expect("one answer");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = answer.message_response
    else {
        panic!("v1: not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for w in want {
        assert!(names.iter().any(|n| n == w), "v1 lacks {w}: {names:?}");
    }

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&app).await);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([req])).await.expect("v1alpha reflection").into_inner();
    let answer = answers.message().await.expect("v1alpha answer").expect("one answer");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha: not a service list: {answer:?}");
    };
    let alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    // Each version names itself as the reflection service; everything else is the same.
    assert!(names.iter().any(|n| n == "grpc.reflection.v1.ServerReflection"), "{names:?}");
    assert!(alpha.iter().any(|n| n == "grpc.reflection.v1alpha.ServerReflection"), "{alpha:?}");
    let others = |v: &[String]| v.iter().filter(|n| !n.starts_with("grpc.reflection.")).cloned().collect::<Vec<_>>();
    assert_eq!(others(&alpha), others(&names), "both versions list the same services");
}
