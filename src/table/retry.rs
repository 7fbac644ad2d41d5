//! A router's retry rule, compiled: which of its calls a server answered are sent
//! again, for routers whose owner declared their calls idempotent (`R.retry.*`). A
//! gRPC call answered trailers-only with a configured code (UNAVAILABLE by
//! default), or reset before any answer, goes again to another server, at most
//! `attempts` more times and within the service's retry budget. Plain HTTP calls
//! are retried on 502/503/504 and only for idempotent methods. The proxy does the
//! retrying.
//!
//! Only calls that cannot have been half-answered qualify: the response must be a
//! head alone (a gRPC error carries no message), and the whole request body must
//! have been read and kept (at most [`crate::upstream::REPLAY_LIMIT`], see
//! [`crate::upstream::replay`]), so streams that outgrow it, and every call whose
//! response has started, are never retried.

use http::{HeaderMap, Method, StatusCode};

use crate::dynamic::RouterRetry;
use crate::telemetry::codes::{grpc_status, CodeSet};
use crate::telemetry::Outcome;

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
}
