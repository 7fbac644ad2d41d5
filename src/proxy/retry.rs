//! Retries of calls a server answered, for routers whose owner declared their calls
//! idempotent (`R.retry.*`): a gRPC call answered trailers-only with a configured
//! code (UNAVAILABLE by default), or reset before any answer, is sent again to
//! another server, at most `attempts` more times and within the service's retry
//! budget. Plain HTTP calls are retried on 502/503/504 and only for idempotent
//! methods.
//!
//! Only calls that cannot have been half-answered qualify: the response must be a
//! head alone (a gRPC error carries no message), and the whole request body must
//! have been read and kept (at most [`REPLAY_LIMIT`]), so streams that outgrow it,
//! and every call whose response has started, are never retried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};

use super::body::RequestBody;
use super::call::grpc_status;
use crate::balance::codes::CodeSet;
use crate::dynamic::RouterRetry;
use crate::telemetry::Outcome;

/// The most request body kept for a retry.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// A router's retry rule, compiled.
#[derive(Debug)]
pub struct RetryRule {
    pub attempts: u32,
    codes: CodeSet,
    methods: Box<[Box<str>]>,
}

impl RetryRule {
    pub fn new(r: &RouterRetry) -> RetryRule {
        RetryRule {
            attempts: r.attempts,
            // The label reader only lets valid lists through.
            codes: CodeSet::parse(&r.codes).unwrap_or_default(),
            methods: r.methods.iter().map(|m| m.as_str().into()).collect(),
        }
    }

    /// Whether a call may be retried at all.
    pub fn applies(&self, method: &Method, path: &str, grpc: bool) -> bool {
        if !grpc
            && !matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
            )
        {
            return false;
        }
        self.methods.is_empty()
            || self.methods.iter().any(|m| {
                if m.ends_with('/') {
                    path.starts_with(&**m)
                } else {
                    path == &**m
                }
            })
    }

    /// The outcome of an answer worth retrying: a head-only response with a
    /// retryable status. `None`: the answer stands.
    pub fn retryable(
        &self,
        grpc: bool,
        status: StatusCode,
        headers: &HeaderMap,
        body_ended: bool,
    ) -> Option<Outcome> {
        if !body_ended && grpc {
            return None;
        }
        if grpc {
            let code = grpc_status(headers)?;
            return self.codes.contains(code).then_some(Outcome::Grpc(code));
        }
        matches!(status.as_u16(), 502..=504).then_some(Outcome::Http(status.as_u16()))
    }
}

/// What is kept of a request to send it again.
#[derive(Debug)]
pub struct Kept {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    pub body: Arc<Replay>,
}

impl Kept {
    /// Keeps the head of `req` and starts keeping its body as it streams.
    pub fn keep(req: &mut Request<RequestBody>) -> Kept {
        let body = Arc::new(Replay::default());
        req.body_mut().keep_into(body.clone());
        Kept {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body,
        }
    }

    /// The request again, if its whole body was kept (it stays kept, for the next
    /// attempt).
    pub fn again(&self) -> Option<Request<RequestBody>> {
        let (data, trailers) = self.body.taken()?;
        let mut req = Request::new(RequestBody::replay(data, trailers));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        Some(req)
    }
}

/// Request body frames kept as they stream (one writer: the body being sent).
#[derive(Debug, Default)]
pub struct Replay {
    state: tokio::sync::Mutex<Frames>,
    /// Too big, or the writer and a reader met: never replayed.
    spoiled: AtomicBool,
}

#[derive(Debug, Default)]
struct Frames {
    data: Vec<Bytes>,
    size: usize,
    trailers: Option<HeaderMap>,
    complete: bool,
}

impl Replay {
    pub(crate) fn data(&self, chunk: &Bytes) {
        self.with(|f| {
            f.size += chunk.len();
            if f.size > REPLAY_LIMIT {
                return false;
            }
            f.data.push(chunk.clone());
            true
        });
    }

    pub(crate) fn trailers(&self, trailers: &HeaderMap) {
        self.with(|f| {
            f.trailers = Some(trailers.clone());
            true
        });
    }

    pub(crate) fn complete(&self) {
        self.with(|f| {
            f.complete = true;
            true
        });
    }

    fn with(&self, f: impl FnOnce(&mut Frames) -> bool) {
        if self.spoiled.load(Ordering::Relaxed) {
            return;
        }
        // Never contended: one body writes, and a retry reads only after the attempt.
        let ok = match self.state.try_lock() {
            Ok(mut frames) => f(&mut frames),
            Err(_) => false,
        };
        if !ok {
            self.spoiled.store(true, Ordering::Relaxed);
        }
    }

    /// The whole body, if it was read to its end and kept.
    fn taken(&self) -> Option<(Vec<Bytes>, Option<HeaderMap>)> {
        if self.spoiled.load(Ordering::Relaxed) {
            return None;
        }
        let frames = self.state.try_lock().ok()?;
        frames
            .complete
            .then(|| (frames.data.clone(), frames.trailers.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(codes: &str, methods: &[&str]) -> RetryRule {
        RetryRule::new(&RouterRetry {
            attempts: 2,
            codes: codes.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        })
    }

    #[test]
    fn which_calls_and_answers_qualify() {
        let all = rule("14", &[]);
        assert!(all.applies(&Method::POST, "/pkg.Svc/Get", true));
        assert!(!all.applies(&Method::POST, "/upload", false));
        assert!(all.applies(&Method::GET, "/page", false));
        let some = rule("14", &["/pkg.Svc/Get", "/pkg.Other/"]);
        assert!(some.applies(&Method::POST, "/pkg.Svc/Get", true));
        assert!(!some.applies(&Method::POST, "/pkg.Svc/Put", true));
        assert!(some.applies(&Method::POST, "/pkg.Other/Any", true));

        let mut h = HeaderMap::new();
        h.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(
            all.retryable(true, StatusCode::OK, &h, true),
            Some(Outcome::Grpc(14))
        );
        assert_eq!(all.retryable(true, StatusCode::OK, &h, false), None);
        h.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(all.retryable(true, StatusCode::OK, &h, true), None);
        assert_eq!(
            all.retryable(
                false,
                StatusCode::SERVICE_UNAVAILABLE,
                &HeaderMap::new(),
                false
            ),
            Some(Outcome::Http(503))
        );
        assert_eq!(
            all.retryable(
                false,
                StatusCode::INTERNAL_SERVER_ERROR,
                &HeaderMap::new(),
                true
            ),
            None
        );
    }

    #[test]
    fn a_body_is_replayed_only_whole_and_small_enough() {
        let r = Replay::default();
        r.data(&Bytes::from_static(b"abc"));
        assert!(r.taken().is_none(), "not complete yet");
        r.complete();
        assert_eq!(r.taken().unwrap().0, vec![Bytes::from_static(b"abc")]);

        let big = Replay::default();
        big.data(&Bytes::from(vec![0u8; REPLAY_LIMIT + 1]));
        big.complete();
        assert!(big.taken().is_none());
    }
}
