//! Reads one task's labels into typed, per-object settings.
//!
//! This step only looks at label keys and values, one label at a time: it sorts each
//! `<prefix>.` label into the router, service or task it is about and parses its value.
//! A value that does not parse is kept as an `Err` in its slot rather than reported
//! straight away, because a Traefik v1 value is only in effect when no v2 label sets the
//! same field (see [`super::v1`]); [`super::resolve`] reports the values in effect.
//!
//! Keywords in keys (`http`, `routers`, `rule`, `entryPoints`, …) match case-insensitively,
//! as in Traefik; router and service names are taken as written.

use std::collections::BTreeMap;

use crate::dynamic::{Scheme, Severity};
use crate::provider::Task;

use super::middleware::{self, MiddlewareLabels};
use super::v1::V1Labels;

/// A problem with labels, before it is tied to an object, task and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The full label key at fault, when one is.
    pub label: Option<String>,
    pub message: String,
    /// An error disables the object it is attached to; a warning disables nothing.
    pub severity: Severity,
}

impl Problem {
    /// A problem caused by one label.
    pub(crate) fn at(label: &str, message: impl Into<String>) -> Problem {
        Problem::new(Some(label.to_string()), message)
    }

    /// A label that was ignored and restricts nothing: listed, disables nothing.
    pub(crate) fn ignored(label: &str, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::at(label, message)
        }
    }

    /// A problem no single label is to blame for (e.g. a missing setting).
    pub(crate) fn general(message: impl Into<String>) -> Problem {
        Problem::new(None, message)
    }

    /// A problem with a value, from the label it came from (if any).
    pub(crate) fn new(label: Option<String>, message: impl Into<String>) -> Problem {
        Problem {
            label,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    pub(crate) fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// One setting read from a label: the label it came from and its parsed value, or
/// why the value is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Value<T> {
    /// `None` when the value is implied rather than written (v1 router → its backend).
    pub label: Option<String>,
    pub parsed: Result<T, String>,
}

impl<T> Value<T> {
    pub(crate) fn from_label(label: &str, parsed: Result<T, String>) -> Value<T> {
        Value {
            label: Some(label.to_string()),
            parsed,
        }
    }
}

/// What a task's labels say about one router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RouterLabels {
    pub rule: Option<Value<String>>,
    pub priority: Option<Value<i64>>,
    pub service: Option<Value<String>>,
    pub entry_points: Option<Value<Vec<String>>>,
    pub tls: Option<Value<bool>>,
    pub retry_attempts: Option<Value<u32>>,
    pub retry_codes: Option<Value<crate::telemetry::codes::CodeSet>>,
    pub retry_methods: Option<Value<Vec<String>>>,
    /// Keys of Traefik `tls.*` options (`tls.certresolver`, `tls.options`,
    /// `tls.domains[n].main|sans`): each one implies `tls=true`. Their values are not
    /// used: certificates come from the entrypoint's static TLS configuration.
    pub tls_options: Vec<String>,
    /// The middlewares the router applies, in order (`name` or `name@provider`).
    pub middlewares: Option<Value<Vec<String>>>,
    /// Labels that break the router whatever else is set (unknown keys).
    pub problems: Vec<Problem>,
}

/// What a task's labels say about one service (its `loadbalancer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceLabels {
    pub port: Option<Value<u16>>,
    pub scheme: Option<Value<Scheme>>,
    pub weight: Option<Value<u32>>,
    pub pass_host_header: Option<Value<bool>>,
    /// Strategy, stickiness, hashing and health-check labels.
    pub balancing: super::balancing::BalancingLabels,
    /// A version split: child service → weight
    /// (`<prefix>.http.services.<name>.weighted.services.<child>.weight`).
    pub weighted: BTreeMap<String, Value<u32>>,
    /// Labels that break the service whatever else is set (unknown keys).
    pub problems: Vec<Problem>,
}

