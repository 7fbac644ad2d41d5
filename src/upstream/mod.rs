//! Connections to servers, and the exchange of one call with one of them.
//!
//! An [`Exchange`] ([`exchange`]) is what a client's connection and a server's share
//! of a call; the request body a server gets is a [`RequestBody`] ([`body`]), kept for
//! another attempt when the call may be sent again ([`replay`]). Both connection roles
//! index their streams with [`streams::StreamMap`] and run the same connection loop
//! ([`crate::http2::driver`]); each sends a body a DATA frame a turn
//! ([`exchange::Flow::send_turn`]).
//!
//! h2c servers get one multiplexed HTTP/2 connection of gantry's own ([`conn`],
//! found through [`pool`]), shared by every call whatever the client speaks: an
//! HTTP/2 client's call arrives as an [`Exchange`] through [`Upstream::open`], an
//! HTTP/1.1 client's through [`Upstream::send`], whose task drives the exchange
//! ([`task`]). HTTP/1.1 servers use hyper's pooled client, one connection per call
//! in flight, kept alive between calls ([`bridge`] for HTTP/2 clients' calls).

pub mod body;
pub mod bridge;
pub mod conn;
pub mod exchange;
pub mod pool;
pub mod replay;
pub mod streams;
pub mod task;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;

use crate::dynamic::Scheme;
use exchange::{Exchange, Side};

pub use body::RequestBody;
pub use conn::CONNECT_TIMEOUT;
pub use replay::{Kept, REPLAY_LIMIT};

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
    /// The call was sent but failed before a response arrived.
    #[error("request to {addr} failed: {source}")]
    Request {
        addr: SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("scheme {0} is not supported for servers yet")]
    Unsupported(Scheme),
    /// The TLS handshake failed (an unknown CA, a wrong name, no h2 by ALPN).
    #[error("TLS to {addr} failed: {message}")]
    Tls { addr: SocketAddr, message: String },
    /// The server's GOAWAY came before the call could be sent.
    #[error("{addr} is going away (GOAWAY) and took no more calls")]
    GoingAway { addr: SocketAddr },
    /// The connection closed before the call could be sent.
    #[error("the connection to {addr} closed before the call was sent: {why}")]
    Closed { addr: SocketAddr, why: Arc<str> },
    /// The request head is bigger than the server takes.
    #[error("the request head ({size} bytes as HTTP/2 counts them) is larger than server {addr} accepts (SETTINGS_MAX_HEADER_LIST_SIZE {limit})")]
    HeadTooLarge {
        addr: SocketAddr,
        size: usize,
        limit: u32,
    },
    /// The server accepted the connection but stopped answering on it (a paused
    /// or deadlocked task: no SETTINGS, or no PING answer, in time).
    #[error("server {addr} stopped answering: {why}")]
    Unresponsive { addr: SocketAddr, why: Arc<str> },
    /// One failure shared by every call it stopped.
    #[error("{0}")]
    Shared(Arc<UpstreamError>),
}

