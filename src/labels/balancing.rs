//! Load-balancer labels beyond the server: `strategy`, `hash.header`,
//! `sticky.cookie.*`, `healthcheck.*`, `outlier.*`, `zone.*` and `tls.*`, under
//! `<prefix>.http.services.<name>.loadbalancer.`.
//!
//! Names follow Traefik where it has them (`strategy=wrr|p2c`, `sticky.cookie.*`,
//! `healthcheck.path|interval|timeout|mode`, with `mode=grpc` for the gRPC health
//! protocol); gantry adds `hash.header`, `healthcheck.service|codes`, `mode=call` and the
//! thresholds. Values are parsed here, once; the result is a [`LoadBalancer`] that must
//! be equal across every task defining the service.

use std::time::Duration;

use crate::dynamic::{
    LoadBalancer, OutlierDetection, ServerTls, StickyCookie, Strategy, ZoneAffinity,
};
use crate::telemetry::codes::CodeSet;

use super::parse::{parse_bool, set, Problem, Value};
use super::resolve::take;

/// The raw values of one task's balancing labels for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BalancingLabels {
    strategy: Option<Value<Strategy>>,
    hash_header: Option<Value<String>>,
    sticky: Option<Value<bool>>,
    cookie_name: Option<Value<String>>,
    cookie_secure: Option<Value<bool>>,
    cookie_http_only: Option<Value<bool>>,
    cookie_same_site: Option<Value<String>>,
    cookie_max_age: Option<Value<u64>>,
    health: super::healthcheck::HealthLabels,
    /// `responseforwarding.flushinterval`: accepted and checked; gantry always
    /// streams, so every interval is met.
    flush_interval: Option<Value<Duration>>,
    outlier: OutlierLabels,
    zone: ZoneLabels,
    tls_insecure: Option<Value<bool>>,
    tls_server_name: Option<Value<String>>,
}

/// `outlier.*`: passive outlier detection (on by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OutlierLabels {
    enabled: Option<Value<bool>>,
    consecutive: Option<Value<u32>>,
    codes: Option<Value<CodeSet>>,
    failure_percent: Option<Value<u32>>,
    min_requests: Option<Value<u32>>,
    interval: Option<Value<Duration>>,
    ejection: Option<Value<Duration>>,
    max_ejection: Option<Value<Duration>>,
    max_ejection_percent: Option<Value<u32>>,
    slow_start: Option<Value<Duration>>,
}

/// `zone.*`: zone affinity (off unless set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ZoneLabels {
    affinity: Option<Value<bool>>,
    share: Option<Value<u32>>,
    min_servers: Option<Value<u32>>,
    min_healthy: Option<Value<u32>>,
}

/// Whether the setting after `loadbalancer.` is one of this module's.
pub(crate) fn is_balancing(rest: &[&str]) -> bool {
    matches!(
        rest.first(),
        Some(
            &("strategy"
                | "hash"
                | "sticky"
                | "healthcheck"
                | "outlier"
                | "zone"
                | "tls"
                | "responseforwarding")
        )
    )
}

impl BalancingLabels {
    /// Reads one label; `rest` is the lower-cased setting after `loadbalancer.`.
    pub(crate) fn add(
        &mut self,
        key: &str,
        rest: &[&str],
        value: &str,
        problems: &mut Vec<Problem>,
    ) {
        match rest {
            ["strategy"] => set(&mut self.strategy, key, parse_strategy(value), problems),
            ["hash", "header"] => set(&mut self.hash_header, key, parse_header(value), problems),
            ["sticky", "cookie"] => set(&mut self.sticky, key, parse_bool(value), problems),
            ["sticky", "cookie", "name"] => set(
                &mut self.cookie_name,
                key,
                parse_cookie_name(value),
                problems,
            ),
            ["sticky", "cookie", "secure"] => {
                set(&mut self.cookie_secure, key, parse_bool(value), problems)
            }
            ["sticky", "cookie", "httponly"] => {
                set(&mut self.cookie_http_only, key, parse_bool(value), problems)
            }
            ["sticky", "cookie", "samesite"] => set(
                &mut self.cookie_same_site,
                key,
                parse_same_site(value),
                problems,
            ),
            ["sticky", "cookie", "maxage"] => set(
                &mut self.cookie_max_age,
                key,
                parse_count(value).map(u64::from),
                problems,
            ),
            ["healthcheck", rest @ ..] => self.health.add(key, rest, value, problems),
            ["responseforwarding", "flushinterval"] => set(
                &mut self.flush_interval,
                key,
                parse_flush_interval(value),
                problems,
            ),
            ["outlier", ..] | ["zone", ..] => self.add_passive(key, rest, value, problems),
            ["tls", "insecure_skip_verify" | "insecureskipverify"] => {
                set(&mut self.tls_insecure, key, parse_bool(value), problems)
            }
            ["tls", "server_name" | "servername"] => set(
                &mut self.tls_server_name,
                key,
                parse_server_name(value),
                problems,
            ),
            _ => problems.push(Problem::at(
                key,
                format!(
                    "unknown load balancer label {key:?} (strategy, hash.header, \
                     sticky.cookie[.name|.secure|.httponly|.samesite|.maxage], \
                     healthcheck.{{mode,path,service,codes,interval,timeout,\
                     healthythreshold,unhealthythreshold}}, outlier.*, zone.*, \
                     tls.insecure_skip_verify, tls.server_name)"
                ),
            )),
        }
    }
}

