//! Request and response header rewriting at the proxy boundary.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it names,
//! `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade`) describe one
//! connection and are dropped. `TE: trailers` is the exception on requests: gRPC
//! needs it end to end, and HTTP/2 allows exactly that value. `X-Forwarded-For` gets
//! the client's address appended (as nginx, HAProxy and Envoy do); `X-Forwarded-Proto`
//! and `X-Forwarded-Host` are set from what gantry itself saw.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE,
};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers. With `keep_te_trailers`, a `TE` that asks for
/// trailers is kept as exactly `te: trailers`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // Headers named by `Connection` are hop-by-hop too. Rare, so only then allocate.
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
        headers.remove(CONNECTION);
    }
    let wants_trailers = keep_te_trailers
        && headers.get_all(TE).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
        });
    headers.remove(TE);
    if wants_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(UPGRADE);
}

/// Adds the forwarding headers for a request gantry is about to send on.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        Some(prev) => {
            let mut joined = Vec::with_capacity(prev.len() + 2 + client.len());
            joined.extend_from_slice(prev.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        // The connection's address, formatted once per connection.
        None => Some(client.clone()),
    };
    if let Some(v) = xff {
        // Fold any repeated header into the one value we just built.
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host {
        Some(v) => {
            headers.insert(&X_FORWARDED_HOST, v);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The host a request is for: `:authority` (HTTP/2, absolute-form) or `Host`,
/// without the port. Borrowed; nothing is allocated.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let raw = match uri.authority() {
        Some(a) => a.as_str(),
        None => headers.get(HOST)?.to_str().ok()?,
    };
    Some(strip_port(raw))
}

fn strip_port(authority: &str) -> &str {
    // Drop userinfo if any, then the port; keep IPv6 brackets' content whole.
    let a = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match a.rfind(':') {
        Some(i) if a[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &a[..i],
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip, trailers"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, true);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["te", "x-keep"]);
        assert_eq!(h["te"], "trailers");

        let mut h = map(&[("te", "gzip")]);
        strip_hop_by_hop(&mut h, true);
        assert!(h.is_empty());
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn forwarded_headers() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(
            &mut h,
            &HeaderValue::from_static("127.0.0.9"),
            "http",
            Some(HeaderValue::from_static("api.example")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"), "http", None);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn host_without_port() {
        for (auth, want) in [
            ("a.example:8000", "a.example"),
            ("a.example", "a.example"),
            ("[::1]:80", "::1"),
            ("[::1]", "::1"),
            ("u@b.example:1", "b.example"),
        ] {
            let uri: http::Uri = format!("http://{auth}/x").parse().unwrap_or_default();
            assert_eq!(request_host(&uri, &HeaderMap::new()), Some(want), "{auth}");
        }
        let uri: http::Uri = "/x".parse().unwrap_or_default();
        let h = map(&[("host", "h.example:99")]);
        assert_eq!(request_host(&uri, &h), Some("h.example"));
        assert_eq!(request_host(&uri, &HeaderMap::new()), None);
    }
}
