//! The compiled form of an HTTP rule and its evaluation against a request.
//!
//! Everything a leaf needs (lowercased hosts, regexes, header names, networks)
//! was prepared by `compile.rs`, so evaluation only compares and never parses
//! or allocates; the one exception is percent-decoding in `Query` matchers.

use std::net::IpAddr;

use http::header::HeaderName;
use ipnet::IpNet;
use regex::Regex;

use super::query::{self, Want};
use super::RequestInfo;

/// A node of a compiled rule.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// ASCII-lowercased host name, compared case-insensitively.
    Host(Box<str>),
    /// Anchored and case-insensitive.
    HostRegexp(Regex),
    Path(Box<str>),
    PathPrefix(Box<str>),
    /// Anchored at the start only.
    PathRegexp(Regex),
    Method(http::Method),
    Header(HeaderName, Box<[u8]>),
    /// Unanchored; matched against the raw bytes so that values that are not
    /// visible ASCII still get a chance.
    HeaderRegexp(HeaderName, regex::bytes::Regex),
    /// Key and, if the value matters, the value.
    Query(Box<str>, Option<Box<str>>),
    /// Unanchored, against the decoded value.
    QueryRegexp(Box<str>, Regex),
    ClientIp(IpNet),
}

impl Node {
    /// Evaluates the node. Recursion depth is bounded by the parser's nesting
    /// limit because `&&`/`||` chains are flat.
    pub(crate) fn matches(&self, req: &RequestInfo<'_>) -> bool {
        match self {
            Node::And(nodes) => nodes.iter().all(|n| n.matches(req)),
            Node::Or(nodes) => nodes.iter().any(|n| n.matches(req)),
            Node::Not(node) => !node.matches(req),
            Node::Host(host) => req.host.eq_ignore_ascii_case(host),
            Node::HostRegexp(re) => re.is_match(req.host),
            Node::Path(path) => req.path == &**path,
            Node::PathPrefix(prefix) => req.path.starts_with(&**prefix),
            Node::PathRegexp(re) => re.is_match(req.path),
            Node::Method(method) => req.method == method,
            Node::Header(name, value) => req
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == &**value),
            Node::HeaderRegexp(name, re) => req
                .headers
                .get_all(name)
                .iter()
                .any(|v| re.is_match(v.as_bytes())),
            Node::Query(key, value) => {
                let want = match value {
                    Some(v) => Want::Equals(v),
                    None => Want::Present,
                };
                query::has(req.query, key, want)
            }
            Node::QueryRegexp(key, re) => query::has(req.query, key, Want::Regex(re)),
            Node::ClientIp(net) => client_ip_in(net, req.client_ip),
        }
    }
}

/// Network membership that also sees through IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.1`), which dual-stack listeners report for IPv4 clients.
fn client_ip_in(net: &IpNet, ip: IpAddr) -> bool {
    if net.contains(&ip) {
        return true;
    }
    match (net, ip) {
        (IpNet::V4(v4net), IpAddr::V6(v6)) => {
            v6.to_ipv4_mapped().is_some_and(|v4| v4net.contains(&v4))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_mapping() {
        let net: IpNet = "10.0.0.0/8".parse().expect("net");
        let cases = [
            ("10.1.2.3", true),
            ("11.1.2.3", false),
            ("::ffff:10.1.2.3", true),
            ("::ffff:11.1.2.3", false),
            ("::10.1.2.3", false),
            ("fe80::1", false),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(client_ip_in(&net, ip), want, "{ip}");
        }
        let v6: IpNet = "2001:db8::/32".parse().expect("net");
        let inside: IpAddr = "2001:db8::1".parse().expect("ip");
        let outside: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(client_ip_in(&v6, inside));
        assert!(!client_ip_in(&v6, outside));
    }
}
