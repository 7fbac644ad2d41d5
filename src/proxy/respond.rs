//! Responses gantry makes itself, in one place.
//!
//! A gRPC request (`content-type: application/grpc…`) never gets a bare HTTP error:
//! it gets a trailers-only gRPC response (HTTP 200, `grpc-status` and `grpc-message`
//! in the only HEADERS frame, END_STREAM set), so gRPC clients see a real status.
//! Plain HTTP gets 404, 502, 503 or 504 with the message as a one-line text body.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::body::ProxyBody;

/// What went wrong, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No router matched.
    NoRoute,
    /// The service has no server that may take calls.
    NoServer,
    /// The server could not be reached or failed before answering.
    Unreachable,
    /// The call's deadline passed.
    Deadline,
    /// The server's answer cannot be passed on (a head bigger than the client
    /// takes).
    BadAnswer,
}

impl Failure {
    fn http_status(self) -> StatusCode {
        match self {
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::NoServer => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Unreachable | Failure::BadAnswer => StatusCode::BAD_GATEWAY,
            Failure::Deadline => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// How the call is counted: its outcome and the HTTP status the client gets.
    pub fn outcome(self, grpc: bool) -> (crate::telemetry::Outcome, u16) {
        use crate::telemetry::Outcome;
        if grpc {
            (Outcome::Grpc(self.grpc_code()), 200)
        } else {
            let status = self.http_status().as_u16();
            (Outcome::Http(status), status)
        }
    }

    /// The gRPC status code (grpc/doc/statuscodes.md).
    pub fn grpc_code(self) -> u8 {
        match self {
            Failure::NoRoute => 12,                         // UNIMPLEMENTED
            Failure::NoServer | Failure::Unreachable => 14, // UNAVAILABLE
            Failure::Deadline => 4,                         // DEADLINE_EXCEEDED
            Failure::BadAnswer => 13,                       // INTERNAL
        }
    }
}

/// Characters percent-encoded in `grpc-message`: everything outside printable
/// ASCII, and `%` itself (gRPC over HTTP/2 spec, "Responses").
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// Builds the response for a failure; `grpc` says whether the request was gRPC.
pub fn failure(grpc: bool, failure: Failure, message: &str) -> Response<ProxyBody> {
    let (head, text) = failure_head(grpc, failure, message);
    let body = match text {
        Some(t) => ProxyBody::text(t),
        None => ProxyBody::empty(),
    };
    head.map(|()| body)
}

/// The head of a failure's response, and its text body (plain HTTP only; a gRPC
/// failure is its head alone).
pub fn failure_head(grpc: bool, failure: Failure, message: &str) -> (Response<()>, Option<String>) {
    let mut res = Response::new(());
    let headers = res.headers_mut();
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            "grpc-status",
            HeaderValue::from(u16::from(failure.grpc_code())),
        );
        let encoded = utf8_percent_encode(message, GRPC_MESSAGE).to_string();
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            headers.insert("grpc-message", v);
        }
        return (res, None);
    }
    if let Ok(v) = HeaderValue::from_str(message) {
        headers.insert("x-gantry-error", v);
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    *res.status_mut() = failure.http_status();
    (res, Some(format!("{message}\n")))
}

/// Trailers ending a gRPC call whose response head already went out: the status
/// `code` and `message` (percent-encoded as gRPC's wire format asks).
pub fn grpc_trailers(code: u8, message: &str) -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(u16::from(code)));
    let encoded = utf8_percent_encode(message, GRPC_MESSAGE).to_string();
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        t.insert("grpc-message", v);
    }
    t
}

/// Whether a request is gRPC: its content type is `application/grpc` or a subtype
/// (`application/grpc+proto`, `application/grpc-web…` is not gRPC over HTTP/2).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .map(|v| {
            let v = v.as_bytes();
            v.len() >= 16
                && v[..16].eq_ignore_ascii_case(b"application/grpc")
                && matches!(v.get(16), None | Some(b'+') | Some(b';'))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_detection() {
        for (ct, want) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC;charset=x", true),
            ("application/grpc-web", false),
            ("application/json", false),
            ("application/grp", false),
        ] {
            let mut h = http::HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_grpc(&h), want, "{ct}");
        }
        assert!(!is_grpc(&http::HeaderMap::new()));
    }

    #[test]
    fn grpc_failures_are_trailers_only() {
        let res = failure(
            true,
            Failure::NoRoute,
            "no router for /a.B/C — ünïcode 100%",
        );
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "12");
        let msg = res.headers()["grpc-message"].to_str().unwrap_or_default();
        assert!(msg.contains("%C3%BC") && msg.contains("100%25"), "{msg}");
        assert!(http_body::Body::is_end_stream(res.body()));
        assert_eq!(
            failure(true, Failure::NoServer, "x").headers()["grpc-status"],
            "14"
        );
        assert_eq!(
            failure(true, Failure::Deadline, "x").headers()["grpc-status"],
            "4"
        );
    }

    #[test]
    fn http_failures_use_status_codes() {
        assert_eq!(failure(false, Failure::NoRoute, "x").status(), 404);
        assert_eq!(failure(false, Failure::NoServer, "x").status(), 503);
        assert_eq!(failure(false, Failure::Unreachable, "x").status(), 502);
        assert_eq!(failure(false, Failure::Deadline, "x").status(), 504);
    }
}