impl BalancingLabels {
    /// `outlier.*` and `zone.*`.
    fn add_passive(&mut self, key: &str, rest: &[&str], value: &str, problems: &mut Vec<Problem>) {
        let (o, z) = (&mut self.outlier, &mut self.zone);
        match rest {
            ["outlier"] => set(&mut o.enabled, key, parse_bool(value), problems),
            ["outlier", "consecutive"] => {
                set(&mut o.consecutive, key, parse_count(value), problems)
            }
            ["outlier", "codes"] => set(&mut o.codes, key, CodeSet::parse(value), problems),
            ["outlier", "failurepercent"] => {
                set(&mut o.failure_percent, key, parse_percent(value), problems)
            }
            ["outlier", "minrequests"] => {
                set(&mut o.min_requests, key, parse_count(value), problems)
            }
            ["outlier", "interval"] => set(&mut o.interval, key, parse_duration(value), problems),
            ["outlier", "ejection"] => set(&mut o.ejection, key, parse_duration(value), problems),
            ["outlier", "maxejection"] => {
                set(&mut o.max_ejection, key, parse_duration(value), problems)
            }
            ["outlier", "maxejectionpercent"] => set(
                &mut o.max_ejection_percent,
                key,
                parse_percent(value),
                problems,
            ),
            ["outlier", "slowstart"] => set(
                &mut o.slow_start,
                key,
                parse_duration_or_zero(value),
                problems,
            ),
            ["zone", "affinity"] => set(&mut z.affinity, key, parse_bool(value), problems),
            ["zone", "share"] => set(&mut z.share, key, parse_percent(value), problems),
            ["zone", "minservers"] => set(&mut z.min_servers, key, parse_count(value), problems),
            ["zone", "minhealthypercent"] => {
                set(&mut z.min_healthy, key, parse_percent(value), problems)
            }
            _ => problems.push(Problem::at(
                key,
                format!(
                    "unknown load balancer label {key:?} (outlier[.consecutive|.codes|\
                     .failurepercent|.minrequests|.interval|.ejection|.maxejection|\
                     .maxejectionpercent|.slowstart], zone.affinity|.share|.minservers|\
                     .minhealthypercent)"
                ),
            )),
        }
    }
}

/// Outlier detection as the labels set it: defaults where silent, off with
/// `outlier=false`.
fn outlier(labels: OutlierLabels, problems: &mut Vec<Problem>) -> OutlierDetection {
    let d = OutlierDetection::default();
    let ms = |v: Option<(Duration, Option<String>)>, default: u64| {
        v.map_or(default, |(d, _)| d.as_millis() as u64)
    };
    let enabled = take(labels.enabled, problems).is_none_or(|(on, _)| on);
    let consecutive = take(labels.consecutive, problems).map_or(d.consecutive, |(n, _)| n);
    let codes = take(labels.codes, problems).map_or(d.codes.clone(), |(c, _)| c.to_string());
    let failure_percent =
        take(labels.failure_percent, problems).map_or(d.failure_percent, |(n, _)| n);
    let min_requests = take(labels.min_requests, problems).map_or(d.min_requests, |(n, _)| n);
    let interval_ms = ms(take(labels.interval, problems), d.interval_ms);
    let ejection_ms = ms(take(labels.ejection, problems), d.ejection_ms);
    let max_label = labels.max_ejection.as_ref().and_then(|v| v.label.clone());
    let max_ejection_ms = ms(
        take(labels.max_ejection, problems),
        d.max_ejection_ms.max(ejection_ms),
    );
    if max_ejection_ms < ejection_ms {
        problems.push(Problem::new(max_label, format!(
                "outlier.maxejection ({max_ejection_ms} ms) is shorter than outlier.ejection ({ejection_ms} ms)"
            )));
    }
    let max_ejection_percent =
        take(labels.max_ejection_percent, problems).map_or(d.max_ejection_percent, |(n, _)| n);
    let slow_start_ms = ms(take(labels.slow_start, problems), d.slow_start_ms);
    OutlierDetection {
        consecutive: if enabled { consecutive } else { 0 },
        codes,
        failure_percent: if enabled { failure_percent } else { 0 },
        min_requests,
        interval_ms,
        ejection_ms,
        max_ejection_ms,
        max_ejection_percent,
        slow_start_ms,
    }
}