impl UpstreamError {
    /// True when the server never saw the call (safe to try elsewhere).
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::Tls { .. }
            | UpstreamError::Unresponsive { .. } => true,
            UpstreamError::Shared(e) => e.is_connect(),
            _ => false,
        }
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
    H2 {
        pool: pool::Pool,
    },
    Http1(Box<Client<HttpConnector, RequestBody>>),
    Unsupported(Scheme),
    /// A server that cannot be dialled as configured (why).
    Broken(Arc<str>),
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Upstream {
    /// The way to a server; `tls` is how an https one is dialled (or why it cannot be).
    pub fn new(
        addr: SocketAddr,
        scheme: Scheme,
        tls: Option<Result<crate::tls::TlsDial, String>>,
    ) -> Upstream {
        let kind = match (scheme, tls) {
            (Scheme::H2c, _) => Kind::H2 {
                pool: pool::Pool::new(addr, None),
            },
            (Scheme::Https, Some(Ok(dial))) => Kind::H2 {
                pool: pool::Pool::new(addr, Some(dial)),
            },
            (Scheme::Https, Some(Err(why))) => Kind::Broken(why.into()),
            (Scheme::Http, _) => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_timer(TokioTimer::new())
                    .build(connector);
                Kind::Http1(Box::new(client))
            }
            (other, _) => Kind::Unsupported(other),
        };
        Upstream { addr, kind }
    }

    /// Hands a call from an HTTP/2 client to this server: `make` builds its exchange
    /// given the server side it gets. A call that cannot be handed over comes back
    /// with why (it went nowhere, and may go elsewhere).
    pub fn open(
        &self,
        make: impl FnOnce(Side) -> Arc<Exchange>,
    ) -> Result<Arc<Exchange>, (Arc<Exchange>, Arc<UpstreamError>)> {
        match &self.kind {
            Kind::H2 { pool } => {
                let handle = pool.handle();
                let x = make(Side::Conn(handle.inbox.clone()));
                match handle.inbox.push(x.clone()) {
                    Ok(()) => Ok(x),
                    Err(x) => {
                        let why = Arc::new(UpstreamError::Closed {
                            addr: self.addr,
                            why: "it closed as the call was handed over".into(),
                        });
                        Err((x, why))
                    }
                }
            }
            Kind::Http1(client) => {
                let x = make(Side::task());
                bridge::spawn((**client).clone(), self.addr, x.clone());
                Ok(x)
            }
            Kind::Unsupported(s) => {
                Err((make(Side::task()), Arc::new(UpstreamError::Unsupported(*s))))
            }
            Kind::Broken(why) => Err((make(Side::task()), Arc::new(self.broken(why)))),
        }
    }

    /// Sends a call. For HTTP/1.1 the request URI must be absolute (scheme and this
    /// server's address); for h2c it carries the authority the client asked for.
    ///
    /// When the server never saw the call (no connection could be made, or the
    /// connection closed before the request was written), the error hands the request
    /// back, so it can be sent elsewhere.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let not_sent = |error, request| SendError {
            error,
            request: Some(request),
        };
        match &self.kind {
            Kind::H2 { pool } => task::send(pool.handle(), self.addr, req)
                .await
                .map(|res| res.map(UpstreamBody::H2)),
            // hyper's pooled HTTP/1.1 client consumes the request even when it cannot
            // connect, so those calls are not retried.
            Kind::Http1(client) => client
                .request(req)
                .await
                .map(|res| res.map(UpstreamBody::Http1))
                .map_err(|e| {
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
            Kind::Broken(why) => Err(not_sent(self.broken(why), req)),
        }
    }

    /// Makes sure the server can be reached: h2c opens (or keeps) the shared
    /// connection calls will use; HTTP/1.1 opens and closes a TCP connection.
    pub async fn connect(&self) -> Result<(), UpstreamError> {
        match &self.kind {
            Kind::H2 { pool } => pool.connect().await,
            Kind::Http1(_) => {
                let addr = self.addr;
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(source)) => Err(UpstreamError::Connect { addr, source }),
                    Err(_) => Err(UpstreamError::ConnectTimeout { addr }),
                }
            }
            Kind::Unsupported(s) => Err(UpstreamError::Unsupported(*s)),
            Kind::Broken(why) => Err(self.broken(why)),
        }
    }

    fn broken(&self, why: &str) -> UpstreamError {
        UpstreamError::Tls {
            addr: self.addr,
            message: why.to_string(),
        }
    }

    /// Closes the h2c connection at once, failing the streams still on it (a removed
    /// server whose drain time is over). The next call dials again. HTTP/1.1
    /// connections are left to finish: hyper's pool cannot close one in use.
    pub fn cut(&self) {
        if let Kind::H2 { pool } = &self.kind {
            pool.cut();
        }
    }

    /// Whether an HTTP/2 connection is open now (for the API and tests).
    pub fn is_connected(&self) -> bool {
        match &self.kind {
            Kind::H2 { pool } => pool.is_connected(),
            _ => false,
        }
    }
}

/// A server's response body: h2c out of an exchange, HTTP/1.1 from hyper.
#[derive(Debug)]
pub enum UpstreamBody {
    H2(task::ExchangeBody),
    Http1(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            UpstreamBody::H2(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H2(body) => body.is_end_stream(),
            UpstreamBody::Http1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H2(body) => body.size_hint(),
            UpstreamBody::Http1(body) => body.size_hint(),
        }
    }
}
