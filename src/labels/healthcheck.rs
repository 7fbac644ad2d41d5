//! Active health-check labels: `<prefix>.http.services.<name>.loadbalancer.healthcheck.*`.
//!
//! Traefik's options (`path`, `port`, `scheme`, `hostname`, `headers.<name>`,
//! `method`, `status`, `followredirects`, `interval`, `timeout`, `mode=grpc|http`)
//! plus gantry's own (`service`, `codes`, `mode=call`, the thresholds). A value is
//! parsed once here; [`HealthLabels::resolve`] checks that the options fit together
//! and yields the [`HealthCheck`] every task defining the service must agree on.
//!
//! `port` names a container port, as the server port label does: each server maps
//! it to its own host port (bridge mode), in [`super::resolve`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::dynamic::{HealthCheck, HealthMode, Scheme};
use crate::telemetry::codes::CodeSet;

use super::balancing::{parse_count, parse_duration};
use super::parse::{parse_bool, parse_port, set, Problem, Value};
use super::resolve::take;

/// Defaults of an active health check (ALB's are 30 s / 5 s / 5 / 2; gantry checks
/// more often so a sick task is noticed in seconds).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_HEALTHY: u32 = 2;
const DEFAULT_UNHEALTHY: u32 = 2;

/// The raw values of one task's `healthcheck.*` labels for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HealthLabels {
    mode: Option<Value<HealthMode>>,
    path: Option<Value<String>>,
    service: Option<Value<String>>,
    codes: Option<Value<CodeSet>>,
    interval: Option<Value<Duration>>,
    timeout: Option<Value<Duration>>,
    healthy: Option<Value<u32>>,
    unhealthy: Option<Value<u32>>,
    port: Option<Value<u16>>,
    scheme: Option<Value<Scheme>>,
    hostname: Option<Value<String>>,
    /// By lower-case header name.
    headers: BTreeMap<String, Value<String>>,
    method: Option<Value<String>>,
    status: Option<Value<u16>>,
    follow_redirects: Option<Value<bool>>,
}

/// Options that only an HTTP check reads.
const HTTP_ONLY: &str = "applies to mode=http only";

impl HealthLabels {
    /// Reads one label; `rest` is the lower-cased setting after `healthcheck.`.
    pub(crate) fn add(&mut self, key: &str, rest: &[&str], value: &str, p: &mut Vec<Problem>) {
        match rest {
            ["mode"] => set(&mut self.mode, key, parse_mode(value), p),
            ["path"] => set(&mut self.path, key, parse_path(value), p),
            ["service"] => set(&mut self.service, key, Ok(value.trim().to_string()), p),
            ["codes"] => set(&mut self.codes, key, CodeSet::parse(value), p),
            ["interval"] => set(&mut self.interval, key, parse_duration(value), p),
            ["timeout"] => set(&mut self.timeout, key, parse_duration(value), p),
            ["healthythreshold"] => set(&mut self.healthy, key, parse_threshold(value), p),
            ["unhealthythreshold"] => set(&mut self.unhealthy, key, parse_threshold(value), p),
            ["port"] => set(&mut self.port, key, parse_port(value), p),
            ["scheme"] => set(&mut self.scheme, key, parse_scheme(value), p),
            ["hostname"] => set(&mut self.hostname, key, parse_hostname(value), p),
            ["method"] => set(&mut self.method, key, parse_method(value), p),
            ["status"] => set(&mut self.status, key, parse_status(value), p),
            ["followredirects"] => set(&mut self.follow_redirects, key, parse_bool(value), p),
            ["headers", name] => {
                let parsed = parse_header(name, value);
                match self.headers.get(*name) {
                    Some(first) => p.push(Problem::at(
                        key,
                        format!(
                            "set twice: also set by label {:?}",
                            first.label.as_deref().unwrap_or("")
                        ),
                    )),
                    None => {
                        self.headers
                            .insert((*name).to_string(), Value::from_label(key, parsed));
                    }
                }
            }
            _ => p.push(Problem::at(
                key,
                format!(
                    "unknown health check label {key:?} (healthcheck.{{mode,path,service,codes,\
                     interval,timeout,healthythreshold,unhealthythreshold,port,scheme,hostname,\
                     headers.<name>,method,status,followredirects}})"
                ),
            )),
        }
    }

    fn is_empty(&self) -> bool {
        *self == HealthLabels::default()
    }

