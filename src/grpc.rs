//! The gRPC transport (`orderly.v1`, its own listener at `grpc.addr`): thin adapters over
//! the same services as REST, one file per resource (`catalog.rs` also serves inventory,
//! `orders.rs`), the caller resolved once per call (`caller.rs`), errors mapped to status
//! codes in one place (`status.rs`), tracing and metrics in one layer (`observe.rs`).
//! Beside them: the standard `grpc.health.v1` service (serving while the replica is ready,
//! NOT_SERVING once it drains or its database is unreachable) and server reflection v1 and
//! v1alpha. docs/GRPC.md is the client's guide.

pub mod caller;
pub mod catalog;
pub mod observe;
pub mod orders;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::realtime::drained;
use crate::services::App;

/// The code generated from `proto/orderly/v1` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, unused_qualifications)]
pub mod pb {
    tonic::include_proto!("orderly.v1");
}

/// The encoded `FileDescriptorSet` of `orderly.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("orderly_descriptor");

/// How often the health service re-checks readiness (the database) while serving.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// A UTC time as a protobuf `Timestamp`.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

type CatalogServer = pb::catalog_service_server::CatalogServiceServer<catalog::CatalogApi>;
type InventoryServer = pb::inventory_service_server::InventoryServiceServer<catalog::CatalogApi>;
type OrderServer = pb::order_service_server::OrderServiceServer<orders::OrdersApi>;

/// The names the health service answers for: the whole server (`""`) and each service.
const HEALTH_NAMES: [&str; 4] = ["", CatalogServer::NAME, InventoryServer::NAME, OrderServer::NAME];

/// Serves gRPC on `listener` until the application drains (`App::drain_signal`): then the
/// health service turns NOT_SERVING, `StreamOrderEvents` streams end with OK, the listener
/// stops accepting, and calls in flight get up to `http.shutdown_grace_ms` to finish.
/// Deadlines (`grpc-timeout`) are enforced by tonic around every call: a unary call past
/// its deadline is dropped and answered CANCELLED (the client reports DEADLINE_EXCEEDED).
pub async fn serve(listener: TcpListener, app: Arc<App>) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::Serving).await;
    let readiness = tokio::spawn(follow_readiness(reporter.clone(), app.clone()));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let catalog = catalog::CatalogApi::new(app.clone());
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut drain = app.drain_signal();
    let shutdown = {
        let reporter = reporter.clone();
        async move {
            drained(&mut drain).await;
            // Before the listener closes, so health watchers see it.
            set_health(&reporter, ServingStatus::NotServing).await;
        }
    };
    let server = tonic::transport::Server::builder()
        .layer(observe::ObserveLayer)
        .layer(caller::CallerLayer::new(app.clone()))
        .add_service(CatalogServer::new(catalog.clone()))
        .add_service(InventoryServer::new(catalog))
        .add_service(OrderServer::new(orders::OrdersApi::new(app.clone())))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown);
    let grace = Duration::from_millis(app.config.http.shutdown_grace_ms);
    let mut drain = app.drain_signal();
    let result = tokio::select! {
        r = server => r.map_err(anyhow::Error::from),
        () = async { drained(&mut drain).await; tokio::time::sleep(grace).await } => {
            tracing::warn!("gRPC grace period over; closing remaining calls");
            Ok(())
        }
    };
    readiness.abort();
    result
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// Keeps the health status in step with readiness (as `/readyz`): SERVING while the
/// database answers, NOT_SERVING while it does not and for good once draining begins.
async fn follow_readiness(reporter: HealthReporter, app: Arc<App>) {
    let mut drain = app.drain_signal();
    let mut serving = true;
    loop {
        tokio::select! {
            () = drained(&mut drain) => {
                set_health(&reporter, ServingStatus::NotServing).await;
                return;
            }
            () = tokio::time::sleep(READINESS_INTERVAL) => {
                let ready = app.db.ping().await.is_ok() && !app.is_draining();
                if ready != serving {
                    serving = ready;
                    let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
                    set_health(&reporter, status).await;
                }
            }
        }
    }
}
