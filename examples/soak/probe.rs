//! What the driver reads of gantry: its JSON API, its memory and descriptors in
//! /proc, and the once-a-second samples of both.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::calls::Load;

/// gantry's JSON API, over HTTP/1.1 on loopback.
pub(crate) mod api {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;

    pub(crate) async fn get(api: SocketAddr, path: &str) -> Result<serde_json::Value, String> {
        let stream = TcpStream::connect(api).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, api.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))
    }

    /// Tables gantry has built since it started.
    pub(crate) async fn generation(api: SocketAddr) -> Result<u64, String> {
        let v = get(api, "/api/overview?fields=generation").await?;
        v["generation"]
            .as_u64()
            .ok_or_else(|| format!("no generation in {v}"))
    }

    /// The rewrite number gantry serves: from the rule of the `generation` router.
    pub(crate) async fn served_rewrite(api: SocketAddr) -> Result<u64, String> {
        let v = get(api, "/api/http/routers/generation@file?fields=rule").await?;
        let rule = v["rule"].as_str().unwrap_or_default();
        rule.trim_start_matches("Path(`/soak.Generation/")
            .trim_end_matches("`)")
            .parse()
            .map_err(|_| format!("unexpected rule {rule:?}"))
    }
}

/// gantry's memory and descriptors.
pub(crate) mod proc {
    pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub(crate) fn fds(pid: u32) -> Option<usize> {
        Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
    }
}

/// One second's sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) done: u64,
    pub(crate) rss_kib: u64,
    pub(crate) fds: usize,
    /// Rewrites written but not yet served by gantry.
    pub(crate) lag: Option<u64>,
}

/// Samples gantry once a second until told to stop.
pub(crate) async fn sample(
    load: Arc<Load>,
    pid: u32,
    api: SocketAddr,
    latest: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return out,
        }
        let written = latest.load(Ordering::SeqCst);
        let served = api::served_rewrite(api).await.ok();
        let Some(rss_kib) = proc::rss_kib(pid) else {
            eprintln!("soak: gantry (pid {pid}) is gone");
            return out;
        };
        out.push(Sample {
            at: load.t0.elapsed(),
            done: load.done.load(Ordering::Relaxed),
            rss_kib,
            fds: proc::fds(pid).unwrap_or(0),
            lag: served.map(|s| written.saturating_sub(s)),
        });
    }
}