/// Zone affinity, if any label asks for it (setting any option turns it on).
fn zone(labels: ZoneLabels, problems: &mut Vec<Problem>) -> Option<ZoneAffinity> {
    let any_option =
        labels.share.is_some() || labels.min_servers.is_some() || labels.min_healthy.is_some();
    let on = take(labels.affinity, problems).map_or(any_option, |(on, _)| on);
    let d = ZoneAffinity::default();
    let z = ZoneAffinity {
        share: take(labels.share, problems).map_or(d.share, |(n, _)| n),
        min_servers: take(labels.min_servers, problems).map_or(d.min_servers, |(n, _)| n),
        min_healthy_percent: take(labels.min_healthy, problems)
            .map_or(d.min_healthy_percent, |(n, _)| n),
    };
    on.then_some(z)
}

/// The load balancer the labels describe; problems name the label at fault.
pub(crate) fn resolve(
    service: &str,
    labels: BalancingLabels,
    problems: &mut Vec<Problem>,
) -> LoadBalancer {
    let strategy = take(labels.strategy, problems);
    let hash = take(labels.hash_header, problems);
    let sticky_label = labels.sticky.as_ref().and_then(|v| v.label.clone());
    let cookie_fields = [
        labels.cookie_name.is_some(),
        labels.cookie_secure.is_some(),
        labels.cookie_http_only.is_some(),
        labels.cookie_same_site.is_some(),
        labels.cookie_max_age.is_some(),
    ];
    let sticky_on = match take(labels.sticky, problems) {
        Some((on, _)) => on,
        // Traefik: setting any cookie option turns stickiness on.
        None => cookie_fields.iter().any(|x| *x),
    };
    let cookie = StickyCookie {
        name: take(labels.cookie_name, problems)
            .map_or_else(|| default_cookie(service), |(n, _)| n),
        secure: take(labels.cookie_secure, problems).is_some_and(|(b, _)| b),
        http_only: take(labels.cookie_http_only, problems).is_some_and(|(b, _)| b),
        same_site: take(labels.cookie_same_site, problems).map(|(s, _)| s),
        max_age: take(labels.cookie_max_age, problems).map(|(s, _)| s),
    };
    let strategy = match (strategy, hash, sticky_on) {
        (_, Some(_), true) => {
            problems.push(Problem::new(
                sticky_label,
                "sticky cookies and hash.header are two ways to pin calls: pick one",
            ));
            Strategy::Wrr
        }
        (Some((s, label)), Some((header, _)), false) if s != Strategy::Wrr => {
            problems.push(Problem::new(
                label,
                format!(
                    "strategy={} conflicts with hash.header={header} (hashing is the strategy)",
                    s.name()
                ),
            ));
            Strategy::Wrr
        }
        (_, Some((header, _)), false) => Strategy::Hash { header },
        (Some((Strategy::P2c, label)), None, true) => {
            problems.push(Problem::new(
                label,
                "strategy=p2c cannot be sticky: sticky sessions pick the first server by wrr",
            ));
            Strategy::Wrr
        }
        (_, None, true) => Strategy::Sticky { cookie },
        (Some((s, _)), None, false) => s,
        (None, None, false) => Strategy::Wrr,
    };
    LoadBalancer {
        strategy,
        health_check: labels.health.resolve(problems),
        outlier: outlier(labels.outlier, problems),
        zone: zone(labels.zone, problems),
        tls: ServerTls {
            insecure_skip_verify: take(labels.tls_insecure, problems).is_some_and(|(b, _)| b),
            server_name: take(labels.tls_server_name, problems).map(|(n, _)| n),
        },
    }
}

