//! Active health checks: asking each server, on a timer, whether it is fit for calls.
//!
//! Each result goes into the server's [`HealthState`] (in `balance`, on the
//! endpoint, where the data plane and the API read the verdict without locks). This
//! module owns two things:
//!
//! - [`Probe`], one per server: a single connection to it (HTTP/2 without TLS for
//!   gRPC servers, HTTP/1.1 otherwise), dialled on first use and then reused by every
//!   probe. It is dropped and dialled afresh when the server closes it, when a
//!   request on it fails, or when a probe runs out of time, so a hung connection
//!   never makes every later probe hang too.
//! - [`run`], the loop that probes one server every interval, and [`probe_once`],
//!   one probe, with its three kinds ([`CheckKind`]): the standard gRPC health
//!   service, a plain HTTP GET, or a call to any gRPC method judged by the status it
//!   answers with.
//!
//! The gRPC messages involved are tiny and fixed, so they are encoded and decoded
//! here by hand rather than through generated code. Every failure is a sentence a
//! person can act on (what was asked, of whom, and what came back), because it is
//! what the dashboard shows next to an unhealthy server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::uri::Authority;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::balance::{HealthState, Thresholds};
use crate::telemetry::codes::{code_name, CodeSet};

/// The method of the standard gRPC health service.
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// The most of a response body a probe reads; more means the answer is not what a
/// health check expects, and the connection is dropped rather than drained.
const MAX_RESPONSE: usize = 64 * 1024;
/// Probes never run closer together than this, whatever the configuration says.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// How much of a server's grpc-message a reason quotes.
const MAX_MESSAGE: usize = 200;
const USER_AGENT: &str = "gantry-health-check";

/// What a probe asks a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// grpc.health.v1.Health/Check with this service name ("" = the whole server);
    /// healthy iff the answer is SERVING.
    Grpc { service: String },
    /// HTTP GET of this path over the server's protocol; healthy iff the status is in
    /// [200, 400).
    Http { path: String },
    /// Calls a gRPC method ("/pkg.Svc/Method") with an empty protobuf message; healthy
    /// iff the grpc-status answered (in trailers, or a trailers-only response) is in
    /// `codes`. With `codes` = 12, UNIMPLEMENTED counts as alive: the server is up and
    /// speaking gRPC even if it has no such method.
    Call { path: String, codes: CodeSet },
}

/// How one server is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    /// Time between the starts of two probes (at least 10ms).
    pub interval: Duration,
    /// The most one probe may take, dialling included.
    pub timeout: Duration,
    /// Consecutive successes that bring an unhealthy server back (0 counts as 1).
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy server out (0 counts as 1).
    pub unhealthy_threshold: u32,
    /// Extra request headers of every probe (`healthcheck.headers.*`).
    pub headers: HeaderMap,
    /// How an HTTP check asks and judges ([`CheckKind::Http`] only).
    pub http: HttpCheck,
}

impl CheckConfig {
    /// The runs of results that flip the server's verdict.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            healthy: self.healthy_threshold,
            unhealthy: self.unhealthy_threshold,
        }
    }
}

/// The options of an HTTP check (Traefik's `healthcheck.method|status|followredirects`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub method: Method,
    /// The one healthy status; `None`: any in [200, 400).
    pub status: Option<StatusCode>,
    /// Redirects to the same server are followed (up to [`MAX_REDIRECTS`]) and the
    /// last answer is judged; redirects elsewhere are judged as they are.
    pub follow_redirects: bool,
}

impl Default for HttpCheck {
    fn default() -> HttpCheck {
        HttpCheck {
            method: Method::GET,
            status: None,
            follow_redirects: true,
        }
    }
}

/// The most redirects one HTTP probe follows (as Go's HTTP client, which Traefik's
/// checks use).
pub const MAX_REDIRECTS: usize = 10;

/// The probing side of one server: where it is, how to speak to it, and the one
/// connection kept open to it between probes.
pub struct Probe {
    addr: SocketAddr,
    h2c: bool,
    authority: Authority,
    conn: Option<Conn>,
    dials: u64,
}

impl Probe {
    /// A probe for the server at `addr`, speaking HTTP/2 with prior knowledge when
    /// `h2c`, else HTTP/1.1. `authority` is sent as :authority / Host; by default the
    /// address itself. Nothing is dialled until the first probe.
    pub fn new(addr: SocketAddr, h2c: bool, authority: Option<Authority>) -> Probe {
        let authority = authority.unwrap_or_else(|| {
            // A socket address always reads as a valid authority ("1.2.3.4:80",
            // "[::1]:80"); the fallback only keeps this free of a panic path.
            Authority::try_from(addr.to_string())
                .unwrap_or_else(|_| Authority::from_static("localhost"))
        });
        Probe {
            addr,
            h2c,
            authority,
            conn: None,
            dials: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a connection is open (as far as is known without using it).
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.sender.is_closed())
    }

    /// Connections dialled successfully so far.
    pub fn dials(&self) -> u64 {
        self.dials
    }

    /// Closes the connection, if any; the next probe dials a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// A connection ready for a request: the kept one if it is still usable (`true`),
    /// else a newly dialled one (`false`).
    async fn ready(&mut self) -> Result<bool, String> {
        if let Some(conn) = self.conn.as_mut() {
            if !conn.sender.is_closed() && conn.sender.ready().await.is_ok() {
                return Ok(true);
            }
            self.conn = None;
        }
        self.dial().await?;
        Ok(false)
    }

