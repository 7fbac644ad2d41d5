//! Index hints: what a compiled rule guarantees about the host and path of
//! every request it matches, so a router table can bucket rules by host and
//! path prefix instead of trying all of them.
//!
//! The analysis is conservative: `None` means "no guarantee", never "no
//! match". `!` and regex matchers give no guarantee.

use super::node::Node;

/// Guarantees a rule gives about the requests it matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexHint {
    /// `Some(list)`: every matching request's host, ASCII-lowercased, is in
    /// `list` (sorted, deduplicated; empty if the rule can never match).
    /// `None`: the rule may match any host.
    pub hosts: Option<Vec<String>>,
    /// `Some(p)`: every matching request's path starts with `p` (never empty).
    pub path_prefix: Option<String>,
}

pub(crate) fn index_hint(node: &Node) -> IndexHint {
    IndexHint {
        hosts: hosts(node).map(|mut h| {
            h.sort();
            h.dedup();
            h
        }),
        path_prefix: path_prefix(node).filter(|p| !p.is_empty()),
    }
}

fn hosts(node: &Node) -> Option<Vec<String>> {
    match node {
        Node::Host(h) => Some(vec![h.to_string()]),
        // Every alternative must be restricted, and then the union is.
        Node::Or(nodes) => {
            let mut all = Vec::new();
            for n in nodes.iter() {
                all.extend(hosts(n)?);
            }
            Some(all)
        }
        // Any restricted operand restricts the whole; several intersect.
        Node::And(nodes) => nodes
            .iter()
            .filter_map(hosts)
            .reduce(|acc, next| acc.into_iter().filter(|h| next.contains(h)).collect()),
        _ => None,
    }
}

fn path_prefix(node: &Node) -> Option<String> {
    match node {
        Node::Path(p) | Node::PathPrefix(p) => Some(p.to_string()),
        // All alternatives must share a prefix: their longest common one.
        Node::Or(nodes) => {
            let mut iter = nodes.iter();
            let mut common = path_prefix(iter.next()?)?;
            for n in iter {
                let p = path_prefix(n)?;
                common.truncate(common_prefix_len(&common, &p));
            }
            Some(common)
        }
        // Every operand's prefix holds at once, so the longest one does.
        Node::And(nodes) => nodes.iter().filter_map(path_prefix).max_by_key(String::len),
        _ => None,
    }
}

/// Byte length of the longest common prefix, on a character boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or_else(|| a.len().min(b.len()), |((i, _), _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::compile;
    use super::*;

    fn hint(rule: &str) -> IndexHint {
        match compile(rule) {
            Ok(m) => m.index_hint(),
            Err(e) => panic!("{rule:?}: {e}"),
        }
    }

    /// `(rule, expected hosts, expected path prefix)`.
    type HintCase = (
        &'static str,
        Option<&'static [&'static str]>,
        Option<&'static str>,
    );

    #[test]
    fn hints() {
        let cases: &[HintCase] = &[
            ("Host(`a`) && PathPrefix(`/x`)", Some(&["a"]), Some("/x")),
            ("Host(`a`) || Path(`/b`)", None, None),
            ("Host(`A.example.COM`)", Some(&["a.example.com"]), None),
            ("Host(`b`, `a`, `b`)", Some(&["a", "b"]), None),
            ("Host(`a`) || Host(`b`)", Some(&["a", "b"]), None),
            ("(Host(`a`) || Host(`b`)) && Host(`b`)", Some(&["b"]), None),
            ("Host(`a`) && Host(`b`)", Some(&[]), None),
            ("Host(`a`) && !Host(`b`)", Some(&["a"]), None),
            ("!Host(`a`)", None, None),
            ("HostRegexp(`a`)", None, None),
            ("HostRegexp(`a`) && Host(`c`)", Some(&["c"]), None),
            ("Host(`a`) || HostRegexp(`b`)", None, None),
            ("Path(`/x/y`)", None, Some("/x/y")),
            ("GRPCService(`pkg.Svc`)", None, Some("/pkg.Svc/")),
            ("GRPCMethod(`pkg.Svc`, `Get`)", None, Some("/pkg.Svc/Get")),
            (
                "PathPrefix(`/api/v1`) || PathPrefix(`/api/v2`)",
                None,
                Some("/api/v"),
            ),
            ("PathPrefix(`/a`) || PathPrefix(`/b`)", None, Some("/")),
            ("PathPrefix(`/é1`) || PathPrefix(`/é2`)", None, Some("/é")),
            ("PathPrefix(`/éa`) || PathPrefix(`/èa`)", None, Some("/")),
            ("PathPrefix(`/api`) || Method(`GET`)", None, None),
            ("PathPrefix(`/api`) && Path(`/api/x`)", None, Some("/api/x")),
            ("PathPrefix(`/api`) && Method(`GET`)", None, Some("/api")),
            ("!PathPrefix(`/api`)", None, None),
            ("PathRegexp(`/api`)", None, None),
            ("Path(`/users/{id}`)", None, None),
            (
                "Host(`a`) && (PathPrefix(`/x`) || Path(`/xy`)) && Method(`GET`)",
                Some(&["a"]),
                Some("/x"),
            ),
            (
                "(Host(`a`) && Path(`/p`)) || (Host(`b`) && PathPrefix(`/p/q`))",
                Some(&["a", "b"]),
                Some("/p"),
            ),
        ];
        for &(rule, hosts, prefix) in cases {
            let want = IndexHint {
                hosts: hosts.map(|h| h.iter().map(|s| s.to_string()).collect()),
                path_prefix: prefix.map(str::to_string),
            };
            assert_eq!(hint(rule), want, "{rule}");
        }
    }

    #[test]
    fn common_prefix() {
        assert_eq!(common_prefix_len("abc", "abd"), 2);
        assert_eq!(common_prefix_len("ab", "abc"), 2);
        assert_eq!(common_prefix_len("abc", "ab"), 2);
        assert_eq!(common_prefix_len("", "ab"), 0);
        assert_eq!(common_prefix_len("éa", "èa"), 0);
    }
}
