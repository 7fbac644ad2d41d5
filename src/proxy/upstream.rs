//! Connections to one server.
//!
//! h2c servers get one multiplexed HTTP/2 connection, shared by every call (gRPC
//! clients and servers are built for that) and re-dialled when it closes. The handle
//! is read lock-free (`ArcSwapOption`); only dialling takes an async mutex, so a burst
//! of calls to a fresh server makes one connection, not one each. HTTP/1.1 servers use
//! hyper's pooled client, one connection per call in flight, kept alive between calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::coalesce::Coalesce;
use crate::dynamic::Scheme;

/// How long dialling a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 flow-control windows towards servers: big enough that a multi-megabyte
/// message is not throttled by round trips, small enough to bound buffering.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

/// Why a call could not be handed to a server, or failed there.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The server could not be reached: the call never left gantry.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {CONNECT_TIMEOUT:?}")]
    ConnectTimeout { addr: SocketAddr },
    #[error("HTTP/2 handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    /// The call was sent but failed before a response arrived.
    #[error("request to {addr} failed: {source}")]
    Request {
        addr: SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("scheme {0} is not supported for servers yet")]
    Unsupported(Scheme),
}

impl UpstreamError {
    /// True when the server never saw the call (safe to try elsewhere).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect { .. }
                | UpstreamError::ConnectTimeout { .. }
                | UpstreamError::Handshake { .. }
        )
    }
}

/// A call that failed on its way to a server.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SendError {
    pub error: UpstreamError,
    /// The call, when the server never saw it.
    pub request: Option<Request<RequestBody>>,
}

/// The way to one server.
pub struct Upstream {
    addr: SocketAddr,
    kind: Kind,
}

enum Kind {
    H2(H2Pool),
    Http1(Box<Client<HttpConnector, RequestBody>>),
    Unsupported(Scheme),
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Upstream {
    pub fn new(addr: SocketAddr, scheme: Scheme) -> Upstream {
        let kind = match scheme {
            Scheme::H2c => Kind::H2(H2Pool {
                addr,
                current: ArcSwapOption::empty(),
                socket: ArcSwapOption::empty(),
                dialling: tokio::sync::Mutex::new(()),
            }),
            Scheme::Http => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_timer(TokioTimer::new())
                    .build(connector);
                Kind::Http1(Box::new(client))
            }
            other => Kind::Unsupported(other),
        };
        Upstream { addr, kind }
    }

    /// Sends a call. For HTTP/1.1 the request URI must be absolute (scheme and this
    /// server's address); for h2c it carries the authority the client asked for.
    ///
    /// When the server never saw the call (no connection could be made, or the
    /// connection closed before the request was written), the error hands the request
    /// back, so it can be sent elsewhere.
    pub async fn send(&self, req: Request<RequestBody>) -> Result<Response<Incoming>, SendError> {
        let not_sent = |error, request| SendError {
            error,
            request: Some(request),
        };
        match &self.kind {
            Kind::H2(pool) => {
                let mut sender = match pool.sender().await {
                    Ok(s) => s,
                    Err(error) => return Err(not_sent(error, req)),
                };
                sender.try_send_request(req).await.map_err(|mut e| {
                    let request = e.take_message();
                    SendError {
                        error: UpstreamError::Request {
                            addr: self.addr,
                            source: Box::new(e.into_error()),
                        },
                        request,
                    }
                })
            }
            // hyper's pooled HTTP/1.1 client consumes the request even when it cannot
            // connect, so those calls are not retried.
            Kind::Http1(client) => client.request(req).await.map_err(|e| {
                let error = if e.is_connect() {
                    let source = std::io::Error::other(
                        std::error::Error::source(&e)
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| e.to_string()),
                    );
                    UpstreamError::Connect {
                        addr: self.addr,
                        source,
                    }
                } else {
                    UpstreamError::Request {
                        addr: self.addr,
                        source: Box::new(e),
                    }
                };
                SendError {
                    error,
                    request: None,
                }
            }),
            Kind::Unsupported(s) => Err(not_sent(UpstreamError::Unsupported(*s), req)),
        }
    }

    /// Makes sure the server can be reached: h2c opens (or keeps) the shared
    /// connection calls will use; HTTP/1.1 opens and closes a TCP connection.
    pub async fn connect(&self) -> Result<(), UpstreamError> {
        match &self.kind {
            Kind::H2(pool) => pool.sender().await.map(drop),
            Kind::Http1(_) => {
                let addr = self.addr;
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(source)) => Err(UpstreamError::Connect { addr, source }),
                    Err(_) => Err(UpstreamError::ConnectTimeout { addr }),
                }
            }
            Kind::Unsupported(s) => Err(UpstreamError::Unsupported(*s)),
        }
    }

    /// Closes the h2c connection at once, failing the streams still on it (a removed
    /// server whose drain time is over). The next call dials again. HTTP/1.1
    /// connections are left to finish: hyper's pool cannot close one in use.
    pub fn cut(&self) {
        if let Kind::H2(pool) = &self.kind {
            pool.current.store(None);
            if let Some(socket) = pool.socket.swap(None) {
                // The connection's own reads and writes fail at once; every stream
                // on it ends with an error.
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Whether an HTTP/2 connection is open now (for the API and tests).
    pub fn is_connected(&self) -> bool {
        match &self.kind {
            Kind::H2(pool) => pool.current.load().as_ref().is_some_and(|s| !s.is_closed()),
            _ => false,
        }
    }
}

struct H2Pool {
    addr: SocketAddr,
    current: ArcSwapOption<http2::SendRequest<RequestBody>>,
    /// A second handle on the current connection's socket, to shut it down.
    socket: ArcSwapOption<std::net::TcpStream>,
    dialling: tokio::sync::Mutex<()>,
}

impl H2Pool {
    async fn sender(&self) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        if let Some(s) = self.open() {
            return Ok(s);
        }
        // One dial at a time; whoever waited behind it reuses its connection.
        let _dialling = self.dialling.lock().await;
        if let Some(s) = self.open() {
            return Ok(s);
        }
        let (sender, socket) = self.dial().await?;
        self.current.store(Some(Arc::new(sender.clone())));
        self.socket.store(socket.map(Arc::new));
        Ok(sender)
    }

    fn open(&self) -> Option<http2::SendRequest<RequestBody>> {
        let guard = self.current.load();
        match guard.as_deref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            _ => None,
        }
    }

    async fn dial(
        &self,
    ) -> Result<(http2::SendRequest<RequestBody>, Option<std::net::TcpStream>), UpstreamError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
            Err(_) => return Err(UpstreamError::ConnectTimeout { addr }),
        };
        let _ = stream.set_nodelay(true);
        let (stream, socket) =
            with_second_handle(stream).map_err(|source| UpstreamError::Connect { addr, source })?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(Coalesce::new(stream)))
            .await
            .map_err(|source| UpstreamError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
        });
        tracing::debug!(%addr, "upstream h2c connection open");
        Ok((sender, socket))
    }
}

/// The stream, and a duplicate of its socket that can shut it down from outside
/// (hyper owns the stream, and its connection task outlives any handle we hold).
/// Out of descriptors, the stream alone.
fn with_second_handle(
    stream: TcpStream,
) -> std::io::Result<(TcpStream, Option<std::net::TcpStream>)> {
    let std = stream.into_std()?;
    let second = std.try_clone().ok();
    Ok((TcpStream::from_std(std)?, second))
}
