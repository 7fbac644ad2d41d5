//! Traefik 1.x labels, read the way Traefik 1.7's ECS provider read them.
//!
//! A task migrated from Traefik 1 carries `<prefix>.frontend.*`, `<prefix>.backend[.*]`,
//! `<prefix>.port`, `<prefix>.protocol`, `<prefix>.weight` and `<prefix>.domain`, and
//! perhaps *segments*: `<prefix>.<segment>.{port,protocol,weight,backend,frontend.*}`.
//! What Traefik 1.7 built from them, and so what is built here:
//! - without segments, one frontend (a router) and one backend (a service), both named
//!   after `backend` (default: the task's name). The frontend exists even without
//!   `frontend.*` labels, with the default rule `Host:<name>[.<domain>]`;
//! - with segments, one frontend and one backend per segment, and no default one. The
//!   task-wide labels are each segment's defaults. A segment's backend is
//!   `<name>-<segment>`, or `<name>-<backend>` when it sets `backend`; its frontend is
//!   `<segment>-<backend name>`;
//! - `backend.*` settings (health check, load-balancing method, stickiness) apply to
//!   every backend of the task; blank values are ignored, as Traefik 1 ignored them.
//!
//! Traefik v2 reads no v1 label. So a task with any v2 label (`<prefix>.http.*`,
//! `tcp.*`, `udp.*`) is read as v2 only, and its v1 labels are listed as ignored
//! warnings, with one exception that fails closed (below).
//!
//! **Fail closed.** What v2 calls middlewares (auth, IP allow lists, redirects,
//! headers, rate limits, error pages, client-certificate forwarding) and the backend's
//! protections (circuit breaker, connection limit, buffering) are not implemented
//! yet. A v1 label asking for one disables the router (or service) it is about, with
//! an error naming the label, rather than let it serve with less protection than its
//! owner asked for; so does a `frontend.*` label gantry does not know. A label that
//! asks for nothing (a whitelist's `useXForwardedFor` without a `sourceRange`, an
//! empty value) is a warning, since Traefik 1 built nothing from it. On a task read as
//! v2, a v1 label that would restrict access still disables the task's routers: its
//! owner meant the service to be protected, and v2 labels must say so.

use std::collections::BTreeMap;

use crate::provider::{normalize, Task};

use super::parse::{self, Problem, RouterLabels, ServiceLabels, TaskLabels, Value};

/// A v1 label: its key as written and its value.
type Raw = Option<(String, String)>;

/// What a v1 label asks for that gantry does not implement yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Feature {
    BasicAuth,
    DigestAuth,
    ForwardAuth,
    AllowList,
    Redirect,
    Headers,
    RateLimit,
    ErrorPages,
    ClientCert,
    CircuitBreaker,
    MaxConn,
    Buffering,
    PortIndex,
    UnknownFrontend,
    UnknownBackend,
}

