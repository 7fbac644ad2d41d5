//! The gRPC interop test cases (grpc's `doc/interop-test-descriptions.md`) across
//! three independent implementations, each as client and as server:
//!
//! | implementation | HTTP/2 | client and server |
//! | --- | --- | --- |
//! | tonic (Rust) | hyper's `h2` | [`tonic_client`], [`tonic_server`]: in the test's process |
//! | grpcio (Python, gRPC's C core) | the C core's own | `tests/interop/python/`: processes, run with `.venv/bin/python` |
//! | @grpc/grpc-js (Node) | Node's `http2` | `tests/interop/node/`: processes, run with `node` |
//!
//! All three speak `grpc.testing` from `proto/interop/*.proto`. A client runs the
//! cases one after the other, each on its own channel and within a deadline
//! ([`CASE_TIMEOUT`]), and reports a [`CaseResult`] per case; the Python and Node
//! clients print them as JSON lines. `scripts/test.sh` installs grpcio (into
//! `.venv`, from `tests/interop/python/requirements.txt`) and grpc-js (`npm ci` in
//! `tests/interop/node`); without them [`Server::start`] and [`run_client`] panic
//! saying so: a missing implementation fails the test, never skips it.

pub mod external;
pub mod tonic_client;
pub mod tonic_server;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The cases, in the descriptions' order.
pub const CASES: [&str; 14] = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
];

/// How long one case may take: a hang fails in seconds.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Metadata the server echoes back ("Echo Metadata").
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";
pub const INITIAL_VALUE: &str = "test_initial_metadata_value";
pub const TRAILING_VALUE: &[u8] = &[0xab, 0xab, 0xab];
/// The message of `special_status_message`: whitespace, BMP and non-BMP Unicode.
pub const SPECIAL_MESSAGE: &str =
    "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n";
/// Request payload sizes of client_streaming and ping_pong.
pub const REQUEST_SIZES: [usize; 4] = [27182, 8, 1828, 45904];
/// Response payload sizes of server_streaming and ping_pong.
pub const RESPONSE_SIZES: [usize; 4] = [31415, 9, 2653, 58979];

/// One implementation of gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impl {
    Tonic,
    Grpcio,
    GrpcJs,
}

impl Impl {
    pub const ALL: [Impl; 3] = [Impl::Tonic, Impl::Grpcio, Impl::GrpcJs];

    /// Its name in reports (and, without the dash, as a gantry entrypoint).
    pub fn name(self) -> &'static str {
        match self {
            Impl::Tonic => "tonic",
            Impl::Grpcio => "grpcio",
            Impl::GrpcJs => "grpc-js",
        }
    }
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What one case came to.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub case: String,
    /// `Err` says what failed.
    pub outcome: Result<(), String>,
}

/// A running interop server; stopped when dropped.
pub enum Server {
    Tonic(tonic_server::TonicServer),
    Process(Box<external::ProcessServer>),
}

impl Server {
    /// Starts `implementation`'s server on a free 127.0.0.1 port and waits until it
    /// accepts connections.
    pub async fn start(implementation: Impl) -> Server {
        match implementation {
            Impl::Tonic => Server::Tonic(tonic_server::TonicServer::start().await),
            other => Server::Process(Box::new(external::ProcessServer::start(other).await)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Tonic(s) => s.addr,
            Server::Process(s) => s.addr,
        }
    }
}

/// Runs `cases` with `implementation`'s client against `addr`: one result per case,
/// in order.
pub async fn run_client(implementation: Impl, addr: SocketAddr, cases: &[&str]) -> Vec<CaseResult> {
    match implementation {
        Impl::Tonic => tonic_client::run(addr, cases, CASE_TIMEOUT).await,
        other => external::run_client(other, addr, cases, CASE_TIMEOUT).await,
    }
}
