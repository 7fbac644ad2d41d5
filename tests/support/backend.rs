//! Real backends for gantry's integration tests, on 127.0.0.1 sockets.
//!
//! * [`Backend::start`]: the `gantry.test.Echo` and `routeguide.RouteGuide`
//!   services (the same code as the demo backend, `examples/common/`) over
//!   h2c; see `proto/echo.proto` for what Echo does and echoes back.
//! * [`Backend::start_http1`]: a plain HTTP/1.1 server that answers anything
//!   with its name and reports the request headers it saw.
//!
//! Each backend counts what it served ([`Stats`]) and can be killed hard
//! ([`Backend::kill`], also on drop) and restarted on the same port
//! ([`Backend::start_on`]). [`wait_until`] polls a condition.
//!
//! Compiled as `support::backend`, beside `support::proto`.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tonic::service::Routes;
use tonic::transport::Channel;

// The shared service code reaches the generated code as `super::echo` and
// `super::routeguide`.
use super::proto::{echo, routeguide};

#[path = "../../examples/common/echo_svc.rs"]
mod echo_svc;
#[path = "../../examples/common/route_svc.rs"]
mod route_svc;
#[path = "../../examples/common/server.rs"]
mod server;
#[path = "../../examples/common/stats.rs"]
mod stats;

pub use echo_svc::{pattern, MAX_MESSAGE_SIZE};

/// The Echo service alone, for a test that serves it its own way.
pub fn echo_server(name: &str) -> echo::echo_server::EchoServer<echo_svc::EchoService> {
    echo_svc::EchoService::new(name, Arc::new(Stats::default())).into_server()
}
pub use route_svc::LANDMARKS;
pub use stats::Stats;

use echo::echo_client::EchoClient;
use routeguide::route_guide_client::RouteGuideClient;

/// How long [`Backend::start_on`] keeps retrying a port that is still held
/// (by a backend killed an instant ago).
const REBIND_FOR: Duration = Duration::from_secs(3);

/// A backend server on 127.0.0.1. Killed when dropped.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The name it puts in its answers.
    pub name: String,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
}

/// What the accept loop, the connections and [`Backend::kill`] share.
struct Shared {
    killed: AtomicBool,
    /// A duplicate of the listening socket, to shut it from `kill`.
    listener: ArcSwapOption<OwnedFd>,
    /// The accept loop.
    accept: ArcSwapOption<AbortHandle>,
    /// Open connections.
    conns: ArcSwap<Vec<Arc<Conn>>>,
    next_conn: AtomicU64,
}

/// One open connection.
struct Conn {
    id: u64,
    /// A duplicate of the connection's socket, to shut it from `kill`.
    socket: OwnedFd,
    task: AbortHandle,
}

impl Conn {
    /// Resets the connection: nothing more is read or written on it, and
    /// closing it sends RST.
    fn reset(&self) {
        let socket = SockRef::from(&self.socket);
        let _ = socket.set_linger(Some(Duration::ZERO));
        let _ = socket.shutdown(std::net::Shutdown::Both);
        self.task.abort();
    }
}

/// What a backend speaks on its connections.
#[derive(Clone)]
enum Protocol {
    /// Echo + RouteGuide over h2c (HTTP/1.1 also accepted).
    Grpc(Routes),
    /// The plain HTTP/1.1 answerer.
    Http1(Arc<str>),
    /// The same answerer over HTTP/1.1 or h2c (prior knowledge), as the client
    /// speaks.
    Http1Or2(Arc<str>),
}

impl Backend {
    /// An Echo + RouteGuide backend named `name` on a free port.
    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("cannot start backend {name}: {e}"))
    }

    /// An Echo + RouteGuide backend named `name` on `addr`, e.g. the address
    /// of a backend just killed (a port still held is retried for a few
    /// seconds).
    pub async fn start_on(name: &str, addr: SocketAddr) -> io::Result<Backend> {
        let stats = Arc::new(Stats::default());
        let routes = server::demo_routes(name, stats.clone());
        Self::launch(name, addr, stats, Protocol::Grpc(routes)).await
    }

    /// An Echo + RouteGuide backend that also serves the gRPC health protocol
    /// (`grpc.health.v1.Health`, tonic-health's implementation); the reporter sets
    /// what it answers (SERVING for "" at first).
    pub async fn start_with_health(name: &str) -> (Backend, tonic_health::server::HealthReporter) {
        let stats = Arc::new(Stats::default());
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let routes = server::demo_routes(name, stats.clone()).add_service(health);
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let backend = Self::launch(name, addr, stats, Protocol::Grpc(routes))
            .await
            .unwrap_or_else(|e| panic!("cannot start backend {name}: {e}"));
        (backend, reporter)
    }

    /// A plain HTTP/1.1 backend named `name` on a free port. Any request
    /// gets `200 OK` with body `name` and the response headers:
    /// * `x-backend: <name>`;
    /// * `x-seen-<header>: <value>` for every request header (repeated
    ///   headers repeat), e.g. `x-seen-host`, `x-seen-x-forwarded-for`;
    /// * `x-request-method`, `x-request-uri` (as received: origin form
    ///   unless the client sent an absolute URI) and `x-request-body-bytes`.
    pub async fn start_http1(name: &str) -> Backend {
        let stats = Arc::new(Stats::default());
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::launch(name, addr, stats, Protocol::Http1(name.into()))
            .await
            .unwrap_or_else(|e| panic!("cannot start HTTP/1 backend {name}: {e}"))
    }

    /// Like [`Backend::start_http1`], also over h2c (HTTP/2 with prior knowledge):
    /// there `x-request-uri` is absolute and carries the `:authority` received.
    pub async fn start_http_any(name: &str) -> Backend {
        let stats = Arc::new(Stats::default());
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::launch(name, addr, stats, Protocol::Http1Or2(name.into()))
            .await
            .unwrap_or_else(|e| panic!("cannot start HTTP backend {name}: {e}"))
    }

    /// What this backend has served.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the backend now, without any graceful drain: the listening
    /// socket is shut (new connections are refused from the moment this
    /// returns) and every open connection is shut down and reset, which
    /// ends all its calls. Idempotent.
    pub fn kill(&self) {
        let shared = &self.shared;
        shared.killed.store(true, Ordering::SeqCst);
        if let Some(listener) = shared.listener.swap(None) {
            // Shutting a listening socket takes it out of LISTEN at once:
            // connection attempts get RST even before the accept task is
            // gone and the descriptor closed.
            let _ = SockRef::from(&*listener).shutdown(std::net::Shutdown::Both);
        }
        if let Some(accept) = shared.accept.swap(None) {
            accept.abort();
        }
        for conn in shared.conns.swap(Arc::new(Vec::new())).iter() {
            conn.reset();
        }
    }

    async fn launch(
        name: &str,
        addr: SocketAddr,
        stats: Arc<Stats>,
        protocol: Protocol,
    ) -> io::Result<Backend> {
        let listener = bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            killed: AtomicBool::new(false),
            listener: ArcSwapOption::from_pointee(listener.as_fd().try_clone_to_owned()?),
            accept: ArcSwapOption::empty(),
            conns: ArcSwap::from_pointee(Vec::new()),
            next_conn: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            stats.clone(),
            protocol,
        ));
        shared.accept.store(Some(Arc::new(accept.abort_handle())));
        Ok(Backend {
            addr,
            name: name.to_owned(),
            stats,
            shared,
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("stats", &self.stats)
            .finish()
    }
}

