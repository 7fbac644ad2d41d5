//! Entrypoints: listening sockets that speak HTTP/1.1 and h2c (prior knowledge) on
//! one port. The first bytes of a connection tell them apart (the HTTP/2 preface).
//!
//! Shutdown stops accepting, asks every connection to finish (HTTP/2 GOAWAY, HTTP/1
//! close after the current response) and waits for calls in flight, up to a limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    listener: TcpListener,
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
        let graceful = GracefulShutdown::new();
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
                    let service = ConnService {
                        table: table.clone(),
                        entrypoint: self.index,
                        entrypoint_name: self.name.clone(),
                        stats: self.stats.clone(),
                        access_log: access_log.clone(),
                        client,
                        proto: "http",
                    };
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%client, error = %e, "client connection ended with an error");
                        }
                    });
                }
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
            }
        }
        drop(self.listener);
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(entrypoint = %self.name, "drain timeout: closing connections with calls in flight");
        }
    }
}
