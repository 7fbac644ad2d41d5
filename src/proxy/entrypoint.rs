//! Entrypoints: listening sockets that speak HTTP/1.1 and h2c (prior knowledge) on
//! one port, or both over TLS (ALPN `h2` and `http/1.1`). The first bytes of a
//! connection (after the TLS handshake) tell them apart: the HTTP/2 preface goes to
//! gantry's own HTTP/2 ([`super::downstream`]), anything else to hyper's HTTP/1.1
//! server with those bytes put back in front.
//!
//! Each stage has a deadline (`header_read_timeout`): the handshake, the first
//! bytes, an HTTP/1.1 head, an HTTP/2 header block. Connections past
//! `max_connections` are closed as they are accepted.
//!
//! Shutdown stops accepting, asks every connection to finish (HTTP/2 GOAWAY, HTTP/1
//! close after the current response) and waits for calls in flight, up to a limit.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use super::downstream::Downstream;
use super::service::ConnService;
use super::ConnCtx;
use crate::http2::driver::Driver;
use crate::http2::frame::PREFACE;
use crate::http2::wire::Limits;
use crate::table::SharedTable;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::CallStats;
use crate::tls::ServerTls;

/// Client connections an entrypoint closed to protect itself, by why: for the API
/// and `/metrics`, so on-call can tell an attack from a bug.
#[derive(Debug, Default)]
pub struct Guards {
    /// Past `max_connections`, closed as accepted.
    pub max_connections: AtomicU64,
    /// TLS handshakes that failed or took too long.
    pub tls_handshake: AtomicU64,
    /// Too slow with the first bytes, a request head or a header block.
    pub header_timeout: AtomicU64,
    /// Past a flood budget (resets, control frames, CONTINUATIONs): ENHANCE_YOUR_CALM.
    pub flood: AtomicU64,
    /// Other HTTP/2 connection errors (frames that break the protocol).
    pub protocol_error: AtomicU64,
}

