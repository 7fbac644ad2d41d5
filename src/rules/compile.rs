//! The HTTP rule language: which matcher names exist, what their arguments
//! mean, and turning the parsed AST into a [`Node`] tree with every string
//! pre-parsed (regexes, header names, methods, networks), so errors surface
//! at compile time with the column of the offending argument.

use http::header::{HeaderName, HeaderValue};
use ipnet::IpNet;

use super::node::Node;
use super::parse::{Arg, Call, Expr};
use super::{regex_error, template, RuleError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    HostRegexp,
    Path,
    PathPrefix,
    PathRegexp,
    Method,
    Header,
    HeaderRegexp,
    Query,
    QueryRegexp,
    ClientIp,
    GrpcService,
    GrpcMethod,
}

/// Canonical names first (they are what the "known matchers" list shows),
/// then the Traefik v2 aliases. Lookup ignores ASCII case, as Traefik v2 did.
const NAMES: &[(&str, Kind)] = &[
    ("Host", Kind::Host),
    ("HostRegexp", Kind::HostRegexp),
    ("Path", Kind::Path),
    ("PathPrefix", Kind::PathPrefix),
    ("PathRegexp", Kind::PathRegexp),
    ("Method", Kind::Method),
    ("Header", Kind::Header),
    ("HeaderRegexp", Kind::HeaderRegexp),
    ("Query", Kind::Query),
    ("QueryRegexp", Kind::QueryRegexp),
    ("ClientIP", Kind::ClientIp),
    ("GRPCService", Kind::GrpcService),
    ("GRPCMethod", Kind::GrpcMethod),
    ("HostHeader", Kind::Host),
    ("Headers", Kind::Header),
    ("HeadersRegexp", Kind::HeaderRegexp),
];
const CANONICAL: usize = 13;

/// Compiles a parsed expression, flattening nested `&&`/`||` so that
/// evaluation and index hints see one level per combinator.
pub(crate) fn compile_expr(expr: &Expr) -> Result<Node, RuleError> {
    Ok(match expr {
        Expr::Call(call) => compile_call(call)?,
        Expr::Not(inner) => Node::Not(Box::new(compile_expr(inner)?)),
        Expr::And(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match compile_expr(item)? {
                    Node::And(nested) => out.extend(nested.into_vec()),
                    node => out.push(node),
                }
            }
            Node::And(out.into())
        }
        Expr::Or(items) => any_of(
            items
                .iter()
                .map(compile_expr)
                .collect::<Result<Vec<_>, _>>()?,
        ),
    })
}

/// OR of several nodes, flattened; a single node stands alone.
fn any_of(nodes: Vec<Node>) -> Node {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::Or(nested) => out.extend(nested.into_vec()),
            node => out.push(node),
        }
    }
    if out.len() == 1 {
        out.swap_remove(0)
    } else {
        Node::Or(out.into())
    }
}

fn compile_call(call: &Call) -> Result<Node, RuleError> {
    let Some(&(name, kind)) = NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&call.name))
    else {
        let known: Vec<&str> = NAMES.iter().take(CANONICAL).map(|(n, _)| *n).collect();
        return Err(RuleError {
            column: call.column,
            message: format!(
                "unknown matcher `{}`; known matchers: {}",
                call.name,
                known.join(", ")
            ),
        });
    };
    let c = Ctx { call, name };
    match kind {
        Kind::Host => c.each("host names", |a| {
            Ok(Node::Host(c.non_empty(a)?.to_ascii_lowercase().into()))
        }),
        Kind::HostRegexp => c.each("regexes", |a| c.host_regexp(a)),
        Kind::Path => c.each("paths", |a| c.path(a, true)),
        Kind::PathPrefix => c.each("paths", |a| c.path(a, false)),
        Kind::PathRegexp => {
            let [a] = c.exactly("regex")?;
            let v = c.non_empty(a)?;
            c.regex(a, v, &format!("^(?:{v})"), false)
                .map(Node::PathRegexp)
        }
        Kind::Method => c.each("methods", |a| c.method(a)),
        Kind::Header => {
            let [name, value] = c.exactly("name, value")?;
            let name = c.header_name(name)?;
            HeaderValue::from_str(&value.value)
                .map_err(|_| c.error(value, "not a valid header value".to_string()))?;
            Ok(Node::Header(name, value.value.as_bytes().into()))
        }
        Kind::HeaderRegexp => {
            let [name, a] = c.exactly("name, regex")?;
            let name = c.header_name(name)?;
            let re = regex::bytes::RegexBuilder::new(c.non_empty(a)?)
                .build()
                .map_err(|e| c.error(a, format!("invalid regex: {}", regex_error(&e))))?;
            Ok(Node::HeaderRegexp(name, re))
        }
        Kind::Query => c.query(),
        Kind::QueryRegexp => {
            let [key, a] = c.exactly("key, regex")?;
            let key = c.non_empty(key)?;
            let re = c.regex(a, c.non_empty(a)?, &a.value, false)?;
            Ok(Node::QueryRegexp(key.into(), re))
        }
        Kind::ClientIp => c.each("IPs or CIDR networks", |a| c.client_ip(a)),
        Kind::GrpcService => {
            let [svc] = c.exactly("service")?;
            let svc = c.grpc_name(svc)?;
            Ok(Node::PathPrefix(format!("/{svc}/").into()))
        }
        Kind::GrpcMethod => {
            let [svc, method] = c.exactly("service, method")?;
            let svc = c.grpc_name(svc)?;
            let method = c.grpc_name(method)?;
            Ok(Node::Path(format!("/{svc}/{method}").into()))
        }
    }
}

