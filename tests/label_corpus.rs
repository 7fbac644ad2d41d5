//! Real Traefik label sets (tests/corpus/traefik-labels.toml, collected from public
//! repositories: ECS task definitions first, then compose and swarm files) through
//! gantry's label reader and static checks, each compared with what Traefik builds
//! from the same labels.
//!
//! Each case ends in one outcome:
//! - `as Traefik`: every router Traefik builds is enabled here, with the same rule
//!   (v1 rules translated), entrypoints and TLS, to a service on the same port and
//!   scheme, and no other router is;
//! - `refused: <why>`: some router Traefik builds is disabled here, for a reason that
//!   is a known gap (`middlewares`, `v1 middleware labels`, `internal service`,
//!   `tcp`), never silently served with less than its labels ask;
//! - anything else is a difference, and fails the test.
//!
//! The outcomes are pinned in [`EXPECTED`], so a change in how any real label set is
//! read shows up here; the counts by kind are printed for the closing notes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gantry::dynamic::{DynamicConfig, Scheme, Status};
use gantry::labels::{build, LabelOptions};
use gantry::provider::{Lifecycle, PortMapping, Task, TaskHealth};
use serde::Deserialize;

const CORPUS: &str = include_str!("corpus/traefik-labels.toml");

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    kind: String,
    syntax: String,
    group: Option<String>,
    container: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    traefik: Traefik,
}

#[derive(Deserialize, Default)]
struct Traefik {
    #[serde(default)]
    router: Vec<TRouter>,
    #[serde(default)]
    service: Vec<TService>,
}

#[derive(Deserialize)]
struct TRouter {
    name: String,
    rule: String,
    service: String,
    #[serde(default)]
    entrypoints: Vec<String>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    middlewares: Vec<String>,
}

#[derive(Deserialize)]
struct TService {
    name: String,
    port: u16,
    scheme: String,
}

/// Every case's outcome, by id.
const EXPECTED: &[(&str, &str)] = &[
    ("vodka-cachet-v1-passhostheader", "as Traefik"),
    ("vodka-legacy-gw-v1", "as Traefik"),
    ("vodka-legacy-wp-be-v1-empty-whitelist", "as Traefik"),
    (
        "vodka-mango-wp-v1-whitelist",
        "refused: v1 middleware labels",
    ),
    (
        "aleks-fofanov-traefik-dashboard-v1-basicauth",
        "refused: v1 middleware labels",
    ),
    (
        "awolski-traefik-dashboard-basicauth-api-internal",
        "refused: middlewares",
    ),
    (
        "justtrack-traefik-api-internal",
        "refused: internal service",
    ),
    ("gtngroup-pulumi-whoami", "as Traefik"),
    ("numtostr-fargate-backend", "as Traefik"),
    ("pycon-traefik-self-retry-middleware-only", "as Traefik"),
    ("pycon-pretix-healthcheck", "as Traefik"),
    ("pycon-backend-web-healthcheck", "as Traefik"),
    (
        "pycon-backend-web-drain-duration-historic",
        "refused: unknown label",
    ),
    ("pycon-frontend-two-hosts", "as Traefik"),
    ("nuvolar-api-gateway-malformed-router-keys", "as Traefik"),
    ("nuvolar-order-service-malformed-router-keys", "as Traefik"),
    ("vitaliimelnychuk-whoami-pathprefix", "as Traefik"),
    ("vitaliimelnychuk-whoami-host", "as Traefik"),
    ("wbsouza-whoami-http-and-tls-routers", "as Traefik"),
    (
        "localstack-runtime-v3-hostregexp-redirect",
        "refused: middlewares",
    ),
    ("apphub-oauth2-proxy-forwardauth-plugin", "as Traefik"),
    ("cdk-monitoring-influxdb-tls", "as Traefik"),
    ("cdk-monitoring-grafana-tls", "as Traefik"),
    (
        "dockerswarm-v1-consul-leader-auth-redirect",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v1-traefik-dashboard",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v1-segments-portainer-portainer",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v1-segments-swarmpit-app",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v1-segments-thelounge-app",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v1-segments-traefik-consul-leader",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v1-segments-traefik-traefik",
        "refused: v1 middleware labels",
    ),
    (
        "dockerswarm-v2-traefik-public-api-internal",
        "refused: middlewares",
    ),
    ("dockerswarm-v2-swarmprom-grafana", "refused: middlewares"),
    (
        "dockerswarm-v2-swarmprom-alertmanager",
        "refused: middlewares",
    ),
    ("dockerswarm-v2-swarmprom-unsee", "refused: middlewares"),
    (
        "dockerswarm-v2-swarmprom-prometheus",
        "refused: middlewares",
    ),
    ("dockerswarm-v2-portainer", "refused: middlewares"),
    (
        "fastapi-v1-segments-pgadmin",
        "refused: v1 middleware labels",
    ),
    (
        "fastapi-v1-segments-flower",
        "refused: v1 middleware labels",
    ),
    ("fastapi-v1-segments-proxy", "refused: v1 middleware labels"),
    ("fastapi-v1-backend-pathprefix-list", "as Traefik"),
    ("fastapi-v2-adminer", "refused: middlewares"),
    ("fastapi-v2-backend-redirectregex", "refused: middlewares"),
    ("fastapi-v2-frontend", "refused: middlewares"),
    ("lalyos-v1-traefik-dashboard", "as Traefik"),
    ("lalyos-v1-www-exposed-port", "as Traefik"),
    ("xsephiroth-v1-grpc-h2c", "as Traefik"),
    (
        "martinraynov-dashboard-file-middleware",
        "refused: internal service, middlewares",
    ),
    (
        "martinraynov-whoami-ratelimit-headers",
        "refused: middlewares",
    ),
    ("testdriven-django-web-expose", "as Traefik"),
    (
        "testdriven-traefik-dashboard-basicauth",
        "refused: middlewares",
    ),
    ("onramp-13ft", "as Traefik"),
    ("onramp-authentik-forwardauth-v2-hostregexp", "as Traefik"),
    ("onramp-garage-two-services", "as Traefik"),
    (
        "woodpecker-swarm-grpc-h2c-redirects",
        "refused: middlewares",
    ),
    ("frp-panel-v3-hostregexp-h2c-tls-domains", "as Traefik"),
];