/// A listener on `addr` with SO_REUSEADDR (so connections of a killed
/// backend lingering in TIME_WAIT don't block a restart), retrying while
/// the port is still held.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let give_up = Instant::now() + REBIND_FOR;
    loop {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    protocol: Protocol,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) if shared.killed.load(Ordering::SeqCst) => return,
            Err(_) => {
                // Out of descriptors or an aborted handshake: go on.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.count_connection();
        let Ok(socket) = stream.as_fd().try_clone_to_owned() else {
            continue; // out of descriptors: drop the connection
        };
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        let (registered, is_registered) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let shared = shared.clone();
            let stats = stats.clone();
            let protocol = protocol.clone();
            async move {
                // Start only once `kill` can find this connection.
                if is_registered.await.is_ok() {
                    let _ = serve(stream, protocol, stats).await;
                }
                shared.conns.rcu(|conns| {
                    conns
                        .iter()
                        .filter(|c| c.id != id)
                        .cloned()
                        .collect::<Vec<_>>()
                });
            }
        });
        let conn = Arc::new(Conn {
            id,
            socket,
            task: task.abort_handle(),
        });
        shared.conns.rcu(|conns| {
            let mut conns = Vec::clone(conns);
            conns.push(conn.clone());
            conns
        });
        // `kill` sets `killed` before it collects the connections, so a
        // connection it missed is seen as killed here.
        if shared.killed.load(Ordering::SeqCst) {
            conn.reset();
            return;
        }
        let _ = registered.send(());
    }
}

async fn serve(
    stream: TcpStream,
    protocol: Protocol,
    stats: Arc<Stats>,
) -> Result<(), server::BoxError> {
    match protocol {
        Protocol::Grpc(routes) => server::serve_connection(stream, routes).await,
        Protocol::Http1(name) => {
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |req| {
                http1_answer(name.clone(), stats.clone(), req)
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await?;
            Ok(())
        }
        Protocol::Http1Or2(name) => {
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |req| {
                http1_answer(name.clone(), stats.clone(), req)
            });
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
                .map_err(std::io::Error::other)?;
            Ok(())
        }
    }
}

/// The HTTP/1.1 backend's answer: see [`Backend::start_http1`].
async fn http1_answer(
    name: Arc<str>,
    stats: Arc<Stats>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    stats.count_call();
    let (parts, body) = req.into_parts();
    let body_bytes = body.collect().await.map_or(0, |b| b.to_bytes().len());
    let mut response = http::Response::builder()
        .header("x-backend", &*name)
        .header("x-request-method", parts.method.as_str())
        .header("x-request-uri", parts.uri.to_string())
        .header("x-request-body-bytes", body_bytes);
    for (header, value) in &parts.headers {
        response = response.header(format!("x-seen-{header}"), value);
    }
    let response = response
        .body(Full::new(Bytes::copy_from_slice(name.as_bytes())))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::from_static(b"bad header"))));
    Ok(response)
}

/// An Echo client for `url` (e.g. [`Backend::url`] or the router's), with
/// the 16 MiB message limits, on its own connection.
pub async fn echo_client(url: &str) -> Result<EchoClient<Channel>, tonic::transport::Error> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("bad url")
        .connect()
        .await?;
    Ok(EchoClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE))
}

/// A RouteGuide client for `url`, on its own connection.
pub async fn route_client(url: &str) -> Result<RouteGuideClient<Channel>, tonic::transport::Error> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("bad url")
        .connect()
        .await?;
    Ok(RouteGuideClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE))
}

/// Polls `f` every 5 ms until it returns true; panics naming `what` if that
/// takes longer than `deadline`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, deadline: Duration, mut f: F) {
    let give_up = Instant::now() + deadline;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
