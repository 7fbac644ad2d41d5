//! The calls: the four gRPC kinds, their payloads and checks, and the workers that
//! make them through gantry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use crate::common;
use crate::common::echo::echo_client::EchoClient;
use crate::common::echo::{EchoRequest, StreamRequest};

/// Messages per streaming call.
pub(crate) const MESSAGES: usize = 4;
/// A call taking longer than this is failed by the driver (it hung).
const CALL_LIMIT: Duration = Duration::from_secs(15);
/// The deadline each call carries (`grpc-timeout`).
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The four gRPC call kinds, by share of the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [
        Kind::Unary,
        Kind::ServerStream,
        Kind::ClientStream,
        Kind::Bidi,
    ];

    /// 70% unary, 10% of each streaming kind.
    fn of(id: u64) -> Kind {
        match id % 10 {
            0..=6 => Kind::Unary,
            7 => Kind::ServerStream,
            8 => Kind::ClientStream,
            _ => Kind::Bidi,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStream => "server-stream",
            Kind::ClientStream => "client-stream",
            Kind::Bidi => "bidi",
        }
    }
}

/// Payload bytes of call `id`: 32, and 16 KiB for one call in 97.
fn payload_len(id: u64) -> usize {
    if id % 97 == 0 {
        16 << 10
    } else {
        32
    }
}

/// Message `k` of call `id`: bytes that differ per call and message, so an answer
/// meant for another call is noticed.
fn payload(id: u64, k: usize) -> Vec<u8> {
    let seed = id.wrapping_mul(31).wrapping_add(k as u64 * 7);
    (0..payload_len(id))
        .map(|i| (seed.wrapping_add(i as u64) % 251) as u8)
        .collect()
}

/// Why a call failed.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    /// The gRPC code (`Unavailable`), or `MISMATCH` / `HUNG` for the driver's own.
    pub(crate) code: String,
    pub(crate) message: String,
    /// The backend named by a reply received before the failure.
    pub(crate) backend: Option<String>,
}

impl CallError {
    fn status(s: tonic::Status, backend: Option<&str>) -> CallError {
        CallError {
            code: format!("{:?}", s.code()),
            message: s.message().to_string(),
            backend: backend.map(str::to_string),
        }
    }

    fn mismatch(message: String, backend: Option<&str>) -> CallError {
        CallError {
            code: "MISMATCH".to_string(),
            message,
            backend: backend.map(str::to_string),
        }
    }
}

/// Tags a request with its call id and deadline.
fn tag<T>(req: &mut Request<T>, id: u64) {
    req.metadata_mut()
        .insert("x-soak-id", tonic::metadata::MetadataValue::from(id));
    req.set_timeout(CALL_DEADLINE);
}

/// Makes call `id`; returns the backend that answered.
pub(crate) async fn call(
    kind: Kind,
    mut client: EchoClient<Channel>,
    id: u64,
) -> Result<String, CallError> {
    match kind {
        Kind::Unary => {
            let sent = payload(id, 0);
            let mut req = Request::new(EchoRequest {
                payload: sent.clone(),
                ..EchoRequest::default()
            });
            tag(&mut req, id);
            let reply = client
                .unary(req)
                .await
                .map_err(|s| CallError::status(s, None))?
                .into_inner();
            if reply.payload != sent || reply.count != 1 {
                return Err(CallError::mismatch(
                    format!("unary: a wrong echo ({} bytes)", reply.payload.len()),
                    Some(&reply.backend),
                ));
            }
            Ok(reply.backend)
        }
        Kind::ServerStream => {
            let len = payload_len(id) as u32;
            let mut req = Request::new(StreamRequest {
                count: MESSAGES as u32,
                payload_size: len,
                ..StreamRequest::default()
            });
            tag(&mut req, id);
            let mut replies = client
                .server_stream(req)
                .await
                .map_err(|s| CallError::status(s, None))?
                .into_inner();
            let want = common::echo_svc::pattern(len);
            let mut backend: Option<String> = None;
            for k in 0..=MESSAGES {
                let next = replies
                    .message()
                    .await
                    .map_err(|s| CallError::status(s, backend.as_deref()))?;
                match next {
                    Some(r) if k < MESSAGES && r.count == k as u64 && r.payload == want => {
                        backend.get_or_insert(r.backend);
                    }
                    None if k == MESSAGES => {}
                    other => {
                        return Err(CallError::mismatch(
                            format!(
                                "server-stream: reply #{k} is {:?}",
                                other.map(|r| (r.count, r.payload.len()))
                            ),
                            backend.as_deref(),
                        ))
                    }
                }
            }
            backend.ok_or_else(|| CallError::mismatch("no replies".into(), None))
        }
        Kind::ClientStream => {
            let messages: Vec<EchoRequest> = (0..MESSAGES)
                .map(|k| EchoRequest {
                    payload: payload(id, k),
                    ..EchoRequest::default()
                })
                .collect();
            let mut req = Request::new(tokio_stream::iter(messages));
            tag(&mut req, id);
            let reply = client
                .client_stream(req)
                .await
                .map_err(|s| CallError::status(s, None))?
                .into_inner();
            let bytes = (MESSAGES * payload_len(id)) as u64;
            if reply.count != MESSAGES as u64 || reply.bytes != bytes {
                return Err(CallError::mismatch(
                    format!(
                        "client-stream: {} messages and {} bytes received, not {MESSAGES} and {bytes}",
                        reply.count, reply.bytes
                    ),
                    Some(&reply.backend),
                ));
            }
            Ok(reply.backend)
        }
        Kind::Bidi => bidi(client, id).await,
    }
}