fn task_of(case: &Case) -> Task {
    Task {
        id: case.id.clone(),
        provider: "ecs".to_string(),
        ip: IpAddr::from([127, 0, 0, 1]),
        zone: None,
        group: case.group.clone(),
        container: case.container.clone(),
        lifecycle: Lifecycle::Running,
        health: TaskHealth::Unknown,
        ports: case
            .ports
            .iter()
            .map(|&p| PortMapping {
                container: p,
                host: p,
            })
            .collect(),
        labels: case.labels.clone(),
    }
}

/// The entrypoints a platform team would configure for the corpus: every name its
/// routers use, TLS on the ones named for it.
fn entrypoints(corpus: &Corpus) -> Vec<(String, bool)> {
    let mut names: Vec<String> = corpus
        .case
        .iter()
        .flat_map(|c| c.traefik.router.iter().flat_map(|r| r.entrypoints.clone()))
        .collect();
    names.extend(["web", "websecure"].map(String::from));
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let l = n.to_ascii_lowercase();
            let tls = l.contains("secure")
                || l.contains("https")
                || l.contains("443")
                || l.contains("tls")
                || l == "ssl";
            (n, tls)
        })
        .collect()
}

/// The outcome of one case: `routes`, `refused: <why>` or a difference.
fn outcome(case: &Case, config: &DynamicConfig, default_name: &str) -> String {
    let name_of = |n: &str| {
        if n == "<default>" {
            default_name.to_string()
        } else {
            n.trim_end_matches("@docker")
                .trim_end_matches("@ecs")
                .to_string()
        }
    };
    let mut refused: Vec<String> = Vec::new();
    let mut diffs: Vec<String> = Vec::new();
    let rule_of = |t: &TRouter| {
        if case.syntax == "v1" && t.rule != "<default>" {
            gantry::rules::translate_v1(&t.rule).unwrap_or_else(|e| format!("untranslatable: {e}"))
        } else {
            t.rule.clone()
        }
    };
    let mut matched: Vec<String> = Vec::new();
    for t in &case.traefik.router {
        let rule = rule_of(t);
        let mut eps = t.entrypoints.clone();
        eps.sort();
        // By name; else (names differ between Traefik's providers: a v1 frontend is
        // named after its backend, a segment's after the segment and backend) the one
        // router with the same rule and entrypoints.
        let by_name = Some(name_of(&t.name)).filter(|n| config.routers.contains_key(n));
        let by_rule = || {
            let same: Vec<&String> = config
                .routers
                .iter()
                .filter(|(n, r)| {
                    !matched.contains(n)
                        && (t.rule == "<default>" || r.rule == rule)
                        && r.entry_points == eps
                })
                .map(|(n, _)| n)
                .collect();
            (same.len() == 1).then(|| same[0].clone())
        };
        let Some(name) = by_name.or_else(by_rule) else {
            diffs.push(format!("router {} missing", t.name));
            continue;
        };
        matched.push(name.clone());
        let r = &config.routers[&name];
        if r.status == Status::Disabled {
            let why = refusal(case, &name, config);
            if why.is_none() {
                diffs.push(format!("router {name} disabled: {}", r.errors.join("; ")));
            } else {
                refused.push(why.unwrap_or_else(|| "other".into()));
            }
            continue;
        }
        // Fail closed: a router Traefik serves behind middlewares is never enabled
        // while gantry has none.
        if !t.middlewares.is_empty() {
            diffs.push(format!("router {name} enabled without {:?}", t.middlewares));
            continue;
        }
        let rule = if t.rule == "<default>" {
            r.rule.clone()
        } else {
            rule
        };
        if r.rule != rule {
            diffs.push(format!(
                "router {name}: rule `{}` vs Traefik `{rule}`",
                r.rule
            ));
        }
        if r.entry_points != eps {
            diffs.push(format!(
                "router {name}: entrypoints {:?} vs {eps:?}",
                r.entry_points
            ));
        }
        if r.tls != t.tls {
            diffs.push(format!("router {name}: tls {} vs {}", r.tls, t.tls));
        }
        // Service names follow the router's naming; the port and scheme must agree.
        let service = r.service.clone();
        let Some(ts) = case
            .traefik
            .service
            .iter()
            .find(|s| name_of(&s.name) == service || name_of(&s.name) == name_of(&t.service))
        else {
            continue;
        };
        match config
            .services
            .get(&service)
            .and_then(|s| s.servers.first())
        {
            Some(server) => {
                if server.address.port() != ts.port
                    || Some(server.scheme) != Scheme::parse(&ts.scheme)
                {
                    diffs.push(format!(
                        "service {service}: {} vs {}://…:{}",
                        server.url, ts.scheme, ts.port
                    ));
                }
            }
            None => diffs.push(format!("service {service}: no server")),
        }
    }
    // Routers gantry serves that Traefik does not build.
    for (name, r) in &config.routers {
        if !matched.contains(name) && r.status == Status::Enabled {
            diffs.push(format!("extra router {name} enabled"));
        }
    }
    if !diffs.is_empty() {
        return format!("differs: {}", diffs.join("; "));
    }
    if refused.is_empty() {
        return "as Traefik".to_string();
    }
    refused.sort();
    refused.dedup();
    format!("refused: {}", refused.join(", "))
}