    async fn dial(&mut self) -> Result<(), String> {
        self.conn = None;
        let addr = self.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {}", io_error_text(&e)))?;
        // Only latency suffers if this fails; the probe works either way.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(tcp);
        let mut conn = if self.h2c {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("connect {addr}: HTTP/2 handshake: {}", error_chain(&e)))?;
            Conn {
                sender: Sender::H2(sender),
                task: drive_connection(addr, connection),
            }
        } else {
            let (sender, connection) = http1::handshake(io)
                .await
                .map_err(|e| format!("connect {addr}: HTTP/1.1 handshake: {}", error_chain(&e)))?;
            Conn {
                sender: Sender::H1(sender),
                task: drive_connection(addr, connection),
            }
        };
        conn.sender
            .ready()
            .await
            .map_err(|e| format!("connect {addr}: {}", error_chain(&e)))?;
        self.dials += 1;
        self.conn = Some(conn);
        Ok(())
    }

    /// Sends the probe's request and reads the whole answer. A request that fails on
    /// a kept connection is tried once more on a new one: the server may have closed
    /// the old one between probes, which says nothing about its health.
    async fn exchange(
        &mut self,
        cfg: &CheckConfig,
        what: &str,
        path: Option<&str>,
    ) -> Result<Answer, String> {
        let reused = self.ready().await?;
        match self.send(cfg, what, path).await {
            Err(SendError::Request(_)) if reused => {
                self.dial().await?;
                self.send(cfg, what, path)
                    .await
                    .map_err(SendError::into_reason)
            }
            other => other.map_err(SendError::into_reason),
        }
    }

    /// An HTTP check's exchange, following redirects to this same server when the
    /// check says so.
    async fn exchange_following(
        &mut self,
        cfg: &CheckConfig,
        what: &str,
    ) -> Result<Answer, String> {
        let mut answer = self.exchange(cfg, what, None).await?;
        if !matches!(cfg.kind, CheckKind::Http { .. }) || !cfg.http.follow_redirects {
            return Ok(answer);
        }
        for _ in 0..MAX_REDIRECTS {
            if !answer.status.is_redirection() {
                return Ok(answer);
            }
            let Some(next) = answer
                .headers
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| self.same_server_path(l))
            else {
                // Elsewhere (or no Location): judged as it is.
                return Ok(answer);
            };
            answer = self.exchange(cfg, what, Some(&next)).await?;
        }
        if answer.status.is_redirection() {
            return Err(format!(
                "health check: {what}: more than {MAX_REDIRECTS} redirects"
            ));
        }
        Ok(answer)
    }

    /// The path a `Location` leads to when it is on this server: a relative
    /// reference, or an absolute URL naming the probe's own authority.
    fn same_server_path(&self, location: &str) -> Option<String> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Some(location.to_string());
        }
        let uri: Uri = location.parse().ok()?;
        let same = uri
            .authority()
            .is_some_and(|a| a.as_str().eq_ignore_ascii_case(self.authority.as_str()));
        same.then(|| {
            uri.path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string())
        })
    }

    async fn send(
        &mut self,
        cfg: &CheckConfig,
        what: &str,
        path: Option<&str>,
    ) -> Result<Answer, SendError> {
        let kind = &cfg.kind;
        let request = self.request(cfg, path).map_err(SendError::Other)?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::Other(format!(
                "health check: {what}: not connected"
            )));
        };
        let response = match conn.sender.send(request).await {
            Ok(response) => response,
            Err(e) => {
                self.conn = None;
                return Err(SendError::Request(format!(
                    "health check: {what}: {}",
                    error_chain(&e)
                )));
            }
        };
        let (head, body) = response.into_parts();
        match Limited::new(body, MAX_RESPONSE).collect().await {
            Ok(collected) => Ok(Answer {
                status: head.status,
                trailers: collected.trailers().cloned(),
                body: collected.to_bytes(),
                headers: head.headers,
            }),
            Err(e) => {
                // The connection is in an unknown state; start afresh next time.
                self.conn = None;
                if matches!(kind, CheckKind::Http { .. }) {
                    // The status alone decides an HTTP check.
                    return Ok(Answer {
                        status: head.status,
                        headers: head.headers,
                        trailers: None,
                        body: Bytes::new(),
                    });
                }
                Err(SendError::Other(format!(
                    "health check: {what}: reading the response: {e}"
                )))
            }
        }
    }

    fn request(
        &self,
        cfg: &CheckConfig,
        path: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let kind = &cfg.kind;
        let (method, default_path, body) = match kind {
            CheckKind::Grpc { service } => (
                Method::POST,
                HEALTH_CHECK_PATH,
                grpc_frame(&health_check_request(service)),
            ),
            CheckKind::Http { path } => (cfg.http.method.clone(), path.as_str(), Bytes::new()),
            CheckKind::Call { path, .. } => (Method::POST, path.as_str(), grpc_frame(&[])),
        };
        let path = with_leading_slash(path.unwrap_or(default_path));
        let uri = if self.h2c {
            // HTTP/2 takes :scheme and :authority from an absolute URI.
            Uri::builder()
                .scheme("http")
                .authority(self.authority.clone())
                .path_and_query(path.as_ref())
                .build()
        } else {
            Uri::builder().path_and_query(path.as_ref()).build()
        }
        .map_err(|e| format!("health check: invalid path {path:?}: {e}"))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::USER_AGENT, USER_AGENT);
        if !self.h2c {
            builder = builder.header(header::HOST, self.authority.as_str());
        }
        for (name, value) in &cfg.headers {
            builder = builder.header(name, value);
        }
        if !matches!(kind, CheckKind::Http { .. }) {
            builder = builder
                .header(header::CONTENT_TYPE, "application/grpc")
                .header(header::TE, "trailers")
                // Lets the server give up on the call when the probe does.
                .header("grpc-timeout", grpc_timeout(cfg.timeout));
        }
        builder
            .body(Full::new(body))
            .map_err(|e| format!("health check: cannot build the request: {e}"))
    }
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("addr", &self.addr)
            .field("h2c", &self.h2c)
            .field("authority", &self.authority)
            .field("connected", &self.is_connected())
            .field("dials", &self.dials)
            .finish()
    }
}

