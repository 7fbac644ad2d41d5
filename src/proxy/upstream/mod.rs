//! Connections to one server.
//!
//! Calls from HTTP/2 clients reach an h2c server as [`Exchange`]s over gantry's own
//! HTTP/2 client ([`conn`], one multiplexed connection per server, see [`pool`]),
//! and an HTTP/1.1 server through hyper's pooled client, a task per call
//! ([`bridge`]). [`Upstream::open`] is that path.
//!
//! Calls from HTTP/1.1 clients (served by hyper) take [`Upstream::send`]: to an h2c
//! server over a connection of the `h2` crate, shared by those calls; to an HTTP/1.1
//! server through the same pooled client. On that path the request head is handed to
//! the `h2` connection in place, and the request body is sent by the call itself
//! while it waits for the answer; only a body still streaming when the answer starts
//! gets a task to finish it (see [`Pump`]).

pub mod bridge;
pub mod conn;
pub mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{ready, Context, Poll};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::coalesce::Coalesce;
use super::exchange::{Exchange, Side};
use crate::dynamic::Scheme;

pub use conn::CONNECT_TIMEOUT;
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
    Handshake { addr: SocketAddr, source: h2::Error },
    /// The call was sent but failed before a response arrived.
    #[error("request to {addr} failed: {source}")]
    Request {
        addr: SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("scheme {0} is not supported for servers yet")]
    Unsupported(Scheme),
    /// The server's GOAWAY came before the call could be sent.
    #[error("{addr} is going away (GOAWAY) and took no more calls")]
    GoingAway { addr: SocketAddr },
    /// The connection closed before the call could be sent.
    #[error("the connection to {addr} closed before the call was sent: {why}")]
    Closed { addr: SocketAddr, why: Arc<str> },
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
            | UpstreamError::Handshake { .. } => true,
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
        /// For calls from HTTP/2 clients.
        pool: pool::Pool,
        /// For calls from HTTP/1.1 clients.
        h2: H2Pool,
    },
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
            Scheme::H2c => Kind::H2 {
                pool: pool::Pool::new(addr),
                h2: H2Pool {
                    addr,
                    current: ArcSwapOption::empty(),
                    socket: ArcSwapOption::empty(),
                    dialling: tokio::sync::Mutex::new(()),
                },
            },
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

    /// Hands a call from an HTTP/2 client to this server: `make` builds its exchange
    /// given the server side it gets. A call that cannot be handed over comes back
    /// with why (it went nowhere, and may go elsewhere).
    pub fn open(
        &self,
        make: impl FnOnce(Side) -> Arc<Exchange>,
    ) -> Result<Arc<Exchange>, (Arc<Exchange>, Arc<UpstreamError>)> {
        match &self.kind {
            Kind::H2 { pool, .. } => {
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
            Kind::H2 { h2: pool, .. } => {
                let conn = match pool.connection().await {
                    Ok(c) => c,
                    Err(error) => return Err(not_sent(error, req)),
                };
                let failed = |source: h2::Error| UpstreamError::Request {
                    addr: self.addr,
                    source: Box::new(source),
                };
                // Ready means the connection can open a stream now: nothing can fail
                // between here and the request being queued on it.
                let mut sender = match conn.sender.clone().ready().await {
                    Ok(s) => s,
                    Err(e) => {
                        conn.closed.store(true, Ordering::Release);
                        return Err(not_sent(failed(e), req));
                    }
                };
                let (parts, body) = req.into_parts();
                let end = body.is_end_stream();
                let (response, stream) =
                    match sender.send_request(Request::from_parts(parts, ()), end) {
                        Ok(sent) => sent,
                        Err(e) => {
                            return Err(SendError {
                                error: failed(e),
                                request: None,
                            })
                        }
                    };
                let mut pump = (!end).then(|| Pump {
                    body,
                    stream,
                    done: false,
                });
                let head = Answer {
                    pump: pump.as_mut(),
                    response,
                }
                .await;
                if let Some(pump) = pump.filter(|p| !p.done && head.is_ok()) {
                    // A body still streaming (a client or bidi stream): its own task.
                    tokio::spawn(pump);
                }
                match head {
                    Ok(res) => Ok(res.map(|recv| UpstreamBody::H2 {
                        recv,
                        data_done: false,
                    })),
                    Err(e) => Err(SendError {
                        error: failed(e),
                        request: None,
                    }),
                }
            }
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
        }
    }

    /// Makes sure the server can be reached: h2c opens (or keeps) the shared
    /// connection calls will use; HTTP/1.1 opens and closes a TCP connection.
    pub async fn connect(&self) -> Result<(), UpstreamError> {
        match &self.kind {
            Kind::H2 { pool, .. } => pool.connect().await,
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
        if let Kind::H2 { pool, h2 } = &self.kind {
            pool.cut();
            let pool = h2;
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
            Kind::H2 { pool, h2 } => {
                pool.is_connected() || h2.current.load().as_ref().is_some_and(|s| !s.is_closed())
            }
            _ => false,
        }
    }
}

struct H2Pool {
    addr: SocketAddr,
    current: ArcSwapOption<H2Conn>,
    /// A second handle on the current connection's socket, to shut it down.
    socket: ArcSwapOption<std::net::TcpStream>,
    dialling: tokio::sync::Mutex<()>,
}

/// One HTTP/2 connection to a server.
struct H2Conn {
    sender: h2::client::SendRequest<Bytes>,
    /// Set when the connection's task ends (or a call finds it gone).
    closed: Arc<AtomicBool>,
}

impl H2Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// PINGs on an idle connection find a server that vanished without a FIN.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl H2Pool {
    async fn connection(&self) -> Result<Arc<H2Conn>, UpstreamError> {
        if let Some(c) = self.open() {
            return Ok(c);
        }
        // One dial at a time; whoever waited behind it reuses its connection.
        let _dialling = self.dialling.lock().await;
        if let Some(c) = self.open() {
            return Ok(c);
        }
        let (conn, socket) = self.dial().await?;
        let conn = Arc::new(conn);
        self.current.store(Some(conn.clone()));
        self.socket.store(socket.map(Arc::new));
        Ok(conn)
    }

    fn open(&self) -> Option<Arc<H2Conn>> {
        let guard = self.current.load();
        match guard.as_ref() {
            Some(c) if !c.is_closed() => Some(c.clone()),
            _ => None,
        }
    }

    async fn dial(&self) -> Result<(H2Conn, Option<std::net::TcpStream>), UpstreamError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
            Err(_) => return Err(UpstreamError::ConnectTimeout { addr }),
        };
        let _ = stream.set_nodelay(true);
        let (stream, socket) =
            with_second_handle(stream).map_err(|source| UpstreamError::Connect { addr, source })?;
        let handshake = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(Coalesce::new(stream));
        let (sender, mut conn) = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(source)) => return Err(UpstreamError::Handshake { addr, source }),
            Err(_) => return Err(UpstreamError::ConnectTimeout { addr }),
        };
        let closed = Arc::new(AtomicBool::new(false));
        let ping = conn.ping_pong();
        let ended = closed.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = &mut conn => {
                    if let Err(e) = result {
                        tracing::debug!(%addr, error = %e, "upstream connection ended");
                    }
                }
                () = keepalive(ping) => {
                    tracing::debug!(%addr, "upstream connection answered no PING within {KEEPALIVE_TIMEOUT:?}: closing it");
                }
            }
            ended.store(true, Ordering::Release);
        });
        tracing::debug!(%addr, "upstream h2c connection open");
        Ok((H2Conn { sender, closed }, socket))
    }
}

