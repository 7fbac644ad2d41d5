//! The rule language: any text gets a result with an in-range column; rules drawn from
//! a small grammar compile and match exactly what a model of them says, whatever the
//! parentheses, quotes and matcher-name case; index hints hold; nesting is bounded.
//! The model and the request generator are shared with the v1 properties.

use std::net::IpAddr;

use gantry::rules::constraints::Constraint;
use gantry::rules::{compile, translate_v1, Matcher, RequestInfo, RuleError};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::select;

use super::{config, noisy_text};

// ---- the model --------------------------------------------------------------------

pub(crate) const HOSTS: &[&str] = &["a.com", "b.com", "api.example.com", "x"];
pub(crate) const RULE_PATHS: &[&str] = &["/", "/a", "/a/", "/ab", "/pkg.Svc/", "/pkg.Svc/Get"];
const REQ_PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/b",
    "/ab",
    "/b",
    "/pkg.Svc/Get",
    "/pkg.Svc/Put",
    "/pkg.Other/Get",
];
pub(crate) const RULE_METHODS: &[&str] = &["GET", "get", "POST", "Put", "DELETE"];
const REQ_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "get"];
pub(crate) const HEADER_NAMES: &[&str] = &["x-a", "X-B"];
pub(crate) const HEADER_VALUES: &[&str] = &["1", "2", "a b"];
pub(crate) const QUERY_KEYS: &[&str] = &["k", "q"];
pub(crate) const QUERY_VALUES: &[&str] = &["1", "2", ""];
const SERVICES: &[&str] = &["pkg.Svc", "pkg.Other"];
const GRPC_METHODS: &[&str] = &["Get", "Put"];
const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.2.3",
    "192.0.2.0/24",
    "::1",
    "2001:db8::/32",
];
const IPS: &[&str] = &[
    "10.1.2.3",
    "10.9.9.9",
    "192.0.2.7",
    "::1",
    "2001:db8::5",
    "::ffff:10.1.2.3",
    "203.0.113.1",
];

/// One matcher call of the grammar.
#[derive(Debug, Clone)]
enum Leaf {
    Host(Vec<String>),
    Path(String),
    PathPrefix(Vec<String>),
    Method(String),
    Header(String, String),
    /// `Query(k, v)`, or `Query(k)` (presence) when the value is `None`.
    Query(String, Option<String>),
    /// The v2 form `Query(`k=v`, …)`: every pair required.
    QueryPairs(Vec<(String, String)>),
    GrpcService(String),
    GrpcMethod(String, String),
    ClientIp(Vec<String>),
}

#[derive(Debug, Clone)]
enum Rule {
    Leaf(Leaf),
    Not(Box<Rule>),
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

/// An owned request to borrow a [`RequestInfo`] from.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) host: String,
    pub(crate) path: String,
    query: Option<String>,
    headers: HeaderMap,
    ip: IpAddr,
}

impl Req {
    pub(crate) fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client_ip: self.ip,
        }
    }

    pub(crate) fn header_is(&self, name: &str, value: &str) -> bool {
        self.headers
            .get_all(name.to_ascii_lowercase())
            .iter()
            .any(|v| v.as_bytes() == value.as_bytes())
    }

    /// Query parameters as (key, value); a key without `=` has the value "".
    pub(crate) fn params(&self) -> Vec<(&str, &str)> {
        self.query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect()
    }
}

fn in_net(net: &str, ip: IpAddr) -> bool {
    let net: IpNet = net
        .parse()
        .unwrap_or_else(|_| IpNet::from(net.parse::<IpAddr>().expect("model net")));
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4))
}

impl Leaf {
    /// What the rule language's documentation says the matcher does.
    fn model(&self, r: &Req) -> bool {
        match self {
            Leaf::Host(hosts) => hosts.iter().any(|h| h.eq_ignore_ascii_case(&r.host)),
            Leaf::Path(p) => &r.path == p,
            Leaf::PathPrefix(ps) => ps.iter().any(|p| r.path.starts_with(p.as_str())),
            Leaf::Method(m) => r.method.as_str() == m.to_ascii_uppercase(),
            Leaf::Header(n, v) => r.header_is(n, v),
            Leaf::Query(k, None) => r.params().iter().any(|(pk, _)| pk == k),
            Leaf::Query(k, Some(v)) => r.params().iter().any(|(pk, pv)| pk == k && pv == v),
            Leaf::QueryPairs(pairs) => pairs
                .iter()
                .all(|(k, v)| r.params().iter().any(|(pk, pv)| pk == k && pv == v)),
            Leaf::GrpcService(s) => r.path.starts_with(&format!("/{s}/")),
            Leaf::GrpcMethod(s, m) => r.path == format!("/{s}/{m}"),
            Leaf::ClientIp(nets) => nets.iter().any(|n| in_net(n, r.ip)),
        }
    }

