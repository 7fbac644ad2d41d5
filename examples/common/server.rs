//! Serving the demo services on one accepted TCP connection: HTTP/2 with
//! prior knowledge (h2c), or HTTP/1.1 (on which gRPC itself cannot work, but
//! a plain request still gets tonic's answer).
//!
//! Shared by `examples/common` and `tests/support/backend.rs`: it reaches the
//! services as `super::echo_svc` and `super::route_svc`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tonic::codegen::Service;
use tonic::service::Routes;

use super::echo_svc::{EchoService, RequestTarget};
use super::route_svc::RouteGuideService;
use super::stats::Stats;

/// Errors of the demo servers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Echo and RouteGuide, both answering as `name` and counting into `stats`.
pub fn demo_routes(name: &str, stats: Arc<Stats>) -> Routes {
    Routes::new(EchoService::new(name, stats.clone()).into_server())
        .add_service(RouteGuideService::new(name, stats).into_server())
}

/// Serves `routes` on `stream` until the client closes it. Every request
/// gets its [`RequestTarget`] in its extensions first.
pub async fn serve_connection(stream: TcpStream, routes: Routes) -> Result<(), BoxError> {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let target = RequestTarget::of(&req);
        req.extensions_mut().insert(target);
        let mut routes = routes.clone();
        async move { Service::call(&mut routes, req).await }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Like a tonic server: no limit on concurrent streams per connection.
    builder.http2().max_concurrent_streams(None::<u32>);
    builder
        .serve_connection(TokioIo::new(stream), service)
        .await
}