impl Feature {
    /// What it is, for messages.
    fn name(self) -> &'static str {
        match self {
            Feature::BasicAuth => "basic authentication",
            Feature::DigestAuth => "digest authentication",
            Feature::ForwardAuth => "forward authentication",
            Feature::AllowList => "an IP allow list",
            Feature::Redirect => "a redirect",
            Feature::Headers => "security and custom headers",
            Feature::RateLimit => "a rate limit",
            Feature::ErrorPages => "custom error pages",
            Feature::ClientCert => "client certificate forwarding",
            Feature::CircuitBreaker => "a circuit breaker",
            Feature::MaxConn => "a connection limit",
            Feature::Buffering => "request buffering",
            Feature::PortIndex => "a port by index",
            Feature::UnknownFrontend => "a frontend setting gantry does not know",
            Feature::UnknownBackend => "a backend setting gantry does not know",
        }
    }

    /// What stands for it in v2 (or what to do instead).
    fn instead(self) -> Option<&'static str> {
        Some(match self {
            Feature::BasicAuth => "v2: the basicauth middleware",
            Feature::DigestAuth => "v2: the digestauth middleware",
            Feature::ForwardAuth => "v2: the forwardauth middleware",
            Feature::AllowList => "v2: the ipallowlist middleware",
            Feature::Redirect => "v2: the redirectscheme/redirectregex middlewares",
            Feature::Headers => "v2: the headers middleware",
            Feature::RateLimit => "v2: the ratelimit middleware",
            Feature::ErrorPages => "v2: the errors middleware",
            Feature::ClientCert => "v2: the passtlsclientcert middleware",
            Feature::CircuitBreaker => "v2: the circuitbreaker middleware",
            Feature::MaxConn => "v2: the inflightreq middleware",
            Feature::Buffering => "v2: the buffering middleware",
            Feature::PortIndex => "set the port instead",
            Feature::UnknownFrontend | Feature::UnknownBackend => return None,
        })
    }

    /// Its name and what stands for it, for messages.
    fn what(self) -> String {
        match self.instead() {
            Some(instead) => format!("{} ({instead})", self.name()),
            None => self.name().to_string(),
        }
    }

    /// Whether serving without it could let through what its owner meant to keep out.
    fn restricts(self) -> bool {
        !matches!(
            self,
            Feature::ErrorPages | Feature::ClientCert | Feature::PortIndex
        )
    }

    /// Whether it is about the backend (service) rather than the frontend (router).
    fn on_service(self) -> bool {
        matches!(
            self,
            Feature::CircuitBreaker
                | Feature::MaxConn
                | Feature::Buffering
                | Feature::PortIndex
                | Feature::UnknownBackend
        )
    }

    /// The feature of a `frontend.<rest>` label (`rest` lower-cased), if it is one.
    fn of_frontend(rest: &[&str]) -> Feature {
        match rest {
            ["auth", "digest", ..] => Feature::DigestAuth,
            ["auth", "forward", ..] => Feature::ForwardAuth,
            ["auth", ..] => Feature::BasicAuth,
            ["whitelist", ..] | ["whitelistsourcerange"] => Feature::AllowList,
            ["redirect", ..] => Feature::Redirect,
            ["headers", ..] => Feature::Headers,
            ["ratelimit", ..] => Feature::RateLimit,
            ["errors", ..] => Feature::ErrorPages,
            ["passtlscert"] | ["passtlsclientcert", ..] => Feature::ClientCert,
            _ => Feature::UnknownFrontend,
        }
    }

    /// Whether a label of this feature asks for it by itself (`rest` lower-cased after
    /// `frontend.` or `backend.`), rather than only modifying it: Traefik 1 built no
    /// allow list from `whiteList.useXForwardedFor` alone, no auth from `removeHeader`.
    fn asks(self, rest: &[&str], value: &str) -> bool {
        let on = || parse::parse_bool(value).unwrap_or(true);
        match self {
            Feature::BasicAuth => {
                matches!(
                    rest,
                    ["auth", "basic"] | ["auth", "basic", "users" | "usersfile"]
                )
            }
            Feature::DigestAuth => matches!(rest, ["auth", "digest", "users" | "usersfile"]),
            Feature::ForwardAuth => matches!(rest, ["auth", "forward", "address"]),
            Feature::AllowList => matches!(
                rest,
                ["whitelist", "sourcerange"] | ["whitelistsourcerange"]
            ),
            Feature::Redirect => {
                matches!(rest, ["redirect", "entrypoint" | "regex" | "replacement"])
            }
            Feature::RateLimit => matches!(rest, ["ratelimit", "rateset", ..]),
            Feature::Headers | Feature::ClientCert => on() && value.trim() != "0",
            Feature::CircuitBreaker => matches!(rest, ["circuitbreaker", "expression"]),
            Feature::MaxConn => matches!(rest, ["maxconn", "amount"]),
            Feature::Buffering => on() && value.trim() != "0",
            Feature::ErrorPages
            | Feature::PortIndex
            | Feature::UnknownFrontend
            | Feature::UnknownBackend => true,
        }
    }
}

