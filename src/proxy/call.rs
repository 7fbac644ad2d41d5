//! One call's bookkeeping, from the moment a server is picked to the last byte of its
//! response: in-flight gauges, the outcome (gRPC status from trailers or from a
//! trailers-only response, else the HTTP status), latency, bytes, and the access log
//! line when logging is on.
//!
//! A [`Call`] rides inside the response body ([`super::body::ProxyBody`]), so it ends
//! exactly when the response does: at the trailers or end of stream, at a broken
//! stream, or when the client goes away (dropped early: CANCELLED).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method};

use crate::balance::Endpoint;
use crate::telemetry::access_log::{self, AccessLog, Entry};
use crate::telemetry::codes::grpc_status;
use crate::telemetry::{CallStats, Outcome, GRPC_CODES};

/// How a response stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The last frame (trailers or end of stream) was delivered.
    Complete,
    /// The stream broke (reset by the server, connection lost).
    Broken,
    /// The client went away first.
    Dropped,
}

/// The scopes a call is counted in.
#[derive(Debug, Clone)]
pub struct Scopes {
    pub entrypoint: Arc<CallStats>,
    pub route: Option<Arc<CallStats>>,
    pub service: Option<Arc<CallStats>>,
}

impl Scopes {
    fn each(&self) -> impl Iterator<Item = &Arc<CallStats>> {
        std::iter::once(&self.entrypoint)
            .chain(self.route.as_ref())
            .chain(self.service.as_ref())
    }
}

/// What the access log needs to know of a call, captured only when logging is on.
#[derive(Debug)]
pub struct LogContext {
    pub log: Arc<AccessLog>,
    pub entrypoint: Arc<str>,
    pub router: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub client: SocketAddr,
    pub method: Method,
    pub path: String,
    pub traceparent: Option<HeaderValue>,
    /// Request body bytes, counted as they stream to the server.
    pub bytes_in: Arc<AtomicU64>,
}

/// A call in progress on a server.
#[derive(Debug)]
pub struct Call {
    started: Instant,
    grpc: bool,
    scopes: Scopes,
    endpoint: Arc<Endpoint>,
    http_status: u16,
    grpc_status: Option<u8>,
    bytes_out: u64,
    log: Option<Box<LogContext>>,
    finished: bool,
    /// The server never answered (see [`Call::unanswered`]).
    silent: bool,
}

impl Call {
    /// Counts the call in flight in every scope and on the server.
    pub fn start(
        started: Instant,
        grpc: bool,
        scopes: Scopes,
        endpoint: Arc<Endpoint>,
        log: Option<Box<LogContext>>,
    ) -> Call {
        for s in scopes.each() {
            s.started();
        }
        endpoint.stats().started();
        Call {
            started,
            grpc,
            scopes,
            endpoint,
            http_status: 0,
            grpc_status: None,
            bytes_out: 0,
            log,
            finished: false,
            silent: false,
        }
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Notes the response head; a trailers-only gRPC response carries its status here.
    pub fn respond(&mut self, status: http::StatusCode, headers: &HeaderMap) {
        // Time to response headers is what p2c weighs a server by (streams can last
        // for hours; their first answer says how loaded the server is).
        let now = Instant::now();
        self.endpoint
            .latency()
            .observe(now.saturating_duration_since(self.started), now);
        self.http_status = status.as_u16();
        if let Some(code) = grpc_status(headers) {
            self.grpc_status = Some(code);
        }
    }

    /// Notes the response trailers (where a gRPC status normally is).
    pub fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(code) = grpc_status(trailers) {
            self.grpc_status = Some(code);
        }
    }

    pub fn data(&mut self, len: usize) {
        self.bytes_out += len as u64;
    }

    /// Moves the call to another server after `failed` ended its attempt on this one
    /// (the attempt counts on the server it failed on; the call goes on).
    pub fn retarget(&mut self, endpoint: Arc<Endpoint>, failed: Outcome) {
        self.endpoint.finished(failed, self.started.elapsed());
        endpoint.stats().started();
        self.endpoint = endpoint;
    }

    /// Ends the call with a status gantry made itself (the server could not be used).
    pub fn fail(mut self, outcome: Outcome) {
        self.conclude(outcome);
    }