/// A bidi call, ping-pong: each message is sent once the previous one is echoed.
async fn bidi(mut client: EchoClient<Channel>, id: u64) -> Result<String, CallError> {
    let message = |k: usize| EchoRequest {
        payload: payload(id, k),
        ..EchoRequest::default()
    };
    let (tx, rx) = mpsc::channel::<EchoRequest>(MESSAGES);
    // Sent before the call: the response headers may wait for the first reply.
    let _ = tx.send(message(0)).await;
    let mut req = Request::new(ReceiverStream::new(rx));
    tag(&mut req, id);
    let mut replies = client
        .bidi(req)
        .await
        .map_err(|s| CallError::status(s, None))?
        .into_inner();
    let mut backend: Option<String> = None;
    for k in 0..MESSAGES {
        let reply = replies
            .message()
            .await
            .map_err(|s| CallError::status(s, backend.as_deref()))?;
        let Some(reply) = reply else {
            let why = format!("bidi: the stream ended after {k} replies");
            return Err(CallError::mismatch(why, backend.as_deref()));
        };
        if reply.count != k as u64 || reply.payload != payload(id, k) {
            let why = format!("bidi: reply #{k} is not the echo of message #{k}");
            return Err(CallError::mismatch(why, Some(&reply.backend)));
        }
        backend.get_or_insert(reply.backend);
        if k + 1 < MESSAGES {
            let _ = tx.send(message(k + 1)).await;
        }
    }
    drop(tx);
    match replies.message().await {
        Ok(None) => backend.ok_or_else(|| CallError::mismatch("no replies".into(), None)),
        Ok(Some(_)) => Err(CallError::mismatch(
            "bidi: a reply more than messages sent".into(),
            backend.as_deref(),
        )),
        Err(s) => Err(CallError::status(s, backend.as_deref())),
    }
}

/// A failed call, as recorded by a worker.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) error: CallError,
    /// Since the driver started.
    pub(crate) start: Duration,
    pub(crate) end: Duration,
}

/// What the workers share.
pub(crate) struct Load {
    pub(crate) t0: Instant,
    pub(crate) total: u64,
    pub(crate) stop_at: Instant,
    pub(crate) next: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) ok: [AtomicU64; 4],
    pub(crate) failed: [AtomicU64; 4],
    pub(crate) failures: Mutex<Vec<Failed>>,
    pub(crate) names: Vec<String>,
}

/// Failures kept in detail; the counters go on past this.
const KEEP_FAILURES: usize = 100_000;

pub(crate) async fn worker(load: Arc<Load>, clients: Arc<Vec<EchoClient<Channel>>>) {
    loop {
        if Instant::now() >= load.stop_at {
            return;
        }
        let id = load.next.fetch_add(1, Ordering::Relaxed);
        if id >= load.total {
            return;
        }
        let kind = Kind::of(id);
        let client = clients[(id % clients.len() as u64) as usize].clone();
        let start = load.t0.elapsed();
        let result = match tokio::time::timeout(CALL_LIMIT, call(kind, client, id)).await {
            Ok(Ok(name)) if load.names.contains(&name) => Ok(()),
            Ok(Ok(name)) => Err(CallError::mismatch(
                format!("answered by an unknown backend {name:?}"),
                None,
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError {
                code: "HUNG".into(),
                message: format!(
                    "no end after {CALL_LIMIT:?} (the deadline was {CALL_DEADLINE:?})"
                ),
                backend: None,
            }),
        };
        let k = kind as usize;
        match result {
            Ok(()) => load.ok[k].fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                let end = load.t0.elapsed();
                let mut failures = load.failures.lock();
                if failures.len() < KEEP_FAILURES {
                    failures.push(Failed {
                        id,
                        kind,
                        error,
                        start,
                        end,
                    });
                }
                load.failed[k].fetch_add(1, Ordering::Relaxed)
            }
        };
        load.done.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) async fn connect(url: &str, conns: usize) -> Result<Vec<EchoClient<Channel>>, String> {
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        // One channel per connection: tonic opens one HTTP/2 connection per `connect`.
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to gantry at {url}: {e}"))?;
        clients.push(EchoClient::new(channel));
    }
    Ok(clients)
}