/// `tls.server_name`: the DNS name an https server's certificate must carry.
fn parse_server_name(value: &str) -> Result<String, String> {
    let v = value.trim().to_ascii_lowercase();
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(v)
    } else {
        Err(format!("{value:?} is not a DNS name"))
    }
}

/// What differs between two load balancers, for conflict messages.
pub(crate) fn differences(a: &LoadBalancer, b: &LoadBalancer) -> Vec<String> {
    let mut out = Vec::new();
    if a.strategy != b.strategy {
        out.push(format!(
            "strategy {} vs {}",
            describe(&a.strategy),
            describe(&b.strategy)
        ));
    }
    if a.health_check != b.health_check {
        out.push("healthcheck settings differ".to_string());
    }
    if a.tls != b.tls {
        out.push(format!("tls {:?} vs {:?}", a.tls, b.tls));
    }
    if a.outlier != b.outlier {
        out.push("outlier settings differ".to_string());
    }
    if a.zone != b.zone {
        out.push("zone settings differ".to_string());
    }
    out
}

fn describe(s: &Strategy) -> String {
    match s {
        Strategy::Hash { header } => format!("hash({header})"),
        Strategy::Sticky { cookie } => format!("sticky({})", cookie.name),
        other => other.name().to_string(),
    }
}

fn default_cookie(service: &str) -> String {
    let cleaned: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("gantry_{cleaned}")
}

fn parse_strategy(v: &str) -> Result<Strategy, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "wrr" | "roundrobin" => Ok(Strategy::Wrr),
        "p2c" => Ok(Strategy::P2c),
        "hash" | "sticky" => Err(format!(
            "{v:?}: set hash.header=<header> or sticky.cookie=true instead of strategy"
        )),
        _ => Err(format!("{v:?} is not a strategy (wrr, p2c)")),
    }
}

fn parse_header(v: &str) -> Result<String, String> {
    let v = v.trim().to_ascii_lowercase();
    http::HeaderName::from_bytes(v.as_bytes())
        .map(|_| v.clone())
        .map_err(|_| format!("{v:?} is not a header or metadata name"))
}

fn parse_cookie_name(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("{v:?} is not a cookie name"))
    }
}

fn parse_same_site(v: &str) -> Result<String, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "none" => Ok("None".into()),
        "lax" => Ok("Lax".into()),
        "strict" => Ok("Strict".into()),
        _ => Err(format!("{v:?} is not a SameSite value (none, lax, strict)")),
    }
}

pub(crate) fn parse_count(v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

fn parse_percent(v: &str) -> Result<u32, String> {
    match v.trim().trim_end_matches('%').trim().parse::<u32>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(format!("{v:?} is not a percentage (0 to 100)")),
    }
}

