//! JSON access logs: one line per finished call, off by default.
//!
//! The data plane formats a line only when logging is on and hands it to a bounded
//! queue with `try_send`; one writer task drains the queue into stdout or a file,
//! flushing whenever the queue runs dry. A full queue (the disk or the terminal
//! cannot keep up) drops lines and counts them, rather than slowing calls down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Lines that may wait for the writer.
const QUEUE: usize = 8192;

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// One finished call, as logged.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<'a> {
    pub time: String,
    pub entrypoint: &'a str,
    pub router: Option<&'a str>,
    pub service: Option<&'a str>,
    /// The server's `ip:port`.
    pub upstream: Option<String>,
    pub task: Option<&'a str>,
    pub client: String,
    pub method: &'a str,
    pub path: &'a str,
    /// `pkg.Service` and `Method` of a gRPC call's path.
    pub grpc_service: Option<&'a str>,
    pub grpc_method: Option<&'a str>,
    pub grpc_status: Option<u8>,
    pub status: &'static str,
    pub http_status: Option<u16>,
    pub duration_ms: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The W3C trace id from `traceparent`, to find the call in traces.
    pub trace_id: Option<&'a str>,
}

/// The access log sink.
#[derive(Debug)]
pub struct AccessLog {
    tx: mpsc::Sender<String>,
    written: Arc<AtomicU64>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Opens the target and starts the writer task (needs a Tokio runtime).
    pub async fn start(target: &Target) -> std::io::Result<Arc<AccessLog>> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = match target {
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::File(path) => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?,
            ),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let written = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_lines(rx, out, written.clone()));
        Ok(Arc::new(AccessLog {
            tx,
            written,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Queues one entry; drops it (counted) when the writer is behind.
    pub fn log(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_lines(
    mut rx: mpsc::Receiver<String>,
    out: Box<dyn AsyncWrite + Send + Unpin>,
    written: Arc<AtomicU64>,
) {
    let mut out = tokio::io::BufWriter::new(out);
    while let Some(line) = rx.recv().await {
        let mut batch = vec![line];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 256 {
                break;
            }
        }
        for line in &batch {
            if let Err(e) = out.write_all(line.as_bytes()).await {
                tracing::warn!(error = %e, "access log write failed");
            }
        }
        if rx.is_empty() {
            if let Err(e) = out.flush().await {
                tracing::warn!(error = %e, "access log flush failed");
            }
        }
        written.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
    let _ = out.flush().await;
}

/// `2026-11-23T10:00:00.123Z`.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Splits a gRPC path `/pkg.Service/Method` into its service and method.
pub fn grpc_parts(path: &str) -> (Option<&str>, Option<&str>) {
    let Some(rest) = path.strip_prefix('/') else {
        return (None, None);
    };
    match rest.split_once('/') {
        Some((svc, method)) if !svc.is_empty() && !method.is_empty() && !method.contains('/') => {
            (Some(svc), Some(method))
        }
        _ => (None, None),
    }
}

/// The trace id of a W3C `traceparent` (`version-traceid-parentid-flags`).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths() {
        assert_eq!(
            grpc_parts("/routeguide.RouteGuide/GetFeature"),
            (Some("routeguide.RouteGuide"), Some("GetFeature"))
        );
        assert_eq!(grpc_parts("/index.html"), (None, None));
        assert_eq!(grpc_parts("/a/b/c"), (None, None));
        assert_eq!(grpc_parts("//x"), (None, None));
    }

    #[test]
    fn trace_ids() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("garbage"), None);
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_435_200_123);
        assert_eq!(timestamp(t), "2026-11-23T12:00:00.123Z");
    }

    #[tokio::test]
    async fn lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(&Target::File(path.clone())).await.unwrap();
        for i in 0..3u8 {
            log.log(&Entry {
                time: "t".into(),
                entrypoint: "web",
                router: Some("rg"),
                service: Some("rg"),
                upstream: Some("127.0.0.1:1".into()),
                task: Some("a"),
                client: "127.0.0.1:2".into(),
                method: "POST",
                path: "/p.S/M",
                grpc_service: Some("p.S"),
                grpc_method: Some("M"),
                grpc_status: Some(i),
                status: "OK",
                http_status: Some(200),
                duration_ms: 1.5,
                bytes_in: 10,
                bytes_out: 20,
                trace_id: None,
            });
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while log.written() < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["grpcStatus"], 2);
        assert_eq!(lines[0]["grpcService"], "p.S");
        assert_eq!(log.dropped(), 0);
    }
}
