//! Deadlines: gantry enforces a gRPC call's `grpc-timeout` itself.
//!
//! A client's deadline still travels to the server untouched; gantry also keeps it,
//! so a server that ignores deadlines (or a call stuck in a queue) does not hold the
//! client past it. If no response head has arrived when it passes, the client gets
//! a trailers-only `DEADLINE_EXCEEDED`; if the response is streaming, gantry stops
//! reading the server (which cancels the server's stream) and ends the response with
//! `DEADLINE_EXCEEDED` trailers. Plain HTTP has no deadline header and gets none.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

/// The longest `grpc-timeout` value has 8 digits (gRPC over HTTP/2, "Timeout").
const MAX_DIGITS: usize = 8;

/// The timeout a request asks for, per the gRPC HTTP/2 protocol:
/// `1*8DIGIT` followed by `H`, `M`, `S`, `m`, `u` or `n`. A malformed value is no
/// deadline here (the server still sees it and may refuse it).
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
    let v = headers.get(&GRPC_TIMEOUT)?.as_bytes();
    let (unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The trailers ending a response whose deadline passed while it streamed.
/// A client's cancel this close to its call's deadline (as gantry computed it from
/// `grpc-timeout` on arrival) is the client giving up at the deadline: the
/// client's clock started a little earlier than gantry's.
pub const CANCEL_SLACK: std::time::Duration = std::time::Duration::from_millis(100);

pub fn exceeded_trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("4"));
    t.insert(
        "grpc-message",
        HeaderValue::from_static("deadline%20exceeded%20(gantry%20ended%20the%20call)"),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_the_protocol_writes_them() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_timeout(&h), None);
        for (v, want) in [
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("3S", Some(Duration::from_secs(3))),
            ("200m", Some(Duration::from_millis(200))),
            ("5u", Some(Duration::from_micros(5))),
            ("99999999n", Some(Duration::from_nanos(99_999_999))),
            ("123456789m", None),
            ("m", None),
            ("10x", None),
            ("1.5S", None),
            ("-1S", None),
        ] {
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            assert_eq!(grpc_timeout(&h), want, "{v}");
        }
    }
}