/// A duration, or `0` for none.
fn parse_duration_or_zero(v: &str) -> Result<Duration, String> {
    if matches!(v.trim(), "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    parse_duration(v)
}

/// `responseforwarding.flushinterval`: a duration, or a negative one (Traefik: flush
/// after every write), which is what gantry always does.
fn parse_flush_interval(v: &str) -> Result<Duration, String> {
    match v.trim().strip_prefix('-') {
        Some(rest) if parse_duration_or_zero(rest).is_ok() || rest == "1" => Ok(Duration::ZERO),
        _ => parse_duration_or_zero(v),
    }
}

/// A duration as Traefik writes them: Go syntax (`500ms`, `10s`, `1m30s`, `1h`), or a
/// plain number of seconds. Between 10 ms and 1 hour.
pub(crate) fn parse_duration(v: &str) -> Result<Duration, String> {
    let s = v.trim();
    let bad = || format!("{v:?} is not a duration (like 500ms, 10s, 1m30s)");
    let out_of_range = || format!("{v:?} is out of range (10ms to 1h)");
    if s.is_empty() {
        return Err(bad());
    }
    let total = if s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(s.parse::<u64>().map_err(|_| bad())?)
    } else {
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b'.')
                .count();
            if digits == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            // Counted in bytes of whole characters: `µ` is two, and any other
            // character must not be cut in half.
            let unit_len: usize = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == 'µ')
                .map(char::len_utf8)
                .sum();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let seconds = match unit {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            // A number too big for a Duration (or a sum that is) is out of range,
            // not a panic.
            total = Duration::try_from_secs_f64(number * seconds)
                .ok()
                .and_then(|part| total.checked_add(part))
                .ok_or_else(out_of_range)?;
        }
        total
    };
    if total < Duration::from_millis(10) || total > Duration::from_secs(3600) {
        return Err(out_of_range());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamic::HealthMode;

    fn lb(labels: &[(&str, &str)]) -> (LoadBalancer, Vec<Problem>) {
        let mut b = BalancingLabels::default();
        let mut problems = Vec::new();
        for (k, v) in labels {
            let rest: Vec<&str> = k.split('.').collect();
            b.add(k, &rest, v, &mut problems);
        }
        let lb = resolve("rg", b, &mut problems);
        (lb, problems)
    }

    #[test]
    fn strategies() {
        assert_eq!(lb(&[]).0.strategy, Strategy::Wrr);
        assert_eq!(lb(&[("strategy", "P2C")]).0.strategy, Strategy::P2c);
        assert_eq!(
            lb(&[("hash.header", "X-Tenant-Id")]).0.strategy,
            Strategy::Hash {
                header: "x-tenant-id".into()
            }
        );
        let (sticky, problems) = lb(&[
            ("sticky.cookie.name", "rg_s"),
            ("sticky.cookie.samesite", "lax"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        match sticky.strategy {
            Strategy::Sticky { cookie } => {
                assert_eq!(cookie.name, "rg_s");
                assert_eq!(cookie.same_site.as_deref(), Some("Lax"));
            }
            other => panic!("{other:?}"),
        }
        match lb(&[("sticky.cookie", "true")]).0.strategy {
            Strategy::Sticky { cookie } => assert_eq!(cookie.name, "gantry_rg"),
            other => panic!("{other:?}"),
        }
        assert_eq!(lb(&[("sticky.cookie", "false")]).0.strategy, Strategy::Wrr);
    }

    #[test]
    fn bad_and_conflicting_values_name_their_label() {
        for (labels, label, needle) in [
            (vec![("strategy", "random")], "strategy", "not a strategy"),
            (
                vec![("hash.header", "bad header")],
                "hash.header",
                "not a header",
            ),
            (
                vec![("strategy", "p2c"), ("hash.header", "x")],
                "strategy",
                "conflicts",
            ),
            (
                vec![("sticky.cookie", "true"), ("hash.header", "x")],
                "sticky.cookie",
                "pick one",
            ),
            (
                vec![("healthcheck.interval", "soon")],
                "healthcheck.interval",
                "not a duration",
            ),
            (
                vec![
                    ("healthcheck.codes", "0-99"),
                    ("healthcheck.path", "/a.B/C"),
                ],
                "healthcheck.codes",
                "0-16",
            ),
            (
                vec![
                    ("healthcheck.mode", "call"),
                    ("healthcheck.path", "/healthz"),
                ],
                "healthcheck.path",
                "method path",
            ),
            (
                vec![("healthcheck.mode", "tcp")],
                "healthcheck.mode",
                "not a health check mode",
            ),
            (
                vec![("healthcheck.healthythreshold", "0")],
                "healthcheck.healthythreshold",
                "at least 1",
            ),
            (
                vec![
                    ("healthcheck.interval", "1s"),
                    ("healthcheck.timeout", "2s"),
                ],
                "healthcheck.timeout",
                "longer",
            ),
            (
                vec![("healthcheck.colour", "red")],
                "healthcheck.colour",
                "unknown health check label",
            ),
        ] {
            let (_, problems) = lb(&labels);
            let p = problems
                .iter()
                .find(|p| p.label.as_deref() == Some(label))
                .unwrap_or_else(|| panic!("{labels:?}: no problem on {label}: {problems:?}"));
            assert!(p.message.contains(needle), "{labels:?}: {}", p.message);
        }
    }

    #[test]
    fn health_checks_with_defaults_and_implied_modes() {
        let (l, p) = lb(&[("healthcheck.service", "routeguide.RouteGuide")]);
        assert!(p.is_empty(), "{p:?}");
        let hc = l.health_check.unwrap();
        assert_eq!(hc.mode, HealthMode::Grpc);
        assert_eq!(hc.target, "routeguide.RouteGuide");
        assert_eq!((hc.interval_ms, hc.timeout_ms), (5_000, 2_000));
        assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (2, 2));

        let (l, _) = lb(&[
            ("healthcheck.path", "/healthz"),
            ("healthcheck.interval", "500ms"),
        ]);
        let hc = l.health_check.unwrap();
        assert_eq!(
            (hc.mode, hc.target.as_str()),
            (HealthMode::Http, "/healthz")
        );
        assert_eq!((hc.interval_ms, hc.timeout_ms), (500, 500));

        let (l, p) = lb(&[
            ("healthcheck.path", "/pkg.Svc/Ping"),
            ("healthcheck.codes", "0, 12"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let hc = l.health_check.unwrap();
        assert_eq!((hc.mode, hc.codes.as_str()), (HealthMode::Call, "0,12"));
        assert!(lb(&[]).0.health_check.is_none());
    }

    #[test]
    fn durations() {
        for (v, ms) in [
            ("10s", 10_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("2", 2_000),
            ("1.5s", 1_500),
            ("1h", 3_600_000),
        ] {
            assert_eq!(parse_duration(v).unwrap().as_millis(), ms, "{v}");
        }
        for v in ["", "s", "10", "-1s", "5ms", "2h", "10 s", "1x"] {
            let bad = parse_duration(v);
            assert!(bad.is_err() || v == "10", "{v}: {bad:?}");
        }
    }

    #[test]
    fn durations_never_panic() {
        // Found by the property tests: a unit cut inside a multi-byte character, a
        // number too big for a Duration, and a sum that overflows one.
        for v in [
            "1\u{a2}",
            "1\u{a0}s",
            "1µ",
            "99999999999999999999h",
            &"9".repeat(400),
            &format!("{}s", "9".repeat(400)),
            "10000000000000000000s10000000000000000000s",
            "..s",
        ] {
            let got = parse_duration(v);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(&format!("{v:?}"))),
                "{v}: {got:?}"
            );
        }
        for (v, ms) in [("1µs500ms", 500), ("1.s", 1_000), (".5s", 500)] {
            assert_eq!(parse_duration(v).map(|d| d.as_millis()), Ok(ms), "{v}");
        }
    }

    #[test]
    fn outlier_detection_defaults_options_and_off() {
        let (l, p) = lb(&[]);
        assert!(p.is_empty());
        assert_eq!(l.outlier, OutlierDetection::default());
        assert!(l.outlier.is_enabled());

        let (l, p) = lb(&[
            ("outlier.consecutive", "3"),
            ("outlier.codes", "UNAVAILABLE, 13"),
            ("outlier.failurepercent", "25%"),
            ("outlier.interval", "1s"),
            ("outlier.ejection", "10s"),
            ("outlier.maxejection", "1m"),
            ("outlier.maxejectionpercent", "30"),
            ("outlier.slowstart", "0"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        let o = l.outlier;
        assert_eq!((o.consecutive, o.codes.as_str()), (3, "13,14"));
        assert_eq!((o.failure_percent, o.interval_ms), (25, 1_000));
        assert_eq!((o.ejection_ms, o.max_ejection_ms), (10_000, 60_000));
        assert_eq!((o.max_ejection_percent, o.slow_start_ms), (30, 0));

        assert!(!lb(&[("outlier", "false")]).0.outlier.is_enabled());

        let (_, p) = lb(&[("outlier.failurepercent", "120")]);
        assert_eq!(p[0].label.as_deref(), Some("outlier.failurepercent"));
        let (_, p) = lb(&[("outlier.codes", "NOPE")]);
        assert!(p[0].message.contains("not a gRPC status code"), "{p:?}");
        let (_, p) = lb(&[("outlier.ejection", "1m"), ("outlier.maxejection", "10s")]);
        assert_eq!(p[0].label.as_deref(), Some("outlier.maxejection"), "{p:?}");
        let (_, p) = lb(&[("outlier.nope", "1")]);
        assert!(
            p[0].message.contains("unknown load balancer label"),
            "{p:?}"
        );
    }

    #[test]
    fn zone_affinity_on_by_any_option() {
        assert_eq!(lb(&[]).0.zone, None);
        assert_eq!(
            lb(&[("zone.affinity", "true")]).0.zone,
            Some(ZoneAffinity::default())
        );
        let (l, p) = lb(&[("zone.share", "90"), ("zone.minservers", "2")]);
        assert!(p.is_empty(), "{p:?}");
        let z = l.zone.unwrap();
        assert_eq!((z.share, z.min_servers, z.min_healthy_percent), (90, 2, 50));
        assert_eq!(
            lb(&[("zone.affinity", "false"), ("zone.share", "90")])
                .0
                .zone,
            None
        );
        let (_, p) = lb(&[("zone.minhealthypercent", "x")]);
        assert_eq!(p[0].label.as_deref(), Some("zone.minhealthypercent"));
    }
}