/// Everything one task's labels say, v1 labels already folded in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TaskLabels {
    pub routers: BTreeMap<String, RouterLabels>,
    pub services: BTreeMap<String, ServiceLabels>,
    /// Middleware definitions, by name.
    pub middlewares: BTreeMap<String, MiddlewareLabels>,
    /// Problems with the task as a whole (TCP, ignored labels).
    pub problems: Vec<Problem>,
    /// Problems every router of the task carries: a label that could restrict any of
    /// them was not understood, so none is served (fail closed).
    pub router_problems: Vec<Problem>,
    /// The task has `<prefix>.tcp.*` or `<prefix>.udp.*` labels. Like Traefik, a task
    /// that only describes TCP/UDP routing gets no default HTTP router and service.
    pub has_tcp_udp: bool,
}

/// Settings a router label may name, for messages.
const ROUTER_KEYS: &str = "rule, priority, service, entrypoints, tls, middlewares, \
     retry.attempts, retry.codes, retry.methods";
/// Settings a service label may name, for messages.
const SERVICE_KEYS: &str = "server.port, server.scheme, server.weight, passhostheader, \
     responseforwarding.flushinterval, strategy, hash.header, \
     sticky.cookie[.name|.secure|.httponly|.samesite|.maxage], healthcheck.*, outlier.*, \
     zone.*, tls.*";

/// The part of `key` after `<prefix>.`, when the key starts with it (ASCII
/// case-insensitive, like Traefik's label decoder).
pub(crate) fn strip_prefix<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    let rest = key.get(prefix.len()..)?;
    if head.eq_ignore_ascii_case(prefix) {
        rest.strip_prefix('.')
    } else {
        None
    }
}

/// Sorts every `<prefix>.` label of `task` into the object it is about. `<prefix>.enable`
/// is skipped: exposure is decided before this runs.
pub(crate) fn parse_task(task: &Task, prefix: &str) -> TaskLabels {
    let mut out = TaskLabels::default();
    let mut v1 = V1Labels::default();
    let mut has_v2 = false;
    for (key, value) in &task.labels {
        let Some(rest) = strip_prefix(key, prefix) else {
            continue;
        };
        let segments: Vec<&str> = rest.split('.').collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        if matches!(lower.first(), Some(&("http" | "tcp" | "udp"))) {
            has_v2 = true;
        }
        let other = other_provider(&lower);
        match lower.as_slice() {
            ["enable"] => {}
            ["http", "routers", ..] => router_label(&mut out, key, &segments[2..], value),
            ["http", "services", ..] => service_label(&mut out, key, &segments[2..], value),
            ["http", "middlewares", ..] => middleware_label(&mut out, key, &segments[2..], value),
            ["tcp" | "udp", ..] => {
                out.has_tcp_udp = true;
                out.problems
                    .push(Problem::at(key, "TCP/UDP routing is not supported"));
            }
            _ if other.is_some() => {
                let provider = other.unwrap_or_default();
                out.problems.push(Problem::ignored(
                    key,
                    format!("ignored: a label of Traefik's {provider}, which means nothing on ECS"),
                ));
            }
            _ => {
                if !v1.take(key, &segments, &lower, value, &mut out.problems) {
                    out.router_problems.push(Problem::at(
                        key,
                        format!(
                            "unknown label {key:?}: the task's routers are disabled rather \
                             than served without what it may ask for (known: {prefix}.enable, \
                             {prefix}.http.routers.<name>.<setting>, \
                             {prefix}.http.services.<name>.loadbalancer.<setting>, and v1 \
                             {prefix}.frontend.*, backend[.*], port, protocol, weight, domain, \
                             <segment>.*)"
                        ),
                    ));
                }
            }
        }
    }
    super::v1::apply(task, v1, has_v2, &mut out);
    out
}

/// Which other Traefik provider a label (`lower`, after the prefix) belongs to, if it
/// is one of theirs: such labels mean nothing on ECS and restrict nothing.
fn other_provider(lower: &[&str]) -> Option<&'static str> {
    Some(match (*lower.first()?, lower.len()) {
        ("docker", _) => "Docker provider",
        ("swarm", _) => "Swarm provider",
        ("consulcatalog", _) => "Consul Catalog provider",
        ("nomad", _) => "Nomad provider",
        ("marathon", _) => "Marathon provider",
        ("rancher", _) => "Rancher provider",
        ("mesos", _) => "Mesos provider",
        ("kubernetes", _) => "Kubernetes provider",
        ("tags", 1) => "constraints (tags)",
        ("constraint-label", 1) => "constraints (constraint-label)",
        _ => return None,
    })
}