enum SendError {
    /// The request failed on the connection (closed, reset, refused stream...).
    Request(String),
    Other(String),
}

impl SendError {
    fn into_reason(self) -> String {
        match self {
            SendError::Request(reason) | SendError::Other(reason) => reason,
        }
    }
}

/// Spawns the task that carries a connection's traffic.
fn drive_connection<C>(addr: SocketAddr, connection: C) -> AbortHandle
where
    C: Future<Output = hyper::Result<()>> + Send + 'static,
{
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(server = %addr, error = %error_chain(&e), "health-check connection ended");
        }
    });
    task.abort_handle()
}

/// An open connection; its driving task ends when this is dropped.
struct Conn {
    sender: Sender,
    task: AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        }
    }
}

/// A whole response.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    trailers: Option<HeaderMap>,
    body: Bytes,
}

/// Probes the server at `addr` every `cfg.interval` until the task is aborted,
/// recording each result in `state`; each probe takes at most `cfg.timeout`.
///
/// `h2c` selects HTTP/2 with prior knowledge (gRPC servers) over HTTP/1.1; over
/// HTTP/1.1 only [`CheckKind::Http`] can work, and the other kinds fail every probe
/// with a reason that says so. One connection is kept and reused across probes, and
/// dialled again when it closes or a probe times out. The :authority / Host sent is
/// `addr` unless `authority` is given.
pub async fn run(
    addr: SocketAddr,
    h2c: bool,
    authority: Option<Authority>,
    cfg: CheckConfig,
    state: Arc<HealthState>,
) {
    let mut probe = Probe::new(addr, h2c, authority);
    drive(&mut probe, &cfg, &state).await;
}

/// Something that can be asked for one probe result; [`Probe`] in production, a
/// scripted stand-in in the tests of the timing.
trait Checker {
    fn server(&self) -> String;
    fn check<'a>(
        &'a mut self,
        cfg: &'a CheckConfig,
    ) -> impl Future<Output = Result<(), String>> + Send + 'a;
}

impl Checker for Probe {
    fn server(&self) -> String {
        self.addr.to_string()
    }

    fn check<'a>(
        &'a mut self,
        cfg: &'a CheckConfig,
    ) -> impl Future<Output = Result<(), String>> + Send + 'a {
        probe_once(self, cfg)
    }
}

/// The probing loop: one probe per interval, never two at once, and a slow probe
/// delays the next one rather than causing a burst of catch-up probes.
async fn drive<C: Checker>(checker: &mut C, cfg: &CheckConfig, state: &HealthState) {
    let mut tick = tokio::time::interval(cfg.interval.max(MIN_INTERVAL));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = checker.check(cfg).await;
        if let Err(reason) = &result {
            tracing::debug!(server = %checker.server(), %reason, "health check failed");
        }
        match state.record(result, cfg.thresholds()) {
            Some(false) => tracing::warn!(
                server = %checker.server(),
                reason = state.reason().as_deref().unwrap_or(""),
                "server is now unhealthy"
            ),
            Some(true) => tracing::info!(server = %checker.server(), "server is healthy again"),
            None => {}
        }
    }
}

/// Runs one probe of the kind `cfg.kind`, bounded by `cfg.timeout`, on `probe`'s
/// connection (dialling it if needed). `Ok(())` means the server passed.
pub async fn probe_once(probe: &mut Probe, cfg: &CheckConfig) -> Result<(), String> {
    let what = describe(cfg);
    if !probe.h2c && !matches!(cfg.kind, CheckKind::Http { .. }) {
        return Err(format!(
            "health check: {what} needs HTTP/2 (h2c), but the server is reached over HTTP/1.1"
        ));
    }
    let deadline = Instant::now() + cfg.timeout;
    match tokio::time::timeout_at(deadline, probe.exchange_following(cfg, &what)).await {
        Ok(Ok(answer)) => judge(cfg, &what, &answer),
        Ok(Err(reason)) => Err(reason),
        Err(_) => {
            // No connection yet means the time ran out while dialling.
            let during = if probe.conn.is_some() {
                format!("health check: {what}")
            } else {
                format!("connect {}", probe.addr)
            };
            // Whatever was in flight is abandoned with the connection.
            probe.conn = None;
            Err(format!("{during}: timed out after {:?}", cfg.timeout))
        }
    }
}

/// What a probe asks, as reasons name it.
fn describe(cfg: &CheckConfig) -> String {
    match &cfg.kind {
        CheckKind::Grpc { service } if service.is_empty() => HEALTH_CHECK_PATH[1..].to_string(),
        CheckKind::Grpc { service } => format!("{} for {service:?}", &HEALTH_CHECK_PATH[1..]),
        CheckKind::Http { path } => format!("{} {}", cfg.http.method, with_leading_slash(path)),
        CheckKind::Call { path, .. } => format!("call {}", with_leading_slash(path)),
    }
}

fn with_leading_slash(path: &str) -> std::borrow::Cow<'_, str> {
    if path.starts_with('/') {
        path.into()
    } else {
        format!("/{path}").into()
    }
}

/// Whether an answer passes the check.
fn judge(cfg: &CheckConfig, what: &str, answer: &Answer) -> Result<(), String> {
    match &cfg.kind {
        CheckKind::Http { .. } => match cfg.http.status {
            Some(want) if answer.status == want => Ok(()),
            Some(want) => Err(format!(
                "health check: {what}: HTTP {}, expected {}",
                answer.status,
                want.as_u16()
            )),
            None if (200..400).contains(&answer.status.as_u16()) => Ok(()),
            None => Err(format!("health check: {what}: HTTP {}", answer.status)),
        },
        CheckKind::Call { codes, .. } => {
            let status = grpc_status(answer).map_err(|e| format!("health check: {what}: {e}"))?;
            let healthy = u8::try_from(status.code).is_ok_and(|code| codes.contains(code));
            if healthy {
                Ok(())
            } else {
                Err(format!("health check: {what}: {status}, expected {codes}"))
            }
        }
        CheckKind::Grpc { .. } => {
            let status = grpc_status(answer).map_err(|e| format!("health check: {what}: {e}"))?;
            if status.code != 0 {
                return Err(format!("health check: {what}: {status}"));
            }
            match parse_health_check_response(&answer.body) {
                Ok(SERVING) => Ok(()),
                Ok(other) => Err(format!(
                    "health check: {what}: {}",
                    serving_status_name(other)
                )),
                Err(e) => Err(format!("health check: {what}: {e}")),
            }
        }
    }
}