/// A v1 label asking for something gantry does not implement.
#[derive(Debug, Clone)]
struct Refused {
    key: String,
    feature: Feature,
    /// Whether this label asks for the feature by itself (see [`Feature::asks`]).
    asks: bool,
}

/// The labels of one segment (or of the task itself, the defaults of every segment).
#[derive(Debug, Default, Clone)]
struct Segment {
    frontend_rule: Raw,
    frontend_priority: Raw,
    frontend_entry_points: Raw,
    pass_host_header: Raw,
    port: Raw,
    protocol: Raw,
    weight: Raw,
    backend: Raw,
    refused: Vec<Refused>,
}

impl Segment {
    /// Fills what this segment leaves unset from the task-wide labels.
    fn with_defaults(mut self, main: &Segment) -> Segment {
        for (slot, default) in [
            (&mut self.frontend_rule, &main.frontend_rule),
            (&mut self.frontend_priority, &main.frontend_priority),
            (&mut self.frontend_entry_points, &main.frontend_entry_points),
            (&mut self.pass_host_header, &main.pass_host_header),
            (&mut self.port, &main.port),
            (&mut self.protocol, &main.protocol),
            (&mut self.weight, &main.weight),
            (&mut self.backend, &main.backend),
        ] {
            if slot.is_none() {
                slot.clone_from(default);
            }
        }
        self.refused.extend(main.refused.iter().cloned());
        self
    }

    /// Takes one setting of this segment (`lower` after `<prefix>.[<segment>.]`).
    fn take(&mut self, key: &str, lower: &[&str], value: &str) -> Option<Problem> {
        let slot = match lower {
            ["frontend", "rule"] => &mut self.frontend_rule,
            ["frontend", "priority"] => &mut self.frontend_priority,
            ["frontend", "entrypoints"] => &mut self.frontend_entry_points,
            ["frontend", "passhostheader"] => &mut self.pass_host_header,
            ["frontend", rest @ ..] => {
                let feature = Feature::of_frontend(rest);
                let asks = feature.asks(rest, value);
                self.refused.push(Refused {
                    key: key.to_string(),
                    feature,
                    asks,
                });
                return None;
            }
            ["port"] => &mut self.port,
            ["protocol"] => &mut self.protocol,
            ["weight"] => &mut self.weight,
            ["backend"] => &mut self.backend,
            ["portindex"] => {
                self.refused.push(Refused {
                    key: key.to_string(),
                    feature: Feature::PortIndex,
                    asks: true,
                });
                return None;
            }
            _ => return None,
        };
        match slot {
            Some((first, _)) => Some(Problem::at(
                key,
                format!("set twice: also set by label {first:?}"),
            )),
            None => {
                *slot = Some((key.to_string(), value.to_string()));
                None
            }
        }
    }
}

/// `backend.*` settings, which apply to every backend of the task.
#[derive(Debug, Default)]
struct Backend {
    /// Translated into v2 load-balancer settings: (label, setting path after
    /// `loadbalancer.`, value).
    settings: Vec<(String, Vec<String>, String)>,
    refused: Vec<Refused>,
}

/// The v1 labels of one task, as found; turned into routers and services by [`apply`].
#[derive(Debug, Default)]
pub(crate) struct V1Labels {
    main: Segment,
    segments: BTreeMap<String, Segment>,
    domain: Raw,
    backend: Backend,
    /// Every v1 label seen, for the warnings when the task is read as v2.
    seen: Vec<String>,
    /// Labels that were ignored whatever the task is (blank values, Swarm's balancer).
    ignored: Vec<Problem>,
}

