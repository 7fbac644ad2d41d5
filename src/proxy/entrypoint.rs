//! Entrypoints: listening sockets that speak HTTP/1.1 and h2c (prior knowledge) on
//! one port. The first bytes of a connection tell them apart (the HTTP/2 preface).
//!
//! Shutdown stops accepting, asks every connection to finish (HTTP/2 GOAWAY, HTTP/1
//! close after the current response) and waits for calls in flight, up to a limit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::coalesce::Coalesce;
use super::{ConnService, SharedTable};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::CallStats;

/// Flow-control windows towards clients; see `upstream` for the reasoning.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

/// A bound entrypoint, not yet serving.
pub struct Entrypoint {
    pub name: Arc<str>,
    pub index: usize,
    /// Calls through this entrypoint, for the API and `/metrics`.
    pub stats: Arc<CallStats>,
    /// A client connection with no call open for this long is closed (GOAWAY).
    pub idle_timeout: Option<Duration>,
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
        idle_timeout: None,
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(Duration::from_secs(30));
        builder
            .http2()
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20));
        let builder = Arc::new(builder);
        // Every connection task holds a clone; when all are gone, the drain is over.
        let (live, mut all_closed) = mpsc::channel::<()>(1);
        let idle_timeout = self.idle_timeout;
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
                    let _ = stream.set_nodelay(true);
                    let activity = Arc::new(Activity::default());
                    let client_ip = http::HeaderValue::from_str(&client.ip().to_string())
                        .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
                    let service = ConnService {
                        client_ip,
                        activity: activity.clone(),
                        table: table.clone(),
                        entrypoint: self.index,
                        entrypoint_name: self.name.clone(),
                        stats: self.stats.clone(),
                        access_log: access_log.clone(),
                        client,
                        proto: "http",
                    };
                    let builder = builder.clone();
                    let live = live.clone();
                    let mut stop = shutdown.clone();
                    tokio::spawn(async move {
                        let conn = builder.serve_connection(TokioIo::new(Coalesce::new(stream)), service);
                        tokio::pin!(conn);
                        let mut closing = false;
                        loop {
                            tokio::select! {
                                ended = conn.as_mut() => {
                                    if let Err(e) = ended {
                                        tracing::debug!(%client, error = %e, "client connection ended with an error");
                                    }
                                    break;
                                }
                                _ = stop.wait_for(|s| *s), if !closing => {
                                    // GOAWAY (HTTP/2) or close after the response (HTTP/1).
                                    conn.as_mut().graceful_shutdown();
                                    closing = true;
                                }
                                _ = idle(&activity, idle_timeout), if !closing => {
                                    tracing::debug!(%client, "client connection idle: closing it");
                                    conn.as_mut().graceful_shutdown();
                                    closing = true;
                                }
                            }
                        }
                        drop(live);
                    });
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

/// Resolves when the connection has been idle for `timeout`; never without one.
async fn idle(activity: &Activity, timeout: Option<Duration>) {
    match timeout {
        Some(t) => activity.idle(t).await,
        None => std::future::pending().await,
    }
}