/// One `<prefix>.http.routers.<name>.<setting…>` label; `rest` starts at `<name>`.
fn router_label(out: &mut TaskLabels, key: &str, rest: &[&str], value: &str) {
    let Some((name, setting)) = rest.split_first().filter(|(name, _)| !name.is_empty()) else {
        out.problems.push(Problem::at(
            key,
            "missing router name: expected <prefix>.http.routers.<name>.<setting>",
        ));
        return;
    };
    let router = out.routers.entry((*name).to_string()).or_default();
    let setting: Vec<String> = setting.iter().map(|s| s.to_ascii_lowercase()).collect();
    let setting: Vec<&str> = setting.iter().map(String::as_str).collect();
    let problems = &mut router.problems;
    match setting.as_slice() {
        ["rule"] => set(&mut router.rule, key, parse_rule(value), problems),
        ["priority"] => set(&mut router.priority, key, parse_priority(value), problems),
        ["service"] => set(&mut router.service, key, parse_name(value), problems),
        ["entrypoints"] => set(
            &mut router.entry_points,
            key,
            parse_entry_points(value),
            problems,
        ),
        ["tls"] => set(&mut router.tls, key, parse_bool(value), problems),
        ["retry", "attempts"] => set(
            &mut router.retry_attempts,
            key,
            parse_attempts(value),
            problems,
        ),
        ["retry", "codes"] => set(
            &mut router.retry_codes,
            key,
            crate::telemetry::codes::CodeSet::parse(value),
            problems,
        ),
        ["retry", "methods"] => set(
            &mut router.retry_methods,
            key,
            parse_methods(value),
            problems,
        ),
        ["tls", "certresolver" | "options"] => router.tls_options.push(key.to_string()),
        ["tls", domain, "main" | "sans"] if is_indexed(domain, "domains") => {
            router.tls_options.push(key.to_string())
        }
        ["middlewares"] => set(
            &mut router.middlewares,
            key,
            middleware::parse_list(value),
            problems,
        ),
        [] => problems.push(Problem::at(
            key,
            format!("missing router setting after the name (expected one of: {ROUTER_KEYS})"),
        )),
        _ => problems.push(Problem::at(
            key,
            format!("unknown router label {key:?} (router settings: {ROUTER_KEYS}, tls.*)"),
        )),
    }
}

/// One `<prefix>.http.middlewares.<name>.<type>.<option…>` label; `rest` starts at
/// `<name>`.
fn middleware_label(out: &mut TaskLabels, key: &str, rest: &[&str], value: &str) {
    let Some((name, rest)) = rest.split_first().filter(|(name, _)| !name.is_empty()) else {
        out.problems.push(Problem::at(
            key,
            "missing middleware name: expected \
             <prefix>.http.middlewares.<name>.<type>.<option>=<value>",
        ));
        return;
    };
    out.middlewares
        .entry((*name).to_string())
        .or_default()
        .add(key, rest, value);
}

