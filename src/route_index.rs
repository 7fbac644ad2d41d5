//! Finding a request's router without trying every rule.
//!
//! Each rule says what it guarantees about the requests it matches
//! ([`crate::rules::IndexHint`]): their host is one of a list, their path starts with
//! a prefix. An entrypoint's routes (already in match order) are bucketed by host
//! (or "any host") and, within that, by the first path segment the prefix pins down
//! (`/pkg.Service/…` → `pkg.Service`, the shape of every gRPC rule), or "any path".
//! A request looks at most four buckets (its host or any × its first segment or any),
//! walks them merged in match order and runs the full matcher only on those
//! candidates; the first match wins, exactly as a linear scan would.
//!
//! A lookup allocates nothing: hosts are lowercased on the stack (a host too long
//! for that falls back to the scan).

use std::collections::HashMap;

use crate::rules::IndexHint;

/// Routes bucketed by first path segment.
#[derive(Debug, Default)]
struct Segments {
    by_segment: HashMap<Box<str>, Vec<u32>>,
    /// Routes whose prefix pins no whole first segment.
    any: Vec<u32>,
}

impl Segments {
    fn add(&mut self, segment: Option<&str>, route: u32) {
        match segment {
            Some(s) => self.by_segment.entry(s.into()).or_default().push(route),
            None => self.any.push(route),
        }
    }

    fn lists<'a>(&'a self, segment: Option<&str>, out: &mut [&'a [u32]; 4], n: &mut usize) {
        if let Some(list) = segment.and_then(|s| self.by_segment.get(s)) {
            out[*n] = list;
            *n += 1;
        }
        if !self.any.is_empty() {
            out[*n] = &self.any;
            *n += 1;
        }
    }
}

/// One entrypoint's routes, indexed.
#[derive(Debug, Default)]
pub struct RouteIndex {
    by_host: HashMap<Box<str>, Segments>,
    any_host: Segments,
    /// Per route, its path prefix: a cheap test before the matcher.
    prefixes: Vec<Option<Box<str>>>,
}

/// Longest host looked up through the index (DNS names are at most 253).
const MAX_HOST: usize = 256;

impl RouteIndex {
    /// Indexes routes given in match order by their hints.
    pub fn new<'a>(hints: impl IntoIterator<Item = &'a IndexHint>) -> RouteIndex {
        let mut index = RouteIndex::default();
        for (i, hint) in hints.into_iter().enumerate() {
            let route = i as u32;
            let segment = hint.path_prefix.as_deref().and_then(prefix_segment);
            match &hint.hosts {
                Some(hosts) => {
                    for h in hosts {
                        index
                            .by_host
                            .entry(h.to_ascii_lowercase().into())
                            .or_default()
                            .add(segment, route);
                    }
                }
                None => index.any_host.add(segment, route),
            }
            index
                .prefixes
                .push(hint.path_prefix.as_deref().map(Into::into));
        }
        index
    }

    /// The first route, in match order, among those that could match `host` and
    /// `path` and for which `matches` says yes.
    pub fn find(
        &self,
        host: &str,
        path: &str,
        mut matches: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut buf = [0u8; MAX_HOST];
        let Some(host) = lowercase(host, &mut buf) else {
            return (0..self.prefixes.len()).find(|&i| matches(i));
        };
        let segment = path_segment(path);
        let mut lists: [&[u32]; 4] = [&[]; 4];
        let mut n = 0;
        if let Some(s) = self.by_host.get(host) {
            s.lists(segment, &mut lists, &mut n);
        }
        self.any_host.lists(segment, &mut lists, &mut n);
        let lists = &mut lists[..n];
        // Merge the sorted lists: always the smallest route index next.
        loop {
            let mut best: Option<(usize, u32)> = None;
            for (k, list) in lists.iter().enumerate() {
                if let Some(&first) = list.first() {
                    if best.is_none_or(|(_, b)| first < b) {
                        best = Some((k, first));
                    }
                }
            }
            let (k, route) = best?;
            lists[k] = &lists[k][1..];
            let route = route as usize;
            let prefix_ok = self
                .prefixes
                .get(route)
                .and_then(Option::as_deref)
                .is_none_or(|p| path.starts_with(p));
            if prefix_ok && matches(route) {
                return Some(route);
            }
        }
    }
}

/// The first path segment a prefix pins down whole: `/a/…` → `a`; `/ab` → none
/// (`/abc` also starts with it).
fn prefix_segment(prefix: &str) -> Option<&str> {
    let rest = prefix.strip_prefix('/')?;
    let end = rest.find('/')?;
    (end > 0).then(|| &rest[..end])
}