/// Why router `name` is disabled, when it is a known gap.
fn refusal(case: &Case, name: &str, config: &DynamicConfig) -> Option<String> {
    let errors: Vec<_> = config
        .errors
        .iter()
        .filter(|e| e.is_error())
        .filter(|e| match &e.object {
            gantry::dynamic::ObjectRef::Router(n) => n == name,
            _ => true,
        })
        .collect();
    let _ = case;
    let label = |e: &&gantry::dynamic::ConfigError| {
        e.label.clone().unwrap_or_default().to_ascii_lowercase()
    };
    if errors.iter().any(|e| label(e).contains(".middlewares")) {
        return Some("middlewares".into());
    }
    if errors
        .iter()
        .any(|e| e.message.starts_with("Traefik v1 label for"))
    {
        return Some("v1 middleware labels".into());
    }
    if errors.iter().any(|e| e.message.contains("@internal")) {
        return Some("internal service".into());
    }
    // Traefik's label decoder refuses an unknown field too, and skips the task.
    if errors.iter().any(|e| e.message.contains("unknown")) {
        return Some("unknown label".into());
    }
    None
}

#[test]
fn real_label_sets_route_as_traefik_would_or_fail_closed() {
    let corpus: Corpus = toml::from_str(CORPUS).expect("the corpus parses");
    let eps = entrypoints(&corpus);
    let opts = LabelOptions {
        // Traefik's ECS provider exposes tasks by default.
        exposed_by_default: true,
        ..LabelOptions::default()
    };
    let mut got: Vec<(String, String)> = Vec::new();
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for case in &corpus.case {
        let task = task_of(case);
        let mut config = build(std::slice::from_ref(&task), &opts);
        gantry::table::validate(&mut config, &eps);
        let out = outcome(case, &config, &task.default_name());
        let class = out.split(':').next().unwrap_or("").to_string();
        // What `gantry check` would say: exit 0 unless there is an error.
        let check = if config.error_count() == 0 {
            "check 0"
        } else {
            "check 1"
        };
        *by_kind
            .entry((case.kind.clone(), check.to_string()))
            .or_default() += 1;
        *by_kind
            .entry((case.kind.clone(), class.clone()))
            .or_default() += 1;
        *by_kind
            .entry((format!("syntax {}", case.syntax), class))
            .or_default() += 1;
        got.push((case.id.clone(), out));
    }
    for ((kind, class), n) in &by_kind {
        eprintln!("corpus: {kind:<20} {class:<8} {n}");
    }
    let listing: Vec<String> = got
        .iter()
        .map(|(id, o)| format!("    ({id:?}, {o:?}),"))
        .collect();
    let want: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(id, o)| (id.to_string(), o.to_string()))
        .collect();
    assert!(
        got.iter().all(|(_, o)| !o.starts_with("differs")),
        "cases that differ from Traefik:\n{}",
        listing
            .iter()
            .filter(|l| l.contains("differs"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(got, want, "outcomes changed; now:\n{}", listing.join("\n"));
}