/// A grpc-timeout value: whole milliseconds, at most the 8 digits gRPC allows.
fn grpc_timeout(timeout: Duration) -> String {
    format!("{}m", timeout.as_millis().min(99_999_999))
}

/// A gRPC status as a server sent it.
struct GrpcStatus {
    code: u32,
    message: Option<String>,
}

impl std::fmt::Display for GrpcStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "grpc-status {}", self.code)?;
        if let Some(name) = code_name(self.code) {
            write!(f, " ({name})")?;
        }
        match &self.message {
            Some(message) if !message.is_empty() => write!(f, ": {message}"),
            _ => Ok(()),
        }
    }
}

/// The grpc-status of a response: from its headers when it is trailers-only, else
/// from its trailers.
fn grpc_status(answer: &Answer) -> Result<GrpcStatus, String> {
    if answer.status != StatusCode::OK {
        return Err(format!("HTTP {} (not a gRPC response)", answer.status));
    }
    let fields = if answer.headers.contains_key("grpc-status") {
        &answer.headers
    } else {
        match &answer.trailers {
            Some(trailers) if trailers.contains_key("grpc-status") => trailers,
            _ => return Err("the response ended without a grpc-status".to_string()),
        }
    };
    let value = fields
        .get("grpc-status")
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let code = std::str::from_utf8(value)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| {
            format!(
                "invalid grpc-status {:?}",
                String::from_utf8_lossy(value).as_ref()
            )
        })?;
    let message = fields
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()));
    Ok(GrpcStatus { code, message })
}

/// Decodes a grpc-message (percent-encoded UTF-8), shortened for a reason.
fn percent_decode(raw: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (raw[i], hex) {
            (b'%', Some(byte)) => {
                bytes.push(byte);
                i += 3;
            }
            (byte, _) => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING.
const SERVING: u64 = 1;

fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => format!("serving status {other}"),
    }
}

/// A HealthCheckRequest: `string service = 1`, left out when empty.
fn health_check_request(service: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        message.push(0x0A); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    message
}

/// One uncompressed gRPC message: flag byte, 4-byte big-endian length, message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    // Health-check messages are far below 4 GiB; saturate rather than wrap.
    frame.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    frame.put_slice(message);
    frame.freeze()
}

/// The serving status in the first message of a HealthCheckResponse body. Unknown
/// fields are skipped; a missing status field is UNKNOWN (0), as in proto3.
fn parse_health_check_response(body: &[u8]) -> Result<u64, String> {
    let Some(header) = body.get(..5) else {
        return Err(if body.is_empty() {
            "the response carried no message".to_string()
        } else {
            "truncated gRPC message header".to_string()
        });
    };
    if header[0] & 1 != 0 {
        return Err(
            "the response message is compressed, which health checks do not support".into(),
        );
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = body
        .get(5..5usize.saturating_add(len))
        .ok_or_else(|| "truncated gRPC message".to_string())?;
    let malformed = || "malformed HealthCheckResponse".to_string();
    let mut rest = message;
    let mut status = 0;
    while !rest.is_empty() {
        let key = take_varint(&mut rest).ok_or_else(malformed)?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                let value = take_varint(&mut rest).ok_or_else(malformed)?;
                if field == 1 {
                    status = value;
                }
            }
            1 => rest = rest.get(8..).ok_or_else(malformed)?,
            2 => {
                let len = take_varint(&mut rest).ok_or_else(malformed)?;
                let len = usize::try_from(len).map_err(|_| malformed())?;
                rest = rest.get(len..).ok_or_else(malformed)?;
            }
            5 => rest = rest.get(4..).ok_or_else(malformed)?,
            _ => return Err(malformed()),
        }
    }
    Ok(status)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint off the front of `input`; `None` if it is cut short or too long.
fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

