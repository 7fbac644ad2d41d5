//! The backends: threads with their own runtimes, killed and restarted at will.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tonic::codegen::Service;
use tonic::service::Routes;

use crate::common::server::demo_routes;
use crate::common::stats::Stats;

/// Which backend (index + 1) each call id reached last; 0: none.
pub(crate) struct Seen(Vec<AtomicU8>);

impl Seen {
    pub(crate) fn new(calls: u64) -> Seen {
        Seen((0..calls).map(|_| AtomicU8::new(0)).collect())
    }

    fn mark(&self, id: u64, backend: usize) {
        if let Some(slot) = self.0.get(id as usize) {
            slot.store(backend as u8 + 1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<usize> {
        match self.0.get(id as usize)?.load(Ordering::Relaxed) {
            0 => None,
            b => Some(usize::from(b) - 1),
        }
    }
}

/// One kill: from the moment it was asked for to the moment every socket of
/// the backend was closed (since the driver started).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kill {
    pub(crate) backend: usize,
    pub(crate) from: Duration,
    pub(crate) to: Duration,
}

struct Running {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    stats: Arc<Stats>,
}

pub(crate) struct Backend {
    pub(crate) name: String,
    addr: SocketAddr,
    running: Option<Running>,
    /// Calls served by earlier lives.
    served_before: u64,
}

pub(crate) struct Fleet {
    pub(crate) backends: Vec<Backend>,
    pub(crate) kills: Vec<Kill>,
    seen: Arc<Seen>,
    t0: Instant,
}

impl Fleet {
    /// `n` backends named b0, b1… on free loopback ports.
    pub(crate) fn start(n: usize, seen: Arc<Seen>, t0: Instant) -> io::Result<Fleet> {
        let mut backends = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("b{i}");
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let (addr, running) = launch(&name, i, any, seen.clone())?;
            backends.push(Backend {
                name,
                addr,
                running: Some(running),
                served_before: 0,
            });
        }
        Ok(Fleet {
            backends,
            kills: Vec::new(),
            seen,
            t0,
        })
    }

    /// Kills backend `i`: returns once its listener and connections are closed.
    pub(crate) async fn kill(&mut self, i: usize) {
        let Some(running) = self.backends[i].running.take() else {
            return;
        };
        let from = self.t0.elapsed();
        let _ = running.stop.send(());
        let _ = tokio::task::spawn_blocking(move || running.thread.join()).await;
        let to = self.t0.elapsed();
        self.backends[i].served_before += running.stats.calls();
        self.kills.push(Kill {
            backend: i,
            from,
            to,
        });
    }

    /// Starts backend `i` again on its port.
    pub(crate) fn restart(&mut self, i: usize) -> io::Result<()> {
        let b = &mut self.backends[i];
        if b.running.is_none() {
            let (_, running) = launch(&b.name, i, b.addr, self.seen.clone())?;
            b.running = Some(running);
        }
        Ok(())
    }

    /// Calls each backend served, over all its lives.
    pub(crate) fn served(&self) -> Vec<u64> {
        self.backends
            .iter()
            .map(|b| b.served_before + b.running.as_ref().map_or(0, |r| r.stats.calls()))
            .collect()
    }

    pub(crate) fn port_of(&self, i: usize) -> u16 {
        self.backends[i].addr.port()
    }
}

/// Starts a backend thread serving Echo on `addr` (retrying a port still held
/// for a few seconds); returns once it listens.
fn launch(
    name: &str,
    index: usize,
    addr: SocketAddr,
    seen: Arc<Seen>,
) -> io::Result<(SocketAddr, Running)> {
    let stats = Arc::new(Stats::default());
    let routes = demo_routes(name, stats.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel::<io::Result<SocketAddr>>();
    let thread = std::thread::Builder::new()
        .name(format!("soak-{name}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match bind(addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(listener.local_addr());
                tokio::select! {
                    () = accept(listener, routes, index, seen) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: all sockets
            // close now, as when a process is killed.
            drop(runtime);
        })?;
    let local = ready
        .recv()
        .map_err(|_| io::Error::other(format!("backend {name} did not start")))??;
    Ok((
        local,
        Running {
            stop,
            thread,
            stats,
        },
    ))
}

/// SO_REUSEADDR, so the killed backend's connections in TIME_WAIT do not
/// keep its port.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let give_up = Instant::now() + Duration::from_secs(3);
    loop {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn accept(listener: TcpListener, routes: Routes, index: usize, seen: Arc<Seen>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            // Notes the call id, then serves it as `common::server` does.
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let id = req
                    .headers()
                    .get("x-soak-id")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if let Some(id) = id {
                    seen.mark(id, index);
                }
                let mut routes = routes.clone();
                async move { Service::call(&mut routes, req).await }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(None::<u32>);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
