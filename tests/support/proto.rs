//! Generated code of the demo and test protobufs (compiled by `build.rs`).
#![allow(dead_code)] // each test binary uses a different part

/// `proto/routeguide.proto`.
pub mod routeguide {
    tonic::include_proto!("routeguide");
}

/// `proto/echo.proto` (package `gantry.test`).
pub mod echo {
    tonic::include_proto!("gantry.test");
}

/// `proto/interop/*.proto` (package `grpc.testing`): the gRPC interop test service.
pub mod interop {
    tonic::include_proto!("grpc.testing");
}