/// An I/O error without the "(os error N)" suffix: "Connection refused".
fn io_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// An error and its causes, "outer: inner: innermost".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

    use arc_swap::ArcSwapOption;

    use hyper::service::service_fn;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use tokio_stream::wrappers::TcpListenerStream;
    use tokio_stream::StreamExt;
    use tonic_health::server::HealthReporter;
    use tonic_health::ServingStatus;

    use super::*;

    fn config(kind: CheckKind) -> CheckConfig {
        CheckConfig {
            kind,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            headers: HeaderMap::new(),
            http: HttpCheck::default(),
        }
    }

    fn grpc(service: &str) -> CheckKind {
        CheckKind::Grpc {
            service: service.to_string(),
        }
    }

    fn call(path: &str, codes: &str) -> CheckKind {
        CheckKind::Call {
            path: path.to_string(),
            codes: CodeSet::parse(codes).unwrap(),
        }
    }

    fn http(path: &str) -> CheckKind {
        CheckKind::Http {
            path: path.to_string(),
        }
    }

    /// Waits for `done` to hold, failing the test after 10 seconds.
    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A listener on 127.0.0.1 whose accepted connections are counted.
    async fn counted_listener() -> (
        SocketAddr,
        impl tokio_stream::Stream<Item = std::io::Result<TcpStream>>,
        Arc<AtomicUsize>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let incoming = TcpListenerStream::new(listener).map(move |stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            stream
        });
        (addr, incoming, accepted)
    }

    struct GrpcServer {
        addr: SocketAddr,
        reporter: HealthReporter,
        accepted: Arc<AtomicUsize>,
        task: JoinHandle<()>,
    }

    impl Drop for GrpcServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// tonic's gRPC health service, the only service on the server.
    async fn grpc_server() -> GrpcServer {
        let (addr, incoming, accepted) = counted_listener().await;
        let (reporter, service) = tonic_health::server::health_reporter();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        GrpcServer {
            addr,
            reporter,
            accepted,
            task,
        }
    }

    struct HttpServer {
        addr: SocketAddr,
        /// The status every request is answered with.
        status: Arc<AtomicU16>,
        accepted: Arc<AtomicUsize>,
        /// "Host path" of the last request.
        last_request: Arc<ArcSwapOption<String>>,
        task: JoinHandle<()>,
    }

    impl Drop for HttpServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// A tiny HTTP/1.1 server; `keep_alive` false closes every connection after one
    /// response.
    async fn http_server(keep_alive: bool) -> HttpServer {
        let (addr, mut incoming, accepted) = counted_listener().await;
        let status = Arc::new(AtomicU16::new(200));
        let last_request = Arc::new(ArcSwapOption::<String>::empty());
        let (status2, last2) = (status.clone(), last_request.clone());
        let task = tokio::spawn(async move {
            while let Some(Ok(stream)) = incoming.next().await {
                let (status, last) = (status2.clone(), last2.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let host = req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("-");
                    last.store(Some(Arc::new(format!("{host} {}", req.uri()))));
                    let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    async move {
                        Response::builder()
                            .status(code)
                            .body(Full::new(Bytes::from_static(b"state\n")))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpServer {
            addr,
            status,
            accepted,
            last_request,
            task,
        }
    }

    /// A server that accepts connections and never says a word.
    async fn silent_server() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
        let (addr, mut incoming, accepted) = counted_listener().await;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(Ok(stream)) = incoming.next().await {
                held.push(stream);
            }
        });
        (addr, accepted, task)
    }

    /// An address on which nothing listens.
    async fn refusing_addr() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    fn fail(reason: &str) -> Result<(), String> {
        Err(reason.to_string())
    }

    /// Stands in for a server: answers probes from a script and reports, for each
    /// probe, when it ran and what the verdict was at that moment.
    struct Scripted {
        results: std::vec::IntoIter<Result<(), String>>,
        /// How long each probe takes.
        takes: Duration,
        state: Arc<HealthState>,
        seen: mpsc::UnboundedSender<(Instant, bool)>,
    }

    impl Checker for Scripted {
        fn server(&self) -> String {
            "scripted".to_string()
        }

        async fn check(&mut self, _cfg: &CheckConfig) -> Result<(), String> {
            let _ = self.seen.send((Instant::now(), self.state.is_healthy()));
            tokio::time::sleep(self.takes).await;
            match self.results.next() {
                Some(result) => result,
                // Script over: hang, the test has what it needs.
                None => std::future::pending().await,
            }
        }
    }

    /// Runs `drive` over a script in paused time; returns, for each probe, its start
    /// (from the loop's start) and the verdict just before it.
    async fn drive_script(
        cfg: CheckConfig,
        results: Vec<Result<(), String>>,
        takes: Duration,
    ) -> (Vec<(Duration, bool)>, Arc<HealthState>) {
        let state = Arc::new(HealthState::new());
        let (seen, mut probes) = mpsc::unbounded_channel();
        let n = results.len() + 1;
        let mut checker = Scripted {
            results: results.into_iter(),
            takes,
            state: state.clone(),
            seen,
        };
        let start = Instant::now();
        let loop_state = state.clone();
        let task = tokio::spawn(async move { drive(&mut checker, &cfg, &loop_state).await });
        let mut out = Vec::new();
        while out.len() < n {
            let (at, healthy) = probes.recv().await.unwrap();
            out.push((at - start, healthy));
        }
        task.abort();
        (out, state)
    }

    #[tokio::test(start_paused = true)]
    async fn loop_probes_each_interval_and_flips_on_the_thresholds() {
        let cfg = config(grpc("")); // every 10s; healthy 2, unhealthy 3
        let script = vec![Ok(()), fail("1"), fail("2"), fail("3"), Ok(()), Ok(())];
        let (probes, state) = drive_script(cfg, script, Duration::ZERO).await;
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            probes,
            [
                (secs(0), true),
                (secs(10), true),
                (secs(20), true),
                (secs(30), true),
                (secs(40), false), // three failures: out at 30s
                (secs(50), false),
                (secs(60), true), // two successes: back at 50s
            ]
        );
        assert_eq!((state.checks(), state.failures()), (6, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn loop_never_overlaps_or_bursts_after_a_slow_probe() {
        let mut cfg = config(grpc(""));
        cfg.interval = Duration::from_secs(1);
        // Each probe takes 2.5 intervals.
        let script = vec![Ok(()), Ok(()), Ok(())];
        let (probes, _) = drive_script(cfg, script, Duration::from_millis(2500)).await;
        let starts: Vec<u128> = probes.iter().map(|(at, _)| at.as_millis()).collect();
        assert_eq!(starts, [0, 2500, 5000, 7500]);
    }

    #[tokio::test(start_paused = true)]
    async fn loop_interval_has_a_floor() {
        let mut cfg = config(grpc(""));
        cfg.interval = Duration::ZERO;
        let (probes, _) = drive_script(cfg, vec![Ok(()), Ok(())], Duration::ZERO).await;
        let starts: Vec<u128> = probes.iter().map(|(at, _)| at.as_millis()).collect();
        assert_eq!(starts, [0, 10, 20]);
    }

    // ----- message encoding -----

    #[test]
    fn encodes_health_check_requests() {
        assert_eq!(health_check_request(""), b"");
        assert_eq!(health_check_request("rg"), b"\x0a\x02rg");
        let long = "s".repeat(200);
        let encoded = health_check_request(&long);
        assert_eq!(&encoded[..3], b"\x0a\xc8\x01");
        assert_eq!(&encoded[3..], long.as_bytes());
        assert_eq!(
            &grpc_frame(b"\x0a\x02rg")[..],
            b"\x00\x00\x00\x00\x04\x0a\x02rg"
        );
        assert_eq!(&grpc_frame(b"")[..], b"\x00\x00\x00\x00\x00");
    }

    #[test]
    fn parses_health_check_responses() {
        let table: &[(&[u8], Result<u64, &str>)] = &[
            (b"\x00\x00\x00\x00\x02\x08\x01", Ok(1)),
            (b"\x00\x00\x00\x00\x02\x08\x02", Ok(2)),
            (b"\x00\x00\x00\x00\x00", Ok(0)),
            // Unknown fields of every wire type around the status.
            (
                b"\x00\x00\x00\x00\x15\x12\x03abc\x08\x01\x19\x01\x02\x03\x04\x05\x06\x07\x08\x25\x01\x02\x03\x04",
                Ok(1),
            ),
            // Trailing bytes after the message (a second message) are ignored.
            (b"\x00\x00\x00\x00\x02\x08\x03\x00\x00", Ok(3)),
            (b"", Err("the response carried no message")),
            (b"\x00\x00\x00", Err("truncated gRPC message header")),
            (b"\x00\x00\x00\x00\x05\x08\x01", Err("truncated gRPC message")),
            (
                b"\x01\x00\x00\x00\x02\x08\x01",
                Err("the response message is compressed, which health checks do not support"),
            ),
            (b"\x00\x00\x00\x00\x01\x08", Err("malformed HealthCheckResponse")),
            (b"\x00\x00\x00\x00\x02\x0b\x01", Err("malformed HealthCheckResponse")),
            (b"\x00\x00\x00\x00\x02\x12\x05", Err("malformed HealthCheckResponse")),
        ];
        for (body, want) in table {
            let got = parse_health_check_response(body);
            assert_eq!(got, want.map_err(str::to_string), "{body:?}");
        }
        // A varint-valued unknown field (3 = 150) before the status.
        assert_eq!(
            parse_health_check_response(b"\x00\x00\x00\x00\x05\x18\x96\x01\x08\x01"),
            Ok(1)
        );
    }

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut input = out.as_slice();
            assert_eq!(take_varint(&mut input), Some(value));
            assert!(input.is_empty());
        }
        assert_eq!(take_varint(&mut &b"\x80\x80"[..]), None);
        assert_eq!(take_varint(&mut &[0xFF; 11][..]), None);
    }

    #[test]
    fn decodes_grpc_messages() {
        assert_eq!(
            percent_decode(b"service not registered"),
            "service not registered"
        );
        assert_eq!(percent_decode(b"caf%C3%A9 100%25"), "café 100%");
        assert_eq!(percent_decode(b"bad %zz %4"), "bad %zz %4");
        let long = "x".repeat(300);
        assert_eq!(
            percent_decode(long.as_bytes()),
            format!("{}...", &long[..200])
        );
    }

    #[test]
    fn formats_grpc_timeouts() {
        assert_eq!(grpc_timeout(Duration::from_secs(1)), "1000m");
        assert_eq!(grpc_timeout(Duration::from_micros(1500)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(1 << 40)), "99999999m");
    }

    #[test]
    fn describes_checks() {
        assert_eq!(describe(&config(grpc(""))), "grpc.health.v1.Health/Check");
        assert_eq!(
            describe(&config(grpc("rg"))),
            r#"grpc.health.v1.Health/Check for "rg""#
        );
        assert_eq!(describe(&config(http("healthz"))), "GET /healthz");
        assert_eq!(describe(&config(call("/p.S/M", "12"))), "call /p.S/M");
    }

    // ----- probes over real sockets -----

    #[tokio::test]
    async fn grpc_check_passes_when_serving() {
        let server = grpc_server().await;
        let mut probe = Probe::new(server.addr, true, None);
        assert_eq!(probe_once(&mut probe, &config(grpc(""))).await, Ok(()));
        server
            .reporter
            .set_service_status("rg", ServingStatus::Serving)
            .await;
        assert_eq!(probe_once(&mut probe, &config(grpc("rg"))).await, Ok(()));
    }

    #[tokio::test]
    async fn grpc_check_follows_serving_status_with_thresholds() {
        let server = grpc_server().await;
        let cfg = config(grpc("rg")); // healthy 2, unhealthy 3
        let state = HealthState::new();
        let mut probe = Probe::new(server.addr, true, None);
        server
            .reporter
            .set_service_status("rg", ServingStatus::Serving)
            .await;
        assert_eq!(
            state.record(probe_once(&mut probe, &cfg).await, cfg.thresholds()),
            None
        );
        assert!(state.is_healthy());

        server
            .reporter
            .set_service_status("rg", ServingStatus::NotServing)
            .await;
        let mut probes = 0;
        loop {
            let result = probe_once(&mut probe, &cfg).await;
            assert_eq!(
                result,
                Err(
                    r#"health check: grpc.health.v1.Health/Check for "rg": NOT_SERVING"#
                        .to_string()
                )
            );
            probes += 1;
            if state.record(result, cfg.thresholds()) == Some(false) {
                break;
            }
            assert!(state.is_healthy(), "unhealthy without flipping");
            assert!(probes < 10, "never turned unhealthy");
        }
        assert_eq!(probes, cfg.unhealthy_threshold);
        assert!(!state.is_healthy());
        assert_eq!(
            state.reason().as_deref(),
            Some(r#"health check: grpc.health.v1.Health/Check for "rg": NOT_SERVING"#)
        );

        server
            .reporter
            .set_service_status("rg", ServingStatus::Serving)
            .await;
        let mut probes = 0;
        loop {
            let result = probe_once(&mut probe, &cfg).await;
            assert_eq!(result, Ok(()));
            probes += 1;
            if state.record(result, cfg.thresholds()) == Some(true) {
                break;
            }
            assert!(!state.is_healthy(), "healthy without flipping");
            assert!(probes < 10, "never turned healthy");
        }
        assert_eq!(probes, cfg.healthy_threshold);
        assert_eq!(state.reason(), None);
        assert_eq!(state.checks(), 1 + 3 + 2);
        assert_eq!(state.failures(), 3);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn grpc_check_of_an_unknown_service_fails_naming_the_status() {
        let server = grpc_server().await;
        let mut probe = Probe::new(server.addr, true, None);
        let reason = probe_once(&mut probe, &config(grpc("nope")))
            .await
            .unwrap_err();
        assert_eq!(
            reason,
            r#"health check: grpc.health.v1.Health/Check for "nope": grpc-status 5 (NOT_FOUND): service not registered"#
        );
    }

    #[tokio::test]
    async fn call_check_judges_by_the_grpc_status() {
        let server = grpc_server().await;
        let mut probe = Probe::new(server.addr, true, None);
        // tonic answers a method it does not have with UNIMPLEMENTED.
        let alive = config(call("/pkg.Svc/Method", "12"));
        assert_eq!(probe_once(&mut probe, &alive).await, Ok(()));
        let strict = config(call("/pkg.Svc/Method", "0"));
        let reason = probe_once(&mut probe, &strict).await.unwrap_err();
        assert!(
            reason
                .starts_with("health check: call /pkg.Svc/Method: grpc-status 12 (UNIMPLEMENTED)"),
            "{reason}"
        );
        assert!(reason.ends_with(", expected 0"), "{reason}");
        // An empty message is a valid HealthCheckRequest, so the real method answers OK.
        let real = config(call("/grpc.health.v1.Health/Check", "0"));
        assert_eq!(probe_once(&mut probe, &real).await, Ok(()));
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn http_check_over_http1_follows_the_status() {
        let server = http_server(true).await;
        let cfg = config(http("/healthz"));
        let mut probe = Probe::new(server.addr, false, None);
        assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        let seen = server.last_request.load_full().unwrap();
        assert_eq!(*seen, format!("{} /healthz", server.addr));

        server.status.store(503, Ordering::SeqCst);
        assert_eq!(
            probe_once(&mut probe, &cfg).await,
            Err("health check: GET /healthz: HTTP 503 Service Unavailable".to_string())
        );
        server.status.store(302, Ordering::SeqCst);
        assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        server.status.store(404, Ordering::SeqCst);
        assert!(probe_once(&mut probe, &cfg).await.is_err());
        server.status.store(200, Ordering::SeqCst);
        assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(probe.dials(), 1);
    }

    #[tokio::test]
    async fn http_check_over_h2c() {
        // tonic answers any path over HTTP/2 with 200 (and a gRPC status).
        let server = grpc_server().await;
        let mut probe = Probe::new(server.addr, true, None);
        for _ in 0..3 {
            assert_eq!(
                probe_once(&mut probe, &config(http("/healthz"))).await,
                Ok(())
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn http_check_sends_the_given_authority() {
        let server = http_server(true).await;
        let authority = Authority::from_static("svc.internal:8080");
        let mut probe = Probe::new(server.addr, false, Some(authority));
        assert_eq!(probe_once(&mut probe, &config(http("ready"))).await, Ok(()));
        let seen = server.last_request.load_full().unwrap();
        assert_eq!(*seen, "svc.internal:8080 /ready");
    }

    /// A server with fixed routes for the HTTP check's options: `/to-ok` redirects to
    /// `/ok`, `/away` redirects to another host, `/loop` to itself; `/ok` answers
    /// 204 to a HEAD carrying `x-probe: yes` and 400 to anything else.
    async fn routed_server() -> (SocketAddr, Arc<ArcSwapOption<String>>, JoinHandle<()>) {
        let (addr, mut incoming, _) = counted_listener().await;
        let seen = Arc::new(ArcSwapOption::<String>::empty());
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(stream)) = incoming.next().await {
                let seen = seen2.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let probe = req.headers().get("x-probe").and_then(|v| v.to_str().ok());
                    seen.store(Some(Arc::new(format!("{} {}", req.method(), req.uri()))));
                    let (status, location) = match req.uri().path() {
                        "/to-ok" => (302, Some(format!("http://{addr}/ok"))),
                        "/away" => (302, Some("http://elsewhere.example/ok".to_string())),
                        "/loop" => (307, Some("/loop".to_string())),
                        "/ok" if req.method() == Method::HEAD && probe == Some("yes") => {
                            (204, None)
                        }
                        _ => (400, None),
                    };
                    let mut res = Response::builder().status(status);
                    if let Some(l) = location {
                        res = res.header(header::LOCATION, l);
                    }
                    async move { res.body(Full::new(Bytes::new())) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, seen, task)
    }

    #[tokio::test]
    async fn http_check_method_headers_status_and_redirects() {
        let (addr, seen, _task) = routed_server().await;
        let mut probe = Probe::new(addr, false, None);
        let mut cfg = config(http("/to-ok"));
        cfg.http.method = Method::HEAD;
        cfg.headers
            .insert("x-probe", HeaderValue::from_static("yes"));
        // Followed to /ok on the same server, which answers the HEAD with 204.
        assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        assert_eq!(seen.load_full().unwrap().as_str(), "HEAD /ok");
        // An expected status judges exactly.
        cfg.http.status = Some(StatusCode::OK);
        assert_eq!(
            probe_once(&mut probe, &cfg).await,
            Err("health check: HEAD /to-ok: HTTP 204 No Content, expected 200".to_string())
        );
        cfg.http.status = Some(StatusCode::NO_CONTENT);
        assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        // Not followed: the redirect itself is judged.
        cfg.http.follow_redirects = false;
        assert!(probe_once(&mut probe, &cfg).await.is_err());
        cfg.http.status = None;
        assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        assert_eq!(seen.load_full().unwrap().as_str(), "HEAD /to-ok");
        // Without the header, /ok says 400.
        cfg.http.follow_redirects = true;
        cfg.headers.clear();
        assert!(probe_once(&mut probe, &cfg).await.is_err());
        // A redirect to another host is judged as it is; an endless one fails.
        assert_eq!(probe_once(&mut probe, &config(http("/away"))).await, Ok(()));
        assert_eq!(
            probe_once(&mut probe, &config(http("/loop"))).await,
            Err("health check: GET /loop: more than 10 redirects".to_string())
        );
    }

    #[tokio::test]
    async fn http1_connection_closed_by_the_server_is_dialled_again() {
        let server = http_server(false).await;
        let cfg = config(http("/healthz"));
        let mut probe = Probe::new(server.addr, false, None);
        for _ in 0..3 {
            assert_eq!(probe_once(&mut probe, &cfg).await, Ok(()));
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn grpc_kinds_over_http1_fail_with_a_clear_reason() {
        // No server: the probe must not even dial.
        let addr = refusing_addr().await;
        let mut probe = Probe::new(addr, false, None);
        assert_eq!(
            probe_once(&mut probe, &config(grpc("rg"))).await,
            Err(r#"health check: grpc.health.v1.Health/Check for "rg" needs HTTP/2 (h2c), but the server is reached over HTTP/1.1"#.to_string())
        );
        assert_eq!(
            probe_once(&mut probe, &config(call("/p.S/M", "12"))).await,
            Err("health check: call /p.S/M needs HTTP/2 (h2c), but the server is reached over HTTP/1.1".to_string())
        );
        assert_eq!(probe.dials(), 0);
    }

    #[tokio::test]
    async fn refused_connection_is_a_failure_with_the_reason() {
        let addr = refusing_addr().await;
        let cfg = config(grpc(""));
        let mut probe = Probe::new(addr, true, None);
        let state = HealthState::new();
        for _ in 0..cfg.unhealthy_threshold {
            let result = probe_once(&mut probe, &cfg).await;
            assert_eq!(result, Err(format!("connect {addr}: Connection refused")));
            state.record(result, cfg.thresholds());
        }
        assert!(!state.is_healthy());
        assert_eq!(
            state.reason(),
            Some(format!("connect {addr}: Connection refused"))
        );
    }

    #[tokio::test]
    async fn silent_server_times_out_and_the_connection_is_replaced() {
        let (addr, accepted, task) = silent_server().await;
        let mut cfg = config(grpc(""));
        cfg.timeout = Duration::from_millis(200);
        let mut probe = Probe::new(addr, true, None);
        let reason = probe_once(&mut probe, &cfg).await.unwrap_err();
        assert!(reason.ends_with(": timed out after 200ms"), "{reason}");
        assert!(!probe.is_connected());
        let reason = probe_once(&mut probe, &cfg).await.unwrap_err();
        assert!(reason.ends_with(": timed out after 200ms"), "{reason}");
        // Each timed-out probe abandoned its connection.
        wait_until("the second connection", || {
            accepted.load(Ordering::SeqCst) == 2
        })
        .await;
        task.abort();
    }

    #[tokio::test]
    async fn silent_http1_server_times_out_naming_the_request() {
        let (addr, _accepted, task) = silent_server().await;
        let mut cfg = config(http("/healthz"));
        cfg.timeout = Duration::from_millis(200);
        let mut probe = Probe::new(addr, false, None);
        assert_eq!(
            probe_once(&mut probe, &cfg).await,
            Err("health check: GET /healthz: timed out after 200ms".to_string())
        );
        task.abort();
    }

    #[tokio::test]
    async fn run_reuses_one_connection_across_probes() {
        let server = grpc_server().await;
        let mut cfg = config(grpc(""));
        cfg.interval = Duration::from_millis(20);
        let state = Arc::new(HealthState::new());
        let task = tokio::spawn(run(server.addr, true, None, cfg, state.clone()));
        wait_until("6 probes", || state.checks() >= 6).await;
        task.abort();
        assert_eq!(state.failures(), 0);
        assert!(state.is_healthy());
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn run_marks_a_not_serving_server_unhealthy_and_back() {
        let server = grpc_server().await;
        let mut cfg = config(grpc(""));
        cfg.interval = Duration::from_millis(20);
        let state = Arc::new(HealthState::new());
        server
            .reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let task = tokio::spawn(run(server.addr, true, None, cfg, state.clone()));
        wait_until("unhealthy", || !state.is_healthy()).await;
        assert_eq!(
            state.reason().as_deref(),
            Some("health check: grpc.health.v1.Health/Check: NOT_SERVING")
        );
        assert!(state.failures() >= 3);
        server
            .reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        wait_until("healthy again", || state.is_healthy()).await;
        task.abort();
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn run_recovers_when_a_refusing_server_starts() {
        // Take a port, free it, and start a server on it once the check has failed.
        let addr = refusing_addr().await;
        let mut cfg = config(http("/healthz"));
        cfg.interval = Duration::from_millis(20);
        cfg.unhealthy_threshold = 1;
        cfg.healthy_threshold = 1;
        let state = Arc::new(HealthState::new());
        let task = tokio::spawn(run(addr, false, None, cfg, state.clone()));
        wait_until("unhealthy", || !state.is_healthy()).await;
        assert_eq!(
            state.reason(),
            Some(format!("connect {addr}: Connection refused"))
        );
        let listener = TcpListener::bind(addr).await.unwrap();
        let server = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                    }),
                ));
            }
        });
        wait_until("healthy", || state.is_healthy()).await;
        task.abort();
        server.abort();
    }
}
