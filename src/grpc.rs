//! The gRPC transport (`orderly.v1`, its own listener at `grpc.addr`): thin adapters over
//! the same services as REST, one file per resource.

/// The code generated from `proto/orderly/v1` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, unused_qualifications)]
pub mod pb {
    tonic::include_proto!("orderly.v1");
}

/// The encoded `FileDescriptorSet` of `orderly.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("orderly_descriptor");