    /// Ends a call whose deadline passed with no answer from its server: it counts
    /// DEADLINE_EXCEEDED, and as a failure of the server for outlier detection
    /// (a paused or overloaded server answers nothing; its calls time out).
    pub fn unanswered(mut self) {
        self.silent = true;
        let outcome = match self.grpc {
            true => Outcome::Grpc(4),
            false => Outcome::Http(504),
        };
        self.conclude(outcome);
    }

    /// Ends the call as the response stream ended.
    pub fn finish(mut self, end: End) {
        let outcome = self.outcome(end);
        self.conclude(outcome);
    }

    fn outcome(&self, end: End) -> Outcome {
        match end {
            End::Broken => Outcome::Reset,
            End::Dropped if self.grpc => Outcome::Cancelled.for_grpc(),
            End::Dropped => Outcome::Cancelled,
            End::Complete if self.grpc => Outcome::Grpc(
                self.grpc_status
                    .unwrap_or_else(|| grpc_code_for_http(self.http_status)),
            ),
            End::Complete => Outcome::Http(self.http_status),
        }
    }

    fn conclude(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let took = self.started.elapsed();
        for s in self.scopes.each() {
            s.finished(outcome, took);
        }
        match self.silent {
            true => self.endpoint.finished_unanswered(outcome, took),
            false => self.endpoint.finished(outcome, took),
        }
        if let Some(ctx) = self.log.take() {
            write_log(
                &ctx,
                Some(&self.endpoint),
                outcome,
                self.http_status,
                took,
                self.bytes_out,
            );
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let outcome = self.outcome(End::Dropped);
            self.conclude(outcome);
        }
    }
}

/// Counts a call that never reached a server (no route, no server): a router-made
/// answer, finished at once.
pub fn record_refused(
    started: Instant,
    scopes: &Scopes,
    outcome: Outcome,
    http_status: u16,
    log: Option<Box<LogContext>>,
) {
    let took = started.elapsed();
    for s in scopes.each() {
        s.record(outcome, took);
    }
    if let Some(ctx) = log {
        write_log(&ctx, None, outcome, http_status, took, 0);
    }
}

fn write_log(
    ctx: &LogContext,
    endpoint: Option<&Arc<Endpoint>>,
    outcome: Outcome,
    http_status: u16,
    took: std::time::Duration,
    bytes_out: u64,
) {
    let path = ctx.path.split('?').next().unwrap_or("");
    let (grpc_service, grpc_method) = access_log::grpc_parts(path);
    let grpc_status = match outcome {
        Outcome::Grpc(c) => Some(c),
        _ => None,
    };
    let status = match outcome {
        Outcome::Grpc(c) => GRPC_CODES.get(usize::from(c)).copied().unwrap_or("UNKNOWN"),
        Outcome::Http(_) => "HTTP",
        Outcome::Reset => "RESET",
        Outcome::Cancelled => "CANCELLED",
    };
    let traceparent = ctx.traceparent.as_ref().and_then(|v| v.to_str().ok());
    ctx.log.log(&Entry {
        time: access_log::timestamp(SystemTime::now() - took),
        entrypoint: &ctx.entrypoint,
        router: ctx.router.as_deref(),
        service: ctx.service.as_deref(),
        upstream: endpoint.map(|e| e.address().to_string()),
        task: endpoint.map(|e| e.key().task.as_str()),
        client: ctx.client.to_string(),
        method: ctx.method.as_str(),
        path,
        grpc_service,
        grpc_method,
        grpc_status,
        status,
        http_status: (http_status != 0).then_some(http_status),
        duration_ms: took.as_secs_f64() * 1e3,
        bytes_in: ctx.bytes_in.load(Ordering::Relaxed),
        bytes_out,
        trace_id: traceparent.and_then(access_log::trace_id),
    });
}

/// The status a gRPC client infers from an HTTP status when there is no
/// `grpc-status` (grpc/doc/http-grpc-status-mapping.md).
fn grpc_code_for_http(status: u16) -> u8 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_as_grpc_clients_do() {
        assert_eq!(grpc_code_for_http(503), 14);
        assert_eq!(grpc_code_for_http(404), 12);
        assert_eq!(grpc_code_for_http(200), 2); // a gRPC response without a status
    }
}