/// Whether `lower` (after `<prefix>.<segment>.`) is a property a segment may have.
fn is_segment_property(lower: &[&str]) -> bool {
    matches!(
        lower,
        ["port" | "portindex" | "weight" | "protocol" | "backend"] | ["frontend", _, ..]
    )
}

impl V1Labels {
    /// Keeps `key` if it is a v1 label; returns whether it was one. `orig` is the key's
    /// part after the prefix split on dots, `lower` the same lower-cased.
    pub(crate) fn take(
        &mut self,
        key: &str,
        orig: &[&str],
        lower: &[&str],
        value: &str,
        problems: &mut Vec<Problem>,
    ) -> bool {
        match lower {
            ["frontend", _, ..] | ["port" | "portindex" | "protocol" | "weight" | "backend"] => {
                self.segment_take(None, key, lower, value, problems)
            }
            ["domain"] => {
                if let Some((first, _)) = &self.domain {
                    problems.push(Problem::at(
                        key,
                        format!("set twice: also set by label {first:?}"),
                    ));
                } else {
                    self.domain = Some((key.to_string(), value.to_string()));
                }
            }
            ["backend", rest @ ..] => self.backend_take(key, rest, value),
            // `traefik.<segment>.<property>`: the shortest segment name that leaves a
            // segment property, as Traefik 1's segment pattern matches.
            _ => {
                let Some(split) = (1..lower.len()).find(|&i| is_segment_property(&lower[i..]))
                else {
                    return false;
                };
                let name = orig[..split].join(".");
                self.segment_take(Some(name), key, &lower[split..], value, problems)
            }
        }
        self.seen.push(key.to_string());
        true
    }

    fn segment_take(
        &mut self,
        segment: Option<String>,
        key: &str,
        lower: &[&str],
        value: &str,
        problems: &mut Vec<Problem>,
    ) {
        if value.trim().is_empty() {
            self.ignored.push(Problem::ignored(
                key,
                "empty value: ignored, as Traefik v1 ignores it",
            ));
            return;
        }
        let target = match segment {
            Some(name) => self.segments.entry(name).or_default(),
            None => &mut self.main,
        };
        if let Some(problem) = target.take(key, lower, value) {
            problems.push(problem);
        }
    }