/// One `<prefix>.http.services.<name>.<…>` label; `rest` starts at `<name>`.
fn service_label(out: &mut TaskLabels, key: &str, rest: &[&str], value: &str) {
    let Some((name, setting)) = rest.split_first().filter(|(name, _)| !name.is_empty()) else {
        out.problems.push(Problem::at(
            key,
            "missing service name: expected <prefix>.http.services.<name>.loadbalancer.<setting>",
        ));
        return;
    };
    let service = out.services.entry((*name).to_string()).or_default();
    let setting: Vec<String> = setting.iter().map(|s| s.to_ascii_lowercase()).collect();
    let setting: Vec<&str> = setting.iter().map(String::as_str).collect();
    let problems = &mut service.problems;
    match setting.as_slice() {
        ["loadbalancer", "server", "port"] => {
            set(&mut service.port, key, parse_port(value), problems)
        }
        ["loadbalancer", "server", "scheme"] => {
            set(&mut service.scheme, key, parse_scheme(value), problems)
        }
        ["loadbalancer", "server", "weight"] => {
            set(&mut service.weight, key, parse_weight(value), problems)
        }
        ["loadbalancer", "passhostheader"] => set(
            &mut service.pass_host_header,
            key,
            parse_bool(value),
            problems,
        ),
        ["loadbalancer", rest @ ..] if super::balancing::is_balancing(rest) => {
            service.balancing.add(key, rest, value, problems)
        }
        ["weighted", "services", _, "weight"] => {
            // The child's name as written (names are case-sensitive).
            let child = rest.get(3).copied().unwrap_or_default().to_string();
            match service.weighted.get(&child) {
                Some(first) => problems.push(Problem::at(
                    key,
                    format!(
                        "set twice: also set by label {:?}",
                        first.label.as_deref().unwrap_or("")
                    ),
                )),
                None => {
                    service
                        .weighted
                        .insert(child, Value::from_label(key, parse_weight(value)));
                }
            }
        }
        ["weighted", ..] => problems.push(Problem::at(
            key,
            format!(
                "unknown weighted-service label {key:?}: write \
                 <prefix>.http.services.<name>.weighted.services.<service>.weight=<n>"
            ),
        )),
        ["loadbalancer", ..] => problems.push(Problem::at(
            key,
            format!("unknown service label {key:?} (load balancer settings: {SERVICE_KEYS})"),
        )),
        _ => problems.push(Problem::at(
            key,
            format!(
                "unknown service label {key:?}: only load balancer services are supported \
                 (<prefix>.http.services.<name>.loadbalancer.<setting>)"
            ),
        )),
    }
}

/// Whether `segment` is `<word>[<digits>]` (Traefik's list syntax, e.g. `domains[0]`).
fn is_indexed(segment: &str, word: &str) -> bool {
    segment
        .strip_prefix(word)
        .and_then(|s| s.strip_prefix('['))
        .and_then(|s| s.strip_suffix(']'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Fills `slot` from `label`, unless another label (the same key in another case)
/// already did: that is reported rather than silently picking one.
pub(crate) fn set<T>(
    slot: &mut Option<Value<T>>,
    label: &str,
    parsed: Result<T, String>,
    problems: &mut Vec<Problem>,
) {
    match slot {
        Some(first) => problems.push(Problem::at(
            label,
            format!(
                "set twice: also set by label {:?}",
                first.label.as_deref().unwrap_or("")
            ),
        )),
        None => *slot = Some(Value::from_label(label, parsed)),
    }
}

/// A rule: any non-blank text; [`crate::rules::compile`] checks it later, once per router.
pub(crate) fn parse_rule(value: &str) -> Result<String, String> {
    let rule = value.trim();
    if rule.is_empty() {
        Err("empty rule: expected a rule such as PathPrefix(`/`)".to_string())
    } else {
        Ok(rule.to_string())
    }
}

/// A router priority: any `i64`, negative included.
pub(crate) fn parse_priority(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("invalid priority {value:?}: expected an integer"))
}

/// A server port: 1-65535.
pub(crate) fn parse_port(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!(
            "invalid port {value:?}: expected an integer 1-65535"
        )),
    }
}

/// A server weight: 0 (no traffic) to `u32::MAX`.
pub(crate) fn parse_weight(value: &str) -> Result<u32, String> {
    value.trim().parse().map_err(|_| {
        format!(
            "invalid weight {value:?}: expected an integer 0-{}",
            u32::MAX
        )
    })
}

/// A server scheme: `http`, `h2c` or `https`, any case.
pub(crate) fn parse_scheme(value: &str) -> Result<Scheme, String> {
    Scheme::parse(value)
        .ok_or_else(|| format!("invalid scheme {value:?}: expected http, h2c or https"))
}

/// A boolean. Accepts what Go's `strconv.ParseBool` accepts (`true`, `false`, `1`, `0`,
/// `t`, `f`), in any case, so Traefik task definitions keep working.
pub(crate) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Ok(true),
        "false" | "f" | "0" => Ok(false),
        _ => Err(format!("invalid boolean {value:?}: expected true or false")),
    }
}

/// An object name (a router's `service`, a v1 `backend`): non-blank, trimmed.
pub(crate) fn parse_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        Err("empty value: expected a service name".to_string())
    } else {
        Ok(name.to_string())
    }
}