/// The call being compiled, for argument checks that name it in errors.
struct Ctx<'a> {
    call: &'a Call,
    /// Canonical spelling, used in messages.
    name: &'static str,
}

impl<'a> Ctx<'a> {
    fn error(&self, arg: &Arg, message: String) -> RuleError {
        RuleError {
            column: arg.column,
            message: format!("`{}`: {message}", self.name),
        }
    }

    /// The error for a wrong argument count: too many points at the first
    /// extra argument, too few at the matcher's name.
    fn arity_error(&self, min: usize, max: Option<usize>, what: &str) -> RuleError {
        let got = self.call.args.len();
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        let expected = match max {
            Some(max) if max == min => format!("{min} {}", plural(min)),
            Some(max) => format!("{min} to {max} arguments"),
            None => format!("at least {min} {}", plural(min)),
        };
        let extra = max.and_then(|max| self.call.args.get(max));
        RuleError {
            column: extra.map_or(self.call.column, |a| a.column),
            message: format!("`{}` takes {expected} ({what}), got {got}", self.name),
        }
    }

    /// Exactly `N` arguments.
    fn exactly<const N: usize>(&self, what: &str) -> Result<&'a [Arg; N], RuleError> {
        <&[Arg; N]>::try_from(self.call.args.as_slice())
            .map_err(|_| self.arity_error(N, Some(N), what))
    }

    /// One or more arguments, each compiled by `f`, any of which may match
    /// (Traefik v2 allowed several values for most matchers).
    fn each(
        &self,
        what: &str,
        f: impl Fn(&Arg) -> Result<Node, RuleError>,
    ) -> Result<Node, RuleError> {
        if self.call.args.is_empty() {
            return Err(self.arity_error(1, None, what));
        }
        let nodes = self.call.args.iter().map(f).collect::<Result<_, _>>()?;
        Ok(any_of(nodes))
    }

    fn non_empty<'v>(&self, arg: &'v Arg) -> Result<&'v str, RuleError> {
        if arg.value.is_empty() {
            return Err(self.error(arg, "empty argument where a value is required".to_string()));
        }
        Ok(&arg.value)
    }

    /// `Path` (`exact`) or `PathPrefix`; a v2 template such as
    /// `/users/{id:[0-9]+}` becomes an anchored regex.
    fn path(&self, arg: &Arg, exact: bool) -> Result<Node, RuleError> {
        let v = self.non_empty(arg)?;
        if !v.starts_with('/') {
            return Err(self.error(arg, format!("path `{v}` must start with `/`")));
        }
        if template::is_template(v) {
            let re = template::to_regex(v, "[^/]+").map_err(|m| self.error(arg, m))?;
            let end = if exact { "$" } else { "" };
            return self
                .regex(arg, &re, &format!("^(?:{re}){end}"), false)
                .map(Node::PathRegexp);
        }
        Ok(if exact {
            Node::Path(v.into())
        } else {
            Node::PathPrefix(v.into())
        })
    }

    /// Anchored and case-insensitive; v2 templates (`{sub}.example.com`) are
    /// recognised and their literal parts escaped.
    fn host_regexp(&self, arg: &Arg) -> Result<Node, RuleError> {
        let v = self.non_empty(arg)?;
        let pattern = if template::is_template(v) {
            template::to_regex(v, "[^.]+").map_err(|m| self.error(arg, m))?
        } else {
            v.to_string()
        };
        self.regex(arg, &pattern, &format!("^(?:{pattern})$"), true)
            .map(Node::HostRegexp)
    }

    fn method(&self, arg: &Arg) -> Result<Node, RuleError> {
        // Traefik uppercases the rule's method; the request's method is then
        // compared exactly, as HTTP methods are case-sensitive.
        let upper = self.non_empty(arg)?.to_ascii_uppercase();
        http::Method::from_bytes(upper.as_bytes())
            .map(Node::Method)
            .map_err(|_| self.error(arg, format!("`{}` is not a valid HTTP method", arg.value)))
    }

    fn client_ip(&self, arg: &Arg) -> Result<Node, RuleError> {
        let v = self.non_empty(arg)?;
        let net = match v.parse::<IpNet>() {
            // Host bits set in the rule (`10.1.2.3/8`) are ignored.
            Ok(net) => net.trunc(),
            Err(_) => v
                .parse::<std::net::IpAddr>()
                .map(IpNet::from)
                .map_err(|_| {
                    self.error(arg, format!("`{v}` is not an IP address or CIDR network"))
                })?,
        };
        Ok(Node::ClientIp(net))
    }

    fn header_name(&self, arg: &Arg) -> Result<HeaderName, RuleError> {
        let v = self.non_empty(arg)?;
        HeaderName::from_bytes(v.as_bytes())
            .map_err(|_| self.error(arg, format!("`{v}` is not a valid header name")))
    }

    fn grpc_name<'v>(&self, arg: &'v Arg) -> Result<&'v str, RuleError> {
        let v = self.non_empty(arg)?;
        if v.contains('/') || v.chars().any(char::is_whitespace) {
            return Err(self.error(arg, format!("`{v}` must not contain `/` or spaces")));
        }
        Ok(v)
    }

    /// Compiles `full`, the user's `pattern` wrapped in a group with anchors.
    /// `pattern` is compiled on its own first: errors then describe what the
    /// user wrote, and a pattern that is only valid once wrapped (such as
    /// `a)|(?:b`, which would escape the anchors) is rejected.
    fn regex(
        &self,
        arg: &Arg,
        pattern: &str,
        full: &str,
        case_insensitive: bool,
    ) -> Result<regex::Regex, RuleError> {
        let build = |p: &str| {
            regex::RegexBuilder::new(p)
                .case_insensitive(case_insensitive)
                .build()
        };
        build(pattern)
            .and_then(|_| build(full))
            .map_err(|e| self.error(arg, format!("invalid regex: {}", regex_error(&e))))
    }

    /// `Query(k, v)` (v3), `Query(k)` (presence), or the v2 forms
    /// `Query(`k=v`)` and `Query(`a=1`, `b=2`)` (all pairs required).
    fn query(&self) -> Result<Node, RuleError> {
        let what = "key, value";
        match self.call.args.as_slice() {
            [first, ..] if first.value.contains('=') => self.query_v2(),
            [key] => Ok(Node::Query(self.non_empty(key)?.into(), None)),
            [key, value] => Ok(Node::Query(
                self.non_empty(key)?.into(),
                Some(value.value.as_str().into()),
            )),
            _ => Err(self.arity_error(1, Some(2), what)),
        }
    }

    /// `Query(`k=v`, ...)`: every pair must be present, as gorilla/mux did.
    fn query_v2(&self) -> Result<Node, RuleError> {
        let mut pairs = Vec::with_capacity(self.call.args.len());
        for a in &self.call.args {
            let Some((key, value)) = a.value.split_once('=') else {
                return Err(self.error(a, "expected `key=value` like the first argument".into()));
            };
            if key.is_empty() {
                return Err(self.error(a, format!("empty key in `{}`", a.value)));
            }
            pairs.push(Node::Query(key.into(), Some(value.into())));
        }
        Ok(if pairs.len() == 1 {
            pairs.swap_remove(0)
        } else {
            Node::And(pairs.into())
        })
    }
}
