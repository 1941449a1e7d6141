//! Settings of components that later transports and features bring (DESIGN.md, "Components"):
//! accepted now so that deployments can set every documented variable, and reported at
//! start-up while this build does not use them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The gRPC listener (`ORDERLY_GRPC_ADDR`, default `127.0.0.1:50051`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    pub addr: SocketAddr,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self { addr: SocketAddr::from(([127, 0, 0, 1], 50051)) }
    }
}