/// Comma-separated entrypoint names, trimmed, none empty. Sorted and deduplicated: the
/// order means nothing, and two tasks listing the same set must not conflict.
/// Retry attempts after the first: 1 to 5 (more only multiplies load on a sick
/// service).
fn parse_attempts(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(n @ 1..=5) => Ok(n),
        _ => Err(format!(
            "{value:?} is not a number of retry attempts (1 to 5)"
        )),
    }
}

/// gRPC methods (`/pkg.Svc/Method`) or whole services (`/pkg.Svc/`), comma-separated.
fn parse_methods(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for m in value.split(',') {
        let m = m.trim();
        let ok = m.len() > 2
            && m.starts_with('/')
            && m[1..].split('/').count() == 2
            && !m[1..].starts_with('/')
            && !m
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
        if !ok {
            return Err(format!(
                "{m:?} is not a gRPC method (/pkg.Service/Method) or service (/pkg.Service/)"
            ));
        }
        out.push(m.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) fn parse_entry_points(value: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in value.split(',') {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!(
                "invalid entrypoints {value:?}: expected comma-separated, non-empty entrypoint names"
            ));
        }
        names.push(name.to_string());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_values() {
        assert_eq!(parse_attempts("2"), Ok(2));
        for bad in ["0", "6", "x", ""] {
            assert!(parse_attempts(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_methods(" /pkg.Svc/Get, /pkg.Other/ ,/pkg.Svc/Get"),
            Ok(vec!["/pkg.Other/".to_string(), "/pkg.Svc/Get".to_string()])
        );
        for bad in [
            "pkg.Svc/Get",
            "/",
            "//x",
            "/a/b/c",
            "/pkg.Svc/Get,",
            "/a b/c",
        ] {
            assert!(parse_methods(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_port(" 8080 "), Ok(8080));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["0", "65536", "80a", "", "-1"] {
            assert_eq!(
                parse_port(bad),
                Err(format!("invalid port {bad:?}: expected an integer 1-65535"))
            );
        }
        assert_eq!(parse_weight("0"), Ok(0));
        assert!(parse_weight("-1")
            .unwrap_err()
            .contains("expected an integer 0-4294967295"));
        assert_eq!(parse_priority("-5"), Ok(-5));
        assert!(parse_priority("high")
            .unwrap_err()
            .contains("expected an integer"));
        assert_eq!(parse_scheme("H2C"), Ok(Scheme::H2c));
        assert!(parse_scheme("grpc")
            .unwrap_err()
            .contains("expected http, h2c or https"));
        for (input, want) in [("TRUE", true), ("false", false), ("1", true), ("f", false)] {
            assert_eq!(parse_bool(input), Ok(want), "{input}");
        }
        assert!(parse_bool("yes")
            .unwrap_err()
            .contains("expected true or false"));
        assert_eq!(
            parse_entry_points(" websecure, web,web "),
            Ok(vec!["web".to_string(), "websecure".to_string()])
        );
        assert!(parse_entry_points("web,,b").is_err());
        assert!(parse_entry_points("").is_err());
        assert!(parse_rule("  ").is_err());
        assert!(parse_name(" ").is_err());
    }

    #[test]
    fn prefix_is_case_insensitive_and_needs_a_dot() {
        assert_eq!(strip_prefix("traefik.enable", "traefik"), Some("enable"));
        assert_eq!(strip_prefix("Traefik.http", "traefik"), Some("http"));
        assert_eq!(strip_prefix("traefikx.enable", "traefik"), None);
        assert_eq!(strip_prefix("traefik", "traefik"), None);
        assert_eq!(strip_prefix("tr", "traefik"), None);
        // Never slices inside a character.
        assert_eq!(strip_prefix("traefiké.x", "traefikx"), None);
    }

    #[test]
    fn indexed_segments() {
        assert!(is_indexed("domains[0]", "domains"));
        assert!(is_indexed("domains[12]", "domains"));
        assert!(!is_indexed("domains[]", "domains"));
        assert!(!is_indexed("domains[x]", "domains"));
        assert!(!is_indexed("domains", "domains"));
    }
}
