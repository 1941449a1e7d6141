//! The gRPC transport's settings (docs/GRPC.md): its own listener. Credentials, rate limits
//! and the shutdown grace period are shared with HTTP.

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