    /// One `backend.<rest>` setting.
    fn backend_take(&mut self, key: &str, rest: &[&str], value: &str) {
        if value.trim().is_empty() {
            self.ignored.push(Problem::ignored(
                key,
                "empty value: ignored, as Traefik v1 ignores it",
            ));
            return;
        }
        let setting = |path: &[&str]| path.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut add = |path: &[&str], value: &str| {
            self.backend
                .settings
                .push((key.to_string(), setting(path), value.to_string()));
        };
        match rest {
            ["healthcheck", "path" | "port" | "interval" | "timeout" | "scheme" | "hostname"] => {
                add(rest, value)
            }
            // `Name:value||Name:value`, as Traefik 1 wrote maps in labels.
            ["healthcheck", "headers"] => {
                for pair in value.split("||") {
                    match pair.split_once(':') {
                        Some((name, v)) if !name.trim().is_empty() => add(
                            &["healthcheck", "headers", &name.trim().to_ascii_lowercase()],
                            v.trim(),
                        ),
                        _ => self.backend.refused.push(Refused {
                            key: key.to_string(),
                            feature: Feature::UnknownBackend,
                            asks: true,
                        }),
                    }
                }
            }
            ["loadbalancer", "method"] => {
                // Traefik 1's drr (dynamic round robin) shifts weight to faster servers;
                // p2c over peak-EWMA latency is gantry's way of doing the same.
                let strategy = match value.trim().to_ascii_lowercase().as_str() {
                    "drr" => "p2c".to_string(),
                    other => other.to_string(),
                };
                add(&["strategy"], &strategy)
            }
            ["loadbalancer", "stickiness" | "sticky"] => add(&["sticky", "cookie"], value),
            ["loadbalancer", "stickiness", "cookiename"] => {
                add(&["sticky", "cookie", "name"], value)
            }
            ["responseforwarding", "flushinterval"] => add(rest, value),
            ["loadbalancer", "swarm"] => self.ignored.push(Problem::ignored(
                key,
                "a Docker Swarm setting: it means nothing on ECS, ignored",
            )),
            _ => {
                let feature = match rest {
                    ["circuitbreaker", ..] => Feature::CircuitBreaker,
                    ["maxconn", ..] => Feature::MaxConn,
                    ["buffering", ..] => Feature::Buffering,
                    _ => Feature::UnknownBackend,
                };
                let asks = feature.asks(rest, value);
                self.backend.refused.push(Refused {
                    key: key.to_string(),
                    feature,
                    asks,
                });
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Turns `v1` into routers and services in `out`. `has_v2`: the task has v2 labels, so
/// its v1 labels are not read (see the module's documentation).
pub(crate) fn apply(task: &Task, v1: V1Labels, has_v2: bool, out: &mut TaskLabels) {
    out.problems.extend(v1.ignored.iter().cloned());
    if v1.is_empty() {
        return;
    }
    if has_v2 {
        ignore_for_v2(v1, out);
        return;
    }
    let name = task.default_name();
    if name.is_empty() {
        // Only for a task whose id has no letter or digit: nothing to name objects after.
        out.problems.push(Problem::general(
            "v1 labels ignored: the task has no name to give its frontend and backend",
        ));
        return;
    }
    let segments: Vec<(Option<String>, Segment)> = if v1.segments.is_empty() {
        vec![(None, v1.main.clone())]
    } else {
        v1.segments
            .iter()
            .map(|(n, s)| (Some(n.clone()), s.clone().with_defaults(&v1.main)))
            .collect()
    };
    for (segment, labels) in segments {
        build_segment(&name, segment.as_deref(), labels, &v1, out);
    }
}

/// The frontend and backend of one segment (`None`: the task's only ones).
fn build_segment(
    name: &str,
    segment: Option<&str>,
    labels: Segment,
    v1: &V1Labels,
    out: &mut TaskLabels,
) {
    let backend_label = labels.backend.as_ref().map(|(key, _)| key.clone());
    let backend = match (&labels.backend, segment) {
        (Some((_, b)), None) => normalize(b),
        (Some((_, b)), Some(_)) => normalize(&format!("{name}-{b}")),
        (None, Some(s)) => normalize(&format!("{name}-{s}")),
        (None, None) => name.to_string(),
    };
    let frontend = match segment {
        Some(s) => normalize(&format!("{s}-{backend}")),
        None => backend.clone(),
    };

    let mut service = ServiceLabels {
        port: value(&labels.port, parse::parse_port),
        scheme: value(&labels.protocol, |s| {
            parse::parse_scheme(s)
                .map_err(|_| format!("invalid protocol {s:?}: expected http, h2c or https"))
        }),
        weight: value(&labels.weight, parse::parse_weight),
        pass_host_header: value(&labels.pass_host_header, parse::parse_bool),
        ..ServiceLabels::default()
    };
    for (key, path, value) in &v1.backend.settings {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        service
            .balancing
            .add(key, &path, value, &mut service.problems);
    }
    let refused = labels.refused.iter().chain(&v1.backend.refused);
    let mut router_problems = Vec::new();
    for r in refused {
        if !r.asks {
            out.problems.push(Problem::ignored(
                &r.key,
                format!(
                    "has no effect on its own: Traefik v1 builds no {} from it",
                    r.feature.name()
                ),
            ));
            continue;
        }
        let (object, list) = if r.feature.on_service() {
            ("service", &mut service.problems)
        } else {
            ("router", &mut router_problems)
        };
        list.push(Problem::at(
            &r.key,
            format!(
                "Traefik v1 label for {}, which gantry does not implement yet: the {object} \
                 is disabled rather than served without it",
                r.feature.what()
            ),
        ));
    }
    merge_service(out.services.entry(backend.clone()).or_default(), service);

    let rule = match &labels.frontend_rule {
        Some((key, v)) => Value::from_label(key, translate(v)),
        // Traefik 1's default rule: the name, lower-cased, under the domain if any.
        None => {
            let host = name.to_ascii_lowercase().replace('_', "-");
            let host = match &v1.domain {
                Some((_, d)) if !d.trim().is_empty() => {
                    format!("{host}.{}", d.trim().trim_start_matches('.'))
                }
                _ => host,
            };
            Value {
                label: None,
                parsed: translate(&format!("Host:{host}")),
            }
        }
    };
    let router = RouterLabels {
        rule: Some(rule),
        priority: value(&labels.frontend_priority, parse::parse_priority),
        // A v1 frontend always points at its own backend.
        service: Some(Value {
            label: backend_label,
            parsed: Ok(backend),
        }),
        entry_points: value(&labels.frontend_entry_points, parse::parse_entry_points),
        problems: router_problems,
        ..RouterLabels::default()
    };
    let dst = out.routers.entry(frontend).or_default();
    fill(&mut dst.rule, router.rule);
    fill(&mut dst.priority, router.priority);
    fill(&mut dst.service, router.service);
    fill(&mut dst.entry_points, router.entry_points);
    dst.problems.extend(router.problems);
}

/// On a task read as v2: every v1 label is a warning, but one that would restrict
/// access disables the task's routers.
fn ignore_for_v2(v1: V1Labels, out: &mut TaskLabels) {
    let restricting: BTreeMap<&str, &Refused> = v1
        .main
        .refused
        .iter()
        .chain(v1.segments.values().flat_map(|s| &s.refused))
        .chain(&v1.backend.refused)
        .filter(|r| r.asks && r.feature.restricts())
        .map(|r| (r.key.as_str(), r))
        .collect();
    for key in &v1.seen {
        match restricting.get(key.as_str()) {
            Some(r) => out.router_problems.push(Problem::at(
                key,
                format!(
                    "Traefik v1 label for {} on a task read as v2 (it has v2 labels, and \
                     Traefik v2 ignores v1 ones): the task's routers are disabled rather than \
                     served without it; say it with a v2 middleware, or remove the label",
                    r.feature.what()
                ),
            )),
            None => out.problems.push(Problem::ignored(
                key,
                "ignored: a Traefik v1 label on a task that has v2 labels (Traefik v2 reads \
                 only those)",
            )),
        }
    }
}

/// Parses a v1 label's value, remembering which label it came from.
fn value<T>(raw: &Raw, parse: impl Fn(&str) -> Result<T, String>) -> Option<Value<T>> {
    raw.as_ref()
        .map(|(key, value)| Value::from_label(key, parse(value)))
}

/// Translates a v1 rule (`Host:a.com;PathPrefix:/x`) into v2 syntax.
fn translate(value: &str) -> Result<String, String> {
    let rule = parse::parse_rule(value)?;
    crate::rules::translate_v1(&rule).map_err(|e| format!("invalid v1 rule: {e}"))
}

/// Fills the fields `dst` leaves unset (two segments sharing a backend: the first
/// one's settings).
fn merge_service(dst: &mut ServiceLabels, v1: ServiceLabels) {
    fill(&mut dst.port, v1.port);
    fill(&mut dst.scheme, v1.scheme);
    fill(&mut dst.weight, v1.weight);
    fill(&mut dst.pass_host_header, v1.pass_host_header);
    if dst.balancing == Default::default() {
        dst.balancing = v1.balancing;
    }
    for p in v1.problems {
        if !dst.problems.contains(&p) {
            dst.problems.push(p);
        }
    }
}

fn fill<T>(dst: &mut Option<T>, v1: Option<T>) {
    if dst.is_none() {
        *dst = v1;
    }
}

#[cfg(test)]
mod tests;