    /// The call's name and arguments.
    fn call(&self) -> (&'static str, Vec<String>) {
        let pairs = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        match self {
            Leaf::Host(h) => ("Host", h.clone()),
            Leaf::Path(p) => ("Path", vec![p.clone()]),
            Leaf::PathPrefix(p) => ("PathPrefix", p.clone()),
            Leaf::Method(m) => ("Method", vec![m.clone()]),
            Leaf::Header(n, v) => ("Header", vec![n.clone(), v.clone()]),
            Leaf::Query(k, None) => ("Query", vec![k.clone()]),
            Leaf::Query(k, Some(v)) => ("Query", vec![k.clone(), v.clone()]),
            Leaf::QueryPairs(p) => ("Query", pairs(p)),
            Leaf::GrpcService(s) => ("GRPCService", vec![s.clone()]),
            Leaf::GrpcMethod(s, m) => ("GRPCMethod", vec![s.clone(), m.clone()]),
            Leaf::ClientIp(n) => ("ClientIP", n.clone()),
        }
    }
}

impl Rule {
    fn model(&self, r: &Req) -> bool {
        match self {
            Rule::Leaf(l) => l.model(r),
            Rule::Not(x) => !x.model(r),
            Rule::And(xs) => xs.iter().all(|x| x.model(r)),
            Rule::Or(xs) => xs.iter().any(|x| x.model(r)),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Rule::Or(_) => 1,
            Rule::And(_) => 2,
            Rule::Not(_) | Rule::Leaf(_) => 3,
        }
    }
}

/// How a rule is written out; none of it may change what it means.
#[derive(Debug, Clone, Copy)]
struct Style {
    /// Every subexpression in parentheses, not only where precedence needs them.
    redundant: bool,
    /// Double quotes instead of backticks.
    double: bool,
    /// Matcher names in lower case (`pathprefix`), which the language ignores.
    lower: bool,
}

const PLAIN: Style = Style {
    redundant: false,
    double: false,
    lower: false,
};

fn quote(s: &str, double: bool) -> String {
    if double {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("`{s}`")
    }
}

fn render(rule: &Rule, style: Style) -> String {
    let child = |r: &Rule, min: u8| {
        let text = render(r, style);
        if style.redundant || r.precedence() < min {
            format!("({text})")
        } else {
            text
        }
    };
    match rule {
        Rule::Leaf(leaf) => {
            let (name, args) = leaf.call();
            let name = if style.lower {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            };
            let args: Vec<String> = args.iter().map(|a| quote(a, style.double)).collect();
            format!("{name}({})", args.join(", "))
        }
        Rule::Not(x) => format!("!{}", child(x, 3)),
        Rule::And(xs) => xs
            .iter()
            .map(|x| child(x, 3))
            .collect::<Vec<_>>()
            .join(" && "),
        Rule::Or(xs) => xs
            .iter()
            .map(|x| child(x, 2))
            .collect::<Vec<_>>()
            .join(" || "),
    }
}

pub(crate) fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(str::to_string)
}

pub(crate) fn some_of(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(pick(pool), 1..3)
}

fn leaf() -> impl Strategy<Value = Leaf> {
    let pair = (pick(QUERY_KEYS), pick(QUERY_VALUES));
    prop_oneof![
        some_of(HOSTS).prop_map(Leaf::Host),
        pick(RULE_PATHS).prop_map(Leaf::Path),
        some_of(RULE_PATHS).prop_map(Leaf::PathPrefix),
        pick(RULE_METHODS).prop_map(Leaf::Method),
        (pick(HEADER_NAMES), pick(HEADER_VALUES)).prop_map(|(n, v)| Leaf::Header(n, v)),
        (pick(QUERY_KEYS), proptest::option::of(pick(QUERY_VALUES)))
            .prop_map(|(k, v)| Leaf::Query(k, v)),
        proptest::collection::vec(pair, 1..3).prop_map(Leaf::QueryPairs),
        pick(SERVICES).prop_map(Leaf::GrpcService),
        (pick(SERVICES), pick(GRPC_METHODS)).prop_map(|(s, m)| Leaf::GrpcMethod(s, m)),
        some_of(NETS).prop_map(Leaf::ClientIp),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    leaf()
        .prop_map(Rule::Leaf)
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|r| Rule::Not(Box::new(r))),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Rule::And),
                proptest::collection::vec(inner, 2..4).prop_map(Rule::Or),
            ]
        })
}

pub(crate) fn request() -> impl Strategy<Value = Req> {
    let host =
        (pick(HOSTS), any::<bool>()).prop_map(
            |(h, upper)| {
                if upper {
                    h.to_ascii_uppercase()
                } else {
                    h
                }
            },
        );
    let param = (pick(QUERY_KEYS), proptest::option::of(pick(QUERY_VALUES)))
        .prop_map(|(k, v)| v.map_or(k.clone(), |v| format!("{k}={v}")));
    let query =
        proptest::option::of(proptest::collection::vec(param, 0..3).prop_map(|p| p.join("&")));
    let headers = proptest::collection::vec((pick(HEADER_NAMES), pick(HEADER_VALUES)), 0..3);
    (
        pick(REQ_METHODS),
        host,
        pick(REQ_PATHS),
        query,
        headers,
        pick(IPS),
    )
        .prop_map(|(method, host, path, query, headers, ip)| {
            let mut map = HeaderMap::new();
            for (n, v) in headers {
                let name = HeaderName::from_bytes(n.as_bytes()).expect("pool header name");
                map.append(name, HeaderValue::from_str(&v).expect("pool header value"));
            }
            Req {
                method: Method::from_bytes(method.as_bytes()).expect("pool method"),
                host,
                path,
                query,
                headers: map,
                ip: ip.parse().expect("pool ip"),
            }
        })
}