impl Guards {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(reason, count)` pairs, for the API and `/metrics`.
    pub fn counts(&self) -> [(&'static str, u64); 5] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("max_connections", get(&self.max_connections)),
            ("tls_handshake", get(&self.tls_handshake)),
            ("header_timeout", get(&self.header_timeout)),
            ("flood", get(&self.flood)),
            ("protocol_error", get(&self.protocol_error)),
        ]
    }
}

/// How an entrypoint treats its client connections.
#[derive(Clone)]
pub struct Settings {
    /// A client connection with no call open for this long is closed (GOAWAY).
    pub idle_timeout: Option<Duration>,
    /// For the TLS handshake, the first bytes, an HTTP/1.1 head, an HTTP/2 header
    /// block.
    pub header_timeout: Duration,
    /// Client connections open at once (0: no limit).
    pub max_connections: usize,
    /// The largest HTTP/1.1 request head.
    pub max_header_bytes: usize,
    pub http2: Limits,
    pub tls: Option<Arc<ServerTls>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            idle_timeout: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 0,
            max_header_bytes: 64 << 10,
            http2: Limits::default(),
            tls: None,
        }
    }
}

/// A bound entrypoint, not yet serving.
pub struct Entrypoint {
    pub name: Arc<str>,
    pub index: usize,
    /// Calls through this entrypoint, for the API and `/metrics`.
    pub stats: Arc<CallStats>,
    pub settings: Settings,
    /// Connections closed to protect the entrypoint.
    pub guards: Arc<Guards>,
    listener: TcpListener,
}

/// The calls on one client connection, in one word: calls open in the low 32 bits,
/// and a count of calls starting and ending in the high 32 bits. One atomic add at
/// each end of a call; the idle timer reads it once per period.
#[derive(Debug, Default)]
pub(crate) struct Activity(AtomicU64);

const ONE_CALL: u64 = 1;
const ONE_EVENT: u64 = 1 << 32;
const OPEN: u64 = ONE_EVENT - 1;

impl Activity {
    /// Resolves once the connection has spent a whole `idle` period with no call
    /// open, starting or ending (so it closes between `idle` and twice that after
    /// its last call).
    async fn idle(&self, idle: Duration) {
        loop {
            let before = self.0.load(Ordering::Acquire);
            tokio::time::sleep(idle).await;
            let after = self.0.load(Ordering::Acquire);
            if after == before && after & OPEN == 0 {
                return;
            }
        }
    }
}

/// One call open on a client connection, from its request to the end of its
/// response body.
#[derive(Debug)]
pub(crate) struct ActiveCall(Arc<Activity>);

impl ActiveCall {
    pub(crate) fn start(activity: &Arc<Activity>) -> ActiveCall {
        activity.0.fetch_add(ONE_EVENT + ONE_CALL, Ordering::AcqRel);
        ActiveCall(activity.clone())
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        // One more event, one call fewer (the count is at least 1: no borrow).
        self.0 .0.fetch_add(ONE_EVENT - ONE_CALL, Ordering::AcqRel);
    }
}

/// Binds an entrypoint's address (so port 0 can be resolved before serving).
pub async fn bind(name: &str, index: usize, addr: SocketAddr) -> std::io::Result<Entrypoint> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    Ok(Entrypoint {
        name: name.into(),
        index,
        stats: Arc::default(),
        settings: Settings::default(),
        guards: Arc::default(),
        listener,
    })
}

impl Entrypoint {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and serves connections until `shutdown` turns true, then drains for at
    /// most `drain`.
    pub async fn serve(
        self,
        table: SharedTable,
        mut shutdown: watch::Receiver<bool>,
        drain: Duration,
        access_log: Option<Arc<AccessLog>>,
    ) {
        let settings = Arc::new(self.settings.clone());
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(settings.header_timeout)
            .max_buf_size(settings.max_header_bytes.max(8192));
        let http1 = Arc::new(http1);
        // Every connection task holds a clone; when all are gone, the drain is over.
        let (live, mut all_closed) = mpsc::channel::<()>(1);
        let slots = (settings.max_connections > 0)
            .then(|| Arc::new(Semaphore::new(settings.max_connections)));
        let mut last_refusal_log: Option<std::time::Instant> = None;
        if let Some(tls) = &settings.tls {
            let store = tls.store.clone();
            let every = tls.reload_every;
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = store.watch(every) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            });
        }
        let proto = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off briefly.
                            tracing::warn!(entrypoint = %self.name, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let slot = match &slots {
                        None => None,
                        Some(slots) => match slots.clone().try_acquire_owned() {
                            Ok(permit) => Some(permit),
                            Err(_) => {
                                Guards::count(&self.guards.max_connections);
                                let now = std::time::Instant::now();
                                if last_refusal_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                                    last_refusal_log = Some(now);
                                    tracing::warn!(entrypoint = %self.name, max = settings.max_connections, "max_connections reached: closing new connections");
                                }
                                drop(stream);
                                continue;
                            }
                        },
                    };
                    let _ = stream.set_nodelay(true);
                    let client_ip = http::HeaderValue::from_str(&client.ip().to_string())
                        .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
                    let ctx = Arc::new(ConnCtx {
                        client_ip,
                        table: table.clone(),
                        entrypoint: self.index,
                        entrypoint_name: self.name.clone(),
                        stats: self.stats.clone(),
                        access_log: access_log.clone(),
                        client,
                        proto,
                        guards: self.guards.clone(),
                    });
                    let conn = Conn {
                        ctx,
                        http1: http1.clone(),
                        settings: settings.clone(),
                        stop: shutdown.clone(),
                    };
                    tokio::spawn(connection(conn, stream, live.clone(), slot));
                }
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
            }
        }
        drop(self.listener);
        drop(live);
        if tokio::time::timeout(drain, all_closed.recv())
            .await
            .is_err()
        {
            tracing::warn!(entrypoint = %self.name, "drain timeout: closing connections with calls in flight");
        }
    }
}

/// The task of one accepted connection. What it holds while the connection is
/// open is what an idle connection costs, so it runs in stages (TLS handshake,
/// telling the protocol, HTTP/1.1 or HTTP/2), each boxed on its own: a stage
/// returns the next one and is freed, and the connection carries only the stage
/// it is in, not the largest of them all.
async fn connection(
    conn: Conn,
    stream: tokio::net::TcpStream,
    live: mpsc::Sender<()>,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let mut stage = conn.start(stream);
    while let Some(next) = stage.0.await {
        stage = next;
    }
    drop(live);
    drop(slot);
}

/// One stage of a connection; it resolves to the next one, if any.
struct Stage(Pin<Box<dyn Future<Output = Option<Stage>> + Send>>);

impl Stage {
    fn new(f: impl Future<Output = Option<Stage>> + Send + 'static) -> Stage {
        Stage(Box::pin(f))
    }

    /// The last stage: `f` runs the connection to its end.
    fn last(f: impl Future<Output = ()> + Send + 'static) -> Stage {
        Stage::new(async move {
            f.await;
            None
        })
    }
}

/// One accepted connection, before it is known to be HTTP/1.1 or HTTP/2.
struct Conn {
    ctx: Arc<ConnCtx>,
    http1: Arc<hyper::server::conn::http1::Builder>,
    settings: Arc<Settings>,
    stop: watch::Receiver<bool>,
}

impl Conn {
    /// The TLS handshake, if the entrypoint terminates TLS, then the protocol.
    fn start(self, stream: tokio::net::TcpStream) -> Stage {
        match self.settings.tls.clone() {
            Some(tls) => Stage::new(self.handshake(stream, tls)),
            None => Stage::new(self.sniff(stream)),
        }
    }

    async fn handshake(self, stream: tokio::net::TcpStream, tls: Arc<ServerTls>) -> Option<Stage> {
        let client = self.ctx.client;
        let timeout = self.settings.header_timeout;
        match tokio::time::timeout(timeout, tls.acceptor.accept(stream)).await {
            // ALPN h2: HTTP/2 whatever the bytes say (a bad preface gets its GOAWAY
            // from the HTTP/2 side, RFC 9113 §3.4).
            Ok(Ok(stream)) => Some(match stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                true => Stage::last(self.serve_h2(stream, Vec::new())),
                false => Stage::new(self.sniff(stream)),
            }),
            Ok(Err(e)) => {
                Guards::count(&self.ctx.guards.tls_handshake);
                tracing::debug!(%client, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                Guards::count(&self.ctx.guards.tls_handshake);
                tracing::debug!(%client, "TLS handshake not done in time: closing");
                None
            }
        }
    }

    /// Reads the first bytes to tell HTTP/1.1 from HTTP/2.
    async fn sniff<T>(self, mut stream: T) -> Option<Stage>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let client = self.ctx.client;
        let first = match tokio::time::timeout(self.settings.header_timeout, sniff(&mut stream))
            .await
        {
            Ok(Ok(first)) => first,
            Ok(Err(e)) => {
                tracing::debug!(%client, error = %e, "client connection ended before a request");
                return None;
            }
            Err(_) => {
                Guards::count(&self.ctx.guards.header_timeout);
                tracing::debug!(%client, "client sent nothing in time: closing");
                return None;
            }
        };
        Some(match is_http1(&first) {
            true => Stage::last(self.serve_http1(stream, first)),
            // The preface, or bytes that are not HTTP/1.1 either: HTTP/2, which
            // answers a bad preface with GOAWAY PROTOCOL_ERROR.
            false => Stage::last(self.serve_h2(stream, first)),
        })
    }

    async fn serve_http1<T>(self, stream: T, first: Vec<u8>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let client = self.ctx.client;
        let mut stop = self.stop;
        let activity = Arc::new(Activity::default());
        let guards = self.ctx.guards.clone();
        let service = ConnService {
            ctx: self.ctx,
            activity: activity.clone(),
        };
        let io = TokioIo::new(Rewind::new(first, stream));
        let conn = self.http1.serve_connection(io, service);
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        if e.is_timeout() {
                            Guards::count(&guards.header_timeout);
                        }
                        tracing::debug!(%client, error = %e, "client connection ended with an error");
                    }
                    break;
                }
                _ = stop.wait_for(|s| *s), if !closing => {
                    // Close after the response in progress.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = idle(&activity, self.settings.idle_timeout), if !closing => {
                    tracing::debug!(%client, "client connection idle: closing it");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }

    /// The HTTP/2 connection; its first bytes (`first`, let go of here) were read
    /// while telling the protocol.
    fn serve_h2<T>(self, stream: T, first: Vec<u8>) -> Driver<Downstream<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut stop = self.stop;
        let shutdown = Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        Driver::new(Downstream::new(
            stream,
            &first,
            self.ctx,
            self.settings.http2,
            self.settings.idle_timeout,
            self.settings.header_timeout,
            shutdown,
        ))
    }
}

/// The longest first line read to tell HTTP/1.1 from a broken HTTP/2 preface;
/// past it, the bytes go to HTTP/1.1 (which answers a long request line itself).
const FIRST_LINE_MAX: usize = 8 << 10;

/// Reads until the bytes are the HTTP/2 preface, or hold a whole first line (or
/// [`FIRST_LINE_MAX`] bytes) that is not.
async fn sniff<T: AsyncRead + Unpin>(stream: &mut T) -> std::io::Result<Vec<u8>> {
    // Read straight into the vector: a buffer on the stack would stay in the
    // connection's state for as long as it is open.
    let mut first = Vec::with_capacity(1024);
    loop {
        if first.capacity() == first.len() {
            first.reserve(1024);
        }
        let n = stream.read_buf(&mut first).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let k = first.len().min(PREFACE.len());
        if first[..k] == PREFACE[..k] {
            if first.len() >= PREFACE.len() {
                return Ok(first);
            }
            continue;
        }
        if first.contains(&b'\n') || first.len() >= FIRST_LINE_MAX {
            return Ok(first);
        }
    }
}

/// Whether the first bytes are an HTTP/1.x request line (`… HTTP/1.1`), or too
/// long to tell: anything else that is not the preface is a broken HTTP/2 one.
fn is_http1(first: &[u8]) -> bool {
    if first.starts_with(PREFACE) {
        return false;
    }
    let Some(end) = first.iter().position(|&b| b == b'\n') else {
        return first.len() >= FIRST_LINE_MAX;
    };
    let line = first[..end].strip_suffix(b"\r").unwrap_or(&first[..end]);
    line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")
}

pin_project_lite::pin_project! {
    /// A stream with bytes already read put back in front of it.
    struct Rewind<T> {
        first: bytes::Bytes,
        #[pin]
        io: T,
    }
}

impl<T> Rewind<T> {
    fn new(first: Vec<u8>, io: T) -> Rewind<T> {
        Rewind {
            first: first.into(),
            io,
        }
    }
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for Rewind<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.project();
        if !this.first.is_empty() {
            let n = this.first.len().min(buf.remaining());
            buf.put_slice(&this.first.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        this.io.poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for Rewind<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, data)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Resolves when the connection has been idle for `timeout`; never without one.
async fn idle(activity: &Activity, timeout: Option<Duration>) {
    match timeout {
        Some(t) => activity.idle(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::RoutingTable;

    /// A connection's task stays small whatever stage it is in: an idle HTTP/2
    /// connection pays for its task, the HTTP/2 state and no more (10,000 idle
    /// connections cost 11.7 KiB each when the task held every stage's state).
    #[tokio::test]
    async fn a_connection_task_holds_no_stage_it_is_not_in() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let ctx = Arc::new(ConnCtx {
            table: Arc::new(arc_swap::ArcSwap::from_pointee(RoutingTable::empty(1))),
            entrypoint: 0,
            entrypoint_name: Arc::from("web"),
            stats: Arc::new(CallStats::default()),
            access_log: None,
            client: addr,
            proto: "http",
            client_ip: http::HeaderValue::from_static("127.0.0.1"),
            guards: Arc::new(Guards::default()),
        });
        let (stop_tx, stop) = watch::channel(false);
        let conn = Conn {
            ctx,
            http1: Arc::new(hyper::server::conn::http1::Builder::new()),
            settings: Arc::new(Settings::default()),
            stop,
        };
        let (live, _all_closed) = mpsc::channel(1);
        let task = connection(conn, stream, live, None);
        let task_bytes = std::mem::size_of_val(&task);
        let h2_bytes = std::mem::size_of::<Driver<Downstream<tokio::net::TcpStream>>>();
        assert!(
            task_bytes <= 256,
            "the connection task takes {task_bytes} bytes"
        );
        assert!(
            h2_bytes <= 1280,
            "an HTTP/2 connection's state takes {h2_bytes} bytes"
        );
        drop((task, stop_tx));
    }
}
