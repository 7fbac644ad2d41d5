//! Shared helpers: owned requests to borrow a `RequestInfo` from, and a
//! table checker for rules × requests.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::super::{compile, Matcher, RequestInfo};

/// An owned request to borrow a [`RequestInfo`] from.
#[derive(Clone)]
pub(super) struct Req {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    ip: IpAddr,
}

/// `"GET host /path?query"`; the client is 192.0.2.1 with no headers.
pub(super) fn req(line: &str) -> Req {
    let mut parts = line.splitn(3, ' ');
    let method = parts.next().unwrap_or("GET");
    let host = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    Req {
        method: Method::from_bytes(method.as_bytes()).expect("test method"),
        host: host.to_string(),
        path: path.to_string(),
        query,
        headers: HeaderMap::new(),
        ip: IpAddr::from([192, 0, 2, 1]),
    }
}

impl Req {
    pub(super) fn header(mut self, name: &str, value: &[u8]) -> Req {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(value).expect("test header value"),
        );
        self
    }

    pub(super) fn ip(mut self, ip: &str) -> Req {
        self.ip = ip.parse().expect("test ip");
        self
    }

    pub(super) fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client_ip: self.ip,
        }
    }
}

pub(super) fn compiled(rule: &str) -> Matcher {
    compile(rule).unwrap_or_else(|e| panic!("{rule:?} should compile: {e}"))
}

/// `(rule, requests that match, requests that do not)`.
pub(super) type Case = (&'static str, Vec<Req>, Vec<Req>);

pub(super) fn check(cases: Vec<Case>) {
    for (rule, yes, no) in cases {
        let m = compiled(rule);
        for r in &yes {
            let i = r.info();
            assert!(m.matches(&i), "{rule:?} should match {i:?}");
        }
        for r in &no {
            let i = r.info();
            assert!(!m.matches(&i), "{rule:?} should not match {i:?}");
        }
    }
}