/// Returns when a PING goes unanswered (never without a ping handle).
async fn keepalive(ping: Option<h2::PingPong>) {
    let Some(mut ping) = ping else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            // A connection already gone ends by itself; a silent one is ended here.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

/// A call's request body on its way to an h2c server: data and trailers as they
/// come, no faster than the server's flow-control window lets them out.
struct Pump {
    body: RequestBody,
    stream: h2::SendStream<Bytes>,
    /// The body is all sent (or the stream is gone).
    done: bool,
}

impl Pump {
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.done {
            // Wait for some window before reading more of the client's body; h2
            // holds a chunk bigger than the window and sends it as it opens.
            self.stream.reserve_capacity(1);
            if self.stream.capacity() == 0 {
                match ready!(self.stream.poll_capacity(cx)) {
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => self.done = true,
                }
                continue;
            }
            if self.stream.poll_reset(cx).is_ready() {
                // The server reset the stream: nothing more to send.
                self.done = true;
                break;
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let end = self.body.is_end_stream();
                        if self.stream.send_data(data, end).is_err() || end {
                            self.done = true;
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            let _ = self.stream.send_trailers(trailers);
                        }
                        self.done = true;
                    }
                },
                None => {
                    let _ = self.stream.send_data(Bytes::new(), true);
                    self.done = true;
                }
                Some(Err(_)) => {
                    // The client's side broke: so does the server's.
                    self.stream.send_reset(h2::Reason::CANCEL);
                    self.done = true;
                }
            }
        }
        Poll::Ready(())
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_send(cx)
    }
}

/// Waits for a server's response head while sending the request body.
struct Answer<'a> {
    pump: Option<&'a mut Pump>,
    response: h2::client::ResponseFuture,
}

impl Future for Answer<'_> {
    type Output = Result<Response<h2::RecvStream>, h2::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(pump) = this.pump.as_deref_mut() {
            let _ = pump.poll_send(cx);
        }
        Pin::new(&mut this.response).poll(cx)
    }
}

/// A server's response body: h2c straight from `h2`, HTTP/1.1 from hyper.
#[derive(Debug)]
pub enum UpstreamBody {
    H2 {
        recv: h2::RecvStream,
        /// All data frames are in: the trailers (or the end) are next.
        data_done: bool,
    },
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
            UpstreamBody::H2 { recv, data_done } => {
                if !*data_done {
                    match ready!(recv.poll_data(cx)) {
                        Some(Ok(data)) => {
                            // Passed on: the server may send as much again.
                            let _ = recv.flow_control().release_capacity(data.len());
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                        None => *data_done = true,
                    }
                }
                match ready!(recv.poll_trailers(cx)) {
                    Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    Ok(None) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e.into()))),
                }
            }
            UpstreamBody::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H2 { recv, .. } => recv.is_end_stream(),
            UpstreamBody::Http1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H2 { .. } => SizeHint::default(),
            UpstreamBody::Http1(body) => body.size_hint(),
        }
    }
}

/// The stream, and a duplicate of its socket that can shut it down from outside
/// (the h2 connection task owns the stream). Out of descriptors, the stream alone.
fn with_second_handle(
    stream: TcpStream,
) -> std::io::Result<(TcpStream, Option<std::net::TcpStream>)> {
    let std = stream.into_std()?;
    let second = std.try_clone().ok();
    Ok((TcpStream::from_std(std)?, second))
}