/// A request path's first segment, when a `/` follows it.
fn path_segment(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let end = rest.find('/')?;
    Some(&rest[..end])
}

/// `host` in ASCII lowercase, borrowed when it already is; `None` when too long
/// for the buffer (or not valid after lowering, which cannot happen for ASCII).
fn lowercase<'a>(host: &'a str, buf: &'a mut [u8; MAX_HOST]) -> Option<&'a str> {
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let out = buf.get_mut(..host.len())?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{compile, RequestInfo};
    use http::{HeaderMap, Method};

    fn info<'a>(host: &'a str, path: &'a str, headers: &'a HeaderMap) -> RequestInfo<'a> {
        RequestInfo {
            method: &Method::POST,
            host,
            path,
            query: None,
            headers,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        }
    }

    #[test]
    fn segments() {
        assert_eq!(prefix_segment("/pkg.Svc/"), Some("pkg.Svc"));
        assert_eq!(prefix_segment("/pkg.Svc/Get"), Some("pkg.Svc"));
        assert_eq!(prefix_segment("/api"), None);
        assert_eq!(prefix_segment("//x"), None);
        assert_eq!(path_segment("/pkg.Svc/Get"), Some("pkg.Svc"));
        assert_eq!(path_segment("/health"), None);
        assert_eq!(path_segment("/"), None);
    }

    /// The index finds exactly what a linear scan finds, for every probe.
    #[test]
    fn agrees_with_a_linear_scan() {
        let rules = [
            "Host(`a.example.com`) && PathPrefix(`/api/`)",
            "GRPCService(`pkg.One`)",
            "Host(`B.example.com`)",
            "PathPrefix(`/ap`)",
            "GRPCMethod(`pkg.Two`, `Get`)",
            "Host(`a.example.com`) || Host(`c.example.com`)",
            "Path(`/health`)",
            "!Host(`a.example.com`) && PathPrefix(`/pkg.One/`)",
            "HostRegexp(`^.*\\.example\\.com$`)",
            "PathPrefix(`/`)",
            "Host(`a.example.com`) && (PathPrefix(`/x/`) || PathPrefix(`/y/`))",
            "Header(`x-v`, `1`) && GRPCService(`pkg.Two`)",
        ];
        let matchers: Vec<_> = rules.iter().map(|r| compile(r).expect(r)).collect();
        let hints: Vec<IndexHint> = matchers.iter().map(|m| m.index_hint()).collect();
        let index = RouteIndex::new(&hints);
        let hosts = [
            "a.example.com",
            "A.EXAMPLE.com",
            "b.example.com",
            "c.example.com",
            "other",
            "",
        ];
        let paths = [
            "/api/x",
            "/apx",
            "/ap",
            "/pkg.One/Get",
            "/pkg.Two/Get",
            "/pkg.Two/Put",
            "/health",
            "/x/1",
            "/y/2",
            "/",
            "",
            "/pkg.One",
        ];
        let mut with = HeaderMap::new();
        with.insert("x-v", "1".parse().unwrap());
        for headers in [HeaderMap::new(), with] {
            for host in hosts {
                for path in paths {
                    let req = info(host, path, &headers);
                    let linear = matchers.iter().position(|m| m.matches(&req));
                    let indexed = index.find(host, path, |i| matchers[i].matches(&req));
                    assert_eq!(indexed, linear, "{host} {path}");
                }
            }
        }
    }

    #[test]
    fn only_candidates_are_tried() {
        let rules: Vec<String> = (0..1_000)
            .map(|i| format!("GRPCService(`pkg.S{i}`)"))
            .collect();
        let matchers: Vec<_> = rules.iter().map(|r| compile(r).unwrap()).collect();
        let hints: Vec<IndexHint> = matchers.iter().map(|m| m.index_hint()).collect();
        let index = RouteIndex::new(&hints);
        let headers = HeaderMap::new();
        let req = info("h", "/pkg.S999/Call", &headers);
        let mut tried = 0;
        let found = index.find("h", "/pkg.S999/Call", |i| {
            tried += 1;
            matchers[i].matches(&req)
        });
        assert_eq!((found, tried), (Some(999), 1));
        // A host too long for the stack buffer: the linear scan, same answer.
        let long = "a".repeat(300);
        let req = info(&long, "/pkg.S5/x", &headers);
        assert_eq!(
            index.find(&long, "/pkg.S5/x", |i| matchers[i].matches(&req)),
            Some(5)
        );
    }
}