    /// The check the labels describe, if any; problems name the label at fault.
    pub(crate) fn resolve(self, problems: &mut Vec<Problem>) -> Option<HealthCheck> {
        if self.is_empty() {
            return None;
        }
        let before = problems.len();
        let mode_label = self.mode.as_ref().and_then(|v| v.label.clone());
        let scheme_label = self.scheme.as_ref().and_then(|v| v.label.clone());
        let mode = take(self.mode, problems);
        let path = take(self.path, problems);
        let service = take(self.service, problems);
        let codes = take(self.codes, problems);
        let interval = take(self.interval, problems).map_or(DEFAULT_INTERVAL, |(d, _)| d);
        let (timeout, timeout_label) = take(self.timeout, problems)
            .map_or((DEFAULT_TIMEOUT.min(interval), None), |(d, l)| (d, l));
        let healthy = take(self.healthy, problems).map_or(DEFAULT_HEALTHY, |(n, _)| n);
        let unhealthy = take(self.unhealthy, problems).map_or(DEFAULT_UNHEALTHY, |(n, _)| n);
        let port = take(self.port, problems).map(|(p, _)| p);
        let scheme = take(self.scheme, problems).map(|(s, _)| s);
        let hostname = take(self.hostname, problems).map(|(h, _)| h);
        let mut headers = BTreeMap::new();
        for (name, value) in self.headers {
            if let Some((v, _)) = take(Some(value), problems) {
                headers.insert(name, v);
            }
        }
        let method = take(self.method, problems);
        let status = take(self.status, problems);
        let follow = take(self.follow_redirects, problems);
        // The mode, said or implied: a path means HTTP unless codes make it a call.
        let mode = match (mode.map(|(m, _)| m), &path, &codes) {
            (Some(m), _, _) => m,
            (None, Some(_), Some(_)) => HealthMode::Call,
            (None, Some(_), None) => HealthMode::Http,
            (None, None, _) => HealthMode::Grpc,
        };
        let fail = |problems: &mut Vec<Problem>, label: Option<String>, message: &str| {
            problems.push(Problem::new(label, message));
        };
        let target = match mode {
            HealthMode::Grpc => {
                if let Some((_, label)) = &path {
                    fail(
                        problems,
                        label.clone(),
                        "healthcheck.path is not used by mode=grpc (set healthcheck.service \
                         for a service name)",
                    );
                }
                service.map(|(s, _)| s).unwrap_or_default()
            }
            HealthMode::Http => match path {
                Some((p, _)) => p,
                None => {
                    let m = "healthcheck mode=http needs healthcheck.path";
                    fail(problems, mode_label.clone(), m);
                    String::new()
                }
            },
            HealthMode::Call => match path {
                Some((p, _)) if is_method_path(&p) => p,
                Some((p, label)) => {
                    let m = format!(
                        "healthcheck mode=call needs a gRPC method path like \
                         /pkg.Service/Method, not {p:?}"
                    );
                    fail(problems, label, &m);
                    String::new()
                }
                None => {
                    let m = "healthcheck mode=call needs healthcheck.path (/pkg.Service/Method)";
                    fail(problems, mode_label.clone(), m);
                    String::new()
                }
            },
        };
        if mode != HealthMode::Call {
            if let Some((_, label)) = &codes {
                fail(
                    problems,
                    label.clone(),
                    "healthcheck.codes applies to mode=call only",
                );
            }
        }
        if mode != HealthMode::Http {
            let http_only = [
                ("method", method.as_ref().map(|(_, l)| l.clone())),
                ("status", status.as_ref().map(|(_, l)| l.clone())),
                ("followredirects", follow.as_ref().map(|(_, l)| l.clone())),
            ];
            for (setting, label) in http_only {
                if let Some(label) = label {
                    fail(
                        problems,
                        label,
                        &format!("healthcheck.{setting} {HTTP_ONLY}"),
                    );
                }
            }
            if scheme == Some(Scheme::Http) {
                fail(
                    problems,
                    scheme_label,
                    "healthcheck.scheme=http probes over HTTP/1.1, and a gRPC check needs \
                     HTTP/2: use scheme=h2c, or mode=http",
                );
            }
        }
        if timeout > interval {
            let m =
                format!("healthcheck.timeout {timeout:?} is longer than the interval {interval:?}");
            fail(problems, timeout_label, &m);
        }
        if problems.len() != before {
            return None;
        }
        Some(HealthCheck {
            mode,
            target,
            codes: codes.map_or_else(|| CodeSet::default().to_string(), |(c, _)| c.to_string()),
            interval_ms: interval.as_millis() as u64,
            timeout_ms: timeout.as_millis() as u64,
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            port,
            scheme,
            hostname,
            headers,
            method: method.map(|(m, _)| m),
            status: status.map(|(s, _)| s),
            follow_redirects: follow.is_none_or(|(f, _)| f),
        })
    }
}

fn is_method_path(p: &str) -> bool {
    matches!(
        crate::telemetry::access_log::grpc_parts(p),
        (Some(_), Some(_))
    )
}

fn parse_mode(v: &str) -> Result<HealthMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "grpc" => Ok(HealthMode::Grpc),
        "http" => Ok(HealthMode::Http),
        "call" => Ok(HealthMode::Call),
        _ => Err(format!(
            "{v:?} is not a health check mode (grpc, http, call)"
        )),
    }
}

fn parse_path(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.starts_with('/')
        && !v
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        Ok(v.to_string())
    } else {
        Err(format!("{v:?} is not a path (it must start with /)"))
    }
}

fn parse_threshold(v: &str) -> Result<u32, String> {
    match parse_count(v)? {
        0 => Err("a threshold must be at least 1".into()),
        n if n > 100 => Err(format!("{n} is too many consecutive checks (at most 100)")),
        n => Ok(n),
    }
}

