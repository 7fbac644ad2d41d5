//! Shared code of the demo programs (`examples/backend.rs`,
//! `examples/client.rs`): the generated gRPC code, the RouteGuide and Echo
//! services, and a small h2c server for them.
//!
//! The service files are also compiled into the integration tests' support
//! code (`tests/support/backend.rs`), so they refer to their siblings only
//! through `super::`.
#![allow(dead_code)] // each example uses a different part

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub mod echo_svc;
pub mod route_svc;
pub mod server;
pub mod stats;

/// Generated code of `proto/routeguide.proto`.
pub mod routeguide {
    tonic::include_proto!("routeguide");
}

/// Generated code of `proto/echo.proto`.
pub mod echo {
    tonic::include_proto!("gantry.test");
}

pub use server::BoxError;

/// Serves RouteGuide and Echo, both answering as `name`, over h2c on `addr`,
/// until the process ends. Returns early only if `addr` can't be bound.
pub async fn serve_routeguide(addr: SocketAddr, name: String) -> Result<(), BoxError> {
    let listener = TcpListener::bind(addr).await?;
    serve_routeguide_on(listener, name).await
}

/// Like [`serve_routeguide`], on a listener already bound.
pub async fn serve_routeguide_on(listener: TcpListener, name: String) -> Result<(), BoxError> {
    let stats = Arc::new(stats::Stats::default());
    let routes = server::demo_routes(&name, stats.clone());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: wait a little, go on.
                eprintln!("backend {name}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.count_connection();
        let routes = routes.clone();
        let name = name.clone();
        tokio::spawn(async move {
            if let Err(e) = server::serve_connection(stream, routes).await {
                eprintln!("backend {name}: connection from {peer}: {e}");
            }
        });
    }
}