pub(crate) fn compiled(text: &str) -> Result<Matcher, TestCaseError> {
    compile(text).map_err(|e| TestCaseError::fail(format!("{text:?} does not compile: {e}")))
}

/// An error's column is a character of the input, or just past its end.
fn column_in_range(input: &str, e: &RuleError) -> Result<(), TestCaseError> {
    let end = input.chars().count() + 1;
    prop_assert!(
        (1..=end).contains(&e.column),
        "column {} outside 1..={end} for {input:?}: {e}",
        e.column
    );
    let shown = e.to_string();
    let want = format!("column {}: ", e.column);
    prop_assert!(shown.starts_with(&want), "{}", shown);
    prop_assert!(!e.message.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text: `compile`, `translate_v1` and `Constraint::parse` answer without
    /// panicking, errors point inside the input, and a v1 translation compiles.
    #[test]
    fn any_text_gets_an_answer(text in prop_oneof![noisy_text(40), any::<String>()]) {
        if let Err(e) = compile(&text) {
            column_in_range(&text, &e)?;
        }
        match translate_v1(&text) {
            Ok(v2) => { compiled(&v2)?; }
            Err(e) => column_in_range(&text, &e)?,
        }
        if let Err(e) = Constraint::parse(&text) {
            column_in_range(&text, &e)?;
        }
    }

    /// A valid rule with one character deleted, or one fragment inserted, still gets
    /// an answer with an in-range column.
    #[test]
    fn mutated_rules_get_an_answer(
        r in rule(),
        at in any::<prop::sample::Index>(),
        delete in any::<bool>(),
        fragment in noisy_text(3),
    ) {
        let mut chars: Vec<char> = render(&r, PLAIN).chars().collect();
        let i = at.index(chars.len() + 1);
        if delete && i < chars.len() {
            chars.remove(i);
        } else {
            chars.splice(i..i, fragment.chars());
        }
        let text: String = chars.into_iter().collect();
        match compile(&text) {
            Ok(m) => { let _ = m.index_hint(); }
            Err(e) => column_in_range(&text, &e)?,
        }
    }

    /// A rule from the grammar compiles in every style, and each form matches exactly
    /// the requests the model says it does.
    #[test]
    fn valid_rules_match_what_the_model_says(
        r in rule(),
        reqs in proptest::collection::vec(request(), 1..12),
        lower in any::<bool>(),
    ) {
        let forms = [
            PLAIN,
            Style { redundant: true, ..PLAIN },
            Style { double: true, lower, ..PLAIN },
            Style { redundant: true, double: true, lower },
        ];
        for style in forms {
            let text = render(&r, style);
            let m = compiled(&text)?;
            for req in &reqs {
                prop_assert_eq!(
                    m.matches(&req.info()),
                    r.model(req),
                    "rule {} on {:?}", text, req
                );
            }
        }
    }

    /// What an index hint promises holds for every request the rule matches.
    #[test]
    fn index_hints_hold(r in rule(), reqs in proptest::collection::vec(request(), 1..16)) {
        let text = render(&r, PLAIN);
        let m = compiled(&text)?;
        let hint = m.index_hint();
        if let Some(p) = &hint.path_prefix {
            prop_assert!(!p.is_empty());
        }
        for req in reqs.iter().filter(|req| m.matches(&req.info())) {
            if let Some(hosts) = &hint.hosts {
                prop_assert!(
                    hosts.contains(&req.host.to_ascii_lowercase()),
                    "{} matched host {} outside its hint {:?}", text, req.host, hosts
                );
            }
            if let Some(prefix) = &hint.path_prefix {
                prop_assert!(
                    req.path.starts_with(prefix.as_str()),
                    "{} matched path {} outside its hint {}", text, req.path, prefix
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Nesting is bounded: up to the limit a rule compiles, past it the answer is an
    /// error at the first `(` or `!` too many, never a stack overflow.
    #[test]
    fn deep_nesting_is_an_error_not_a_crash(depth in 0usize..3000, bang in any::<bool>()) {
        let open = if bang { "!" } else { "(" };
        let close = if bang { "" } else { ")" };
        let text = format!("{}Host(`a`){}", open.repeat(depth), close.repeat(depth));
        match compile(&text) {
            Ok(_) => prop_assert!(depth <= 64, "depth {} compiled", depth),
            Err(e) => {
                prop_assert!(depth > 64, "depth {} refused: {}", depth, e);
                prop_assert_eq!(e.column, 65);
            }
        }
    }
}
