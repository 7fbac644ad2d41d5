//! The rule language: Traefik v2/v3 HTTP router rules such as
//! ``Host(`api.example.com`) && PathPrefix(`/v1`)``, compiled once into a
//! [`Matcher`] that is evaluated per request without parsing or allocating
//! (only `Query` matchers may allocate, to percent-decode).
//!
//! Semantics, for operators reading rules:
//! - `Host(h, ...)`: host equals one of them, ignoring ASCII case.
//! - `HostRegexp(re, ...)`: the whole host matches (anchored, ignoring
//!   case); v2 templates `{name}` / `{name:re}` are accepted.
//! - `Path(p, ...)` exact; `PathPrefix(p, ...)` starts-with; both must start
//!   with `/` and accept v2 templates. `PathRegexp(re)` is anchored at the
//!   start only.
//! - `Method(m, ...)`: the rule's method is uppercased, the request's is
//!   compared exactly.
//! - `Header(name, value)`: some value of the header equals `value`;
//!   `HeaderRegexp(name, re)`: some value contains a match (unanchored).
//! - `Query(k, v)`, `Query(k)` (present), v2 `Query(`k=v`, ...)` (all);
//!   `QueryRegexp(k, re)` (unanchored), on decoded parameters.
//! - `ClientIP(ip-or-cidr, ...)`; IPv4-mapped IPv6 peers match IPv4 nets.
//! - `GRPCService(svc)` = ``PathPrefix(`/svc/`)``; `GRPCMethod(svc, m)` =
//!   ``Path(`/svc/m`)``.
//! - `!`, `&&`, `||` (`&&` binds tighter), parentheses; matcher names ignore
//!   case; `Headers`, `HeadersRegexp` and `HostHeader` are v2 aliases.
//!
//! Layout: `lexer` and `parse` turn text into a language-neutral AST;
//! `compile` gives it HTTP meaning as a `node::Node` tree (evaluated in
//! `node`, with `query` and `template` helpers); `hint` derives
//! [`IndexHint`]s; `v1` translates Traefik v1 `frontend.rule`s; and
//! [`constraints`] reuses the parser for provider constraints over labels.

use std::net::IpAddr;

mod compile;
pub mod constraints;
mod hint;
mod lexer;
mod node;
mod parse;
mod query;
mod template;
mod v1;

#[cfg(test)]
mod tests;

pub use hint::IndexHint;

/// What a compiled rule can look at in a request; borrowed, built once per request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// Host from `:authority` or `Host`, without the port; as sent (case not folded).
    pub host: &'a str,
    /// The request path, without the query.
    pub path: &'a str,
    /// The raw query string without `?`, if any.
    pub query: Option<&'a str>,
    /// All request headers.
    pub headers: &'a http::HeaderMap,
    /// The peer's address (IPv4-mapped IPv6 addresses also match IPv4 networks).
    pub client_ip: IpAddr,
}

/// A rule error, naming the 1-based column (in characters) where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct RuleError {
    /// 1-based column, counted in characters, of the offending token.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: node::Node,
}

impl Matcher {
    /// Whether the request matches the rule.
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.root.matches(req)
    }

    /// What the rule guarantees about the host and path of matching
    /// requests, for indexing many routers (see [`IndexHint`]).
    pub fn index_hint(&self) -> IndexHint {
        hint::index_hint(&self.root)
    }
}

/// Parses and compiles a v2/v3 rule.
///
/// Matcher names are case-insensitive. Besides the v3 matchers this accepts
/// the v2 forms: several values per `Host`/`HostRegexp`/`Path`/`PathPrefix`/
/// `Method`/`ClientIP` (any of them), `Headers`/`HeadersRegexp`/`HostHeader`,
/// `Query(`k=v`)`, and `{name}`/`{name:re}` templates in hosts and paths.
pub fn compile(rule: &str) -> Result<Matcher, RuleError> {
    let expr = parse::parse(rule)?;
    Ok(Matcher {
        root: compile::compile_expr(&expr)?,
    })
}

/// Translates a Traefik v1 `frontend.rule` (`Host:a.com,b.com;PathPrefix:/x`) into v2/v3 syntax.
///
/// The result always compiles with [`compile()`]. Columns in errors refer to
/// the v1 input.
pub fn translate_v1(rule: &str) -> Result<String, RuleError> {
    v1::translate(rule)
}

/// One line describing a regex error (the `regex` crate's own message spans
/// several lines, with a caret diagram that would not line up in ours).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}