/// The probes' protocol: `http` (HTTP/1.1) or `h2c`. TLS probes are not there yet.
fn parse_scheme(v: &str) -> Result<Scheme, String> {
    match Scheme::parse(v) {
        Some(Scheme::Https) => Err(
            "healthcheck.scheme=https: health checks over TLS are not available yet \
             (http or h2c)"
                .to_string(),
        ),
        Some(s) => Ok(s),
        None => Err(format!("{v:?} is not a health check scheme (http, h2c)")),
    }
}

/// A host name, optionally with a port, as a Host header / :authority carries it.
fn parse_hostname(v: &str) -> Result<String, String> {
    let v = v.trim();
    match http::uri::Authority::try_from(v) {
        Ok(a) if !v.is_empty() && !v.contains('@') && a.as_str() == v => Ok(v.to_string()),
        _ => Err(format!(
            "{v:?} is not a host name (like api.internal or api:8080)"
        )),
    }
}

/// An HTTP method token, upper-cased (`GET`, `HEAD`, ...).
fn parse_method(v: &str) -> Result<String, String> {
    let m = v.trim().to_ascii_uppercase();
    match http::Method::from_bytes(m.as_bytes()) {
        Ok(_) if !m.is_empty() => Ok(m),
        _ => Err(format!("{v:?} is not an HTTP method")),
    }
}

/// An HTTP status code, 100 to 599.
fn parse_status(v: &str) -> Result<u16, String> {
    match v.trim().parse::<u16>() {
        Ok(code @ 100..=599) => Ok(code),
        _ => Err(format!("{v:?} is not an HTTP status code (100 to 599)")),
    }
}

/// One `headers.<name>` value: a valid header name and value.
fn parse_header(name: &str, value: &str) -> Result<String, String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a header name"));
    }
    let value = value.trim();
    match http::HeaderValue::from_str(value) {
        Ok(_) => Ok(value.to_string()),
        Err(_) => Err(format!("{value:?} is not a header value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(labels: &[(&str, &str)]) -> (Option<HealthCheck>, Vec<Problem>) {
        let mut h = HealthLabels::default();
        let mut problems = Vec::new();
        for (k, v) in labels {
            let rest: Vec<&str> = k.split('.').collect();
            h.add(&format!("healthcheck.{k}"), &rest, v, &mut problems);
        }
        (h.resolve(&mut problems), problems)
    }

    #[test]
    fn traefik_options_are_read() {
        let (hc, p) = check(&[
            ("path", "/ping"),
            ("port", "8081"),
            ("scheme", "http"),
            ("hostname", "api.internal"),
            ("headers.x-probe", " yes "),
            ("method", "head"),
            ("status", "204"),
            ("followredirects", "false"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let hc = hc.expect("a check");
        assert_eq!(hc.mode, HealthMode::Http);
        assert_eq!(hc.port, Some(8081));
        assert_eq!(hc.scheme, Some(Scheme::Http));
        assert_eq!(hc.hostname.as_deref(), Some("api.internal"));
        assert_eq!(hc.headers["x-probe"], "yes");
        assert_eq!(hc.method.as_deref(), Some("HEAD"));
        assert_eq!(hc.status, Some(204));
        assert!(!hc.follow_redirects);
        // Followed by default, as in Traefik.
        let (hc, _) = check(&[("path", "/ping")]);
        assert!(hc.expect("a check").follow_redirects);
    }

    #[test]
    fn bad_or_misplaced_options_name_their_label() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("port", "0")], "healthcheck.port"),
            (&[("scheme", "https")], "healthcheck.scheme"),
            (&[("scheme", "ftp")], "healthcheck.scheme"),
            (
                &[("path", "/x"), ("hostname", "a b")],
                "healthcheck.hostname",
            ),
            (&[("path", "/x"), ("method", "GE T")], "healthcheck.method"),
            (&[("path", "/x"), ("status", "42")], "healthcheck.status"),
            (
                &[("path", "/x"), ("headers.x y", "1")],
                "healthcheck.headers.x y",
            ),
            (
                &[("path", "/x"), ("headers.x", "a\u{1}")],
                "healthcheck.headers.x",
            ),
            (&[("mode", "grpc"), ("status", "200")], "healthcheck.status"),
            (&[("mode", "grpc"), ("method", "GET")], "healthcheck.method"),
            (
                &[("mode", "grpc"), ("scheme", "http")],
                "healthcheck.scheme",
            ),
        ];
        for (labels, label) in cases {
            let (hc, p) = check(labels);
            assert!(hc.is_none(), "{labels:?}");
            assert_eq!(p.len(), 1, "{labels:?}: {p:?}");
            assert_eq!(p[0].label.as_deref(), Some(*label), "{labels:?}: {p:?}");
        }
        let (_, p) = check(&[("path", "/x"), ("colour", "red")]);
        assert_eq!(p[0].label.as_deref(), Some("healthcheck.colour"));
    }
}
