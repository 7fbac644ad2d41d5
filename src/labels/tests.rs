//! End-to-end tests of [`super::build`]: tasks with labels in, a compact summary of
//! the configuration out, compared with the expected lines of each case.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{build, LabelOptions};
use crate::dynamic::{DynamicConfig, ObjectRef, Status};
use crate::provider::{Lifecycle, PortMapping, Task, TaskHealth};
use crate::rules::constraints::Constraint;

/// A running task of provider `file` at `ip`, with (container, host) ports and labels.
pub(crate) fn task_at(id: &str, ip: &str, ports: &[(u16, u16)], labels: &[(&str, &str)]) -> Task {
    Task {
        id: id.to_string(),
        provider: "file".to_string(),
        ip: ip.parse::<IpAddr>().expect("test ip"),
        zone: None,
        group: None,
        container: None,
        lifecycle: Lifecycle::Running,
        health: TaskHealth::Unknown,
        ports: ports
            .iter()
            .map(|&(container, host)| PortMapping { container, host })
            .collect(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A task at 10.0.0.1 whose container ports are published as is.
pub(crate) fn task(id: &str, ports: &[u16], labels: &[(&str, &str)]) -> Task {
    let ports: Vec<(u16, u16)> = ports.iter().map(|&p| (p, p)).collect();
    task_at(id, "10.0.0.1", &ports, labels)
}

/// A task at 10.0.0.1 with (container, host) port mappings (ECS bridge mode).
pub(crate) fn task_mapped(id: &str, ports: &[(u16, u16)], labels: &[(&str, &str)]) -> Task {
    task_at(id, "10.0.0.1", ports, labels)
}

const ENABLE: (&str, &str) = ("traefik.enable", "true");

fn enabled(id: &str, ip: &str, ports: &[u16], labels: &[(&str, &str)]) -> Task {
    let ports: Vec<(u16, u16)> = ports.iter().map(|&p| (p, p)).collect();
    let mut labels = labels.to_vec();
    labels.push(ENABLE);
    task_at(id, ip, &ports, &labels)
}

fn opts() -> LabelOptions {
    LabelOptions::default()
}

/// One line per router, service and error, leaving out defaults:
/// `router r (tasks): rule -> service [prio=] [eps=] [tls] [DISABLED]`,
/// `service s (tasks): url [w=] [health] @task, … [DISABLED]`, `error <Display>`.
fn summary(config: &DynamicConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (name, r) in &config.routers {
        let mut line = format!(
            "router {name} ({}): {} -> {}",
            r.tasks.join(","),
            r.rule,
            r.service
        );
        if r.priority != r.rule.chars().count() as i64 {
            line.push_str(&format!(" prio={}", r.priority));
        }
        if !r.entry_points.is_empty() {
            line.push_str(&format!(" eps={}", r.entry_points.join(",")));
        }
        if r.tls {
            line.push_str(" tls");
        }
        if !r.middlewares.is_empty() {
            line.push_str(&format!(" mw={}", r.middlewares.join(",")));
        }
        if r.status == Status::Disabled {
            line.push_str(" DISABLED");
        }
        out.push(line);
    }
    for (name, s) in &config.services {
        let servers: Vec<String> = s
            .servers
            .iter()
            .map(|srv| {
                let mut text = srv.url.clone();
                if srv.weight != 1 {
                    text.push_str(&format!(" w={}", srv.weight));
                }
                if srv.health != TaskHealth::Unknown {
                    text.push_str(&format!(" {:?}", srv.health));
                }
                format!("{text} @{}", srv.task)
            })
            .collect();
        let mut line = format!(
            "service {name} ({}): {}",
            s.tasks.join(","),
            servers.join(", ")
        );
        if s.status == Status::Disabled {
            line.push_str(" DISABLED");
        }
        out.push(line);
    }
    for (name, m) in &config.middlewares {
        let options: Vec<String> = m.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut line = format!(
            "middleware {name} ({}): {} {}",
            m.tasks.join(","),
            m.kind,
            options.join(" ")
        );
        if !m.used_by.is_empty() {
            line.push_str(&format!(" <- {}", m.used_by.join(",")));
        }
        if m.status == Status::Disabled {
            line.push_str(" DISABLED");
        }
        out.push(line);
    }
    out.extend(
        config
            .errors
            .iter()
            .map(|e| format!("{} {e}", e.severity.as_str())),
    );
    out
}

/// Every router/service error sits on its object, which is disabled; every disabled
/// object has an error; task errors name their task.
fn check_invariants(config: &DynamicConfig) {
    for (name, r) in &config.routers {
        let own: Vec<String> = config
            .errors
            .iter()
            .filter(|e| e.is_error() && e.object == ObjectRef::Router(name.clone()))
            .map(|e| e.to_string())
            .collect();
        assert_eq!(r.errors, own, "router {name}");
        assert_eq!(
            r.status == Status::Disabled,
            !own.is_empty(),
            "router {name}"
        );
    }
    for (name, s) in &config.services {
        let own: Vec<String> = config
            .errors
            .iter()
            .filter(|e| e.is_error() && e.object == ObjectRef::Service(name.clone()))
            .map(|e| e.to_string())
            .collect();
        assert_eq!(s.errors, own, "service {name}");
        assert_eq!(
            s.status == Status::Disabled,
            !own.is_empty(),
            "service {name}"
        );
    }
    let mut sorted = config.errors.clone();
    sorted.sort();
    assert_eq!(sorted, config.errors, "errors are sorted");
}

struct Case {
    name: &'static str,
    opts: LabelOptions,
    tasks: Vec<Task>,
    /// Expected summary lines; a line ending in `*` matches any line it prefixes (for
    /// messages worded by the rule compiler).
    want: Vec<&'static str>,
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let config = build(&case.tasks, &case.opts);
        check_invariants(&config);
        let got = summary(&config);
        let matches = got.len() == case.want.len()
            && got
                .iter()
                .zip(&case.want)
                .all(|(g, w)| match w.strip_suffix('*') {
                    Some(prefix) => g.starts_with(prefix),
                    None => g == w,
                });
        assert!(
            matches,
            "case {:?}\n got:\n  {}\n want:\n  {}",
            case.name,
            got.join("\n  "),
            case.want.join("\n  ")
        );
    }
}

#[test]
fn exposure() {
    let team = |id: &str, team: &str| task(id, &[80], &[("team", team)]);
    run(vec![
        Case {
            name: "enable=true only, when not exposed by default",
            opts: opts(),
            tasks: vec![
                task("a", &[80], &[("traefik.enable", "TRUE")]),
                task("b", &[80], &[]),
                task("c", &[80], &[("traefik.enable", "false")]),
            ],
            want: vec![
                "router a (a): Host(`a`) -> a",
                "service a (a): http://10.0.0.1:80 @a",
            ],
        },
        Case {
            name: "exposed by default unless enable=false",
            opts: LabelOptions {
                exposed_by_default: true,
                ..opts()
            },
            tasks: vec![
                task("a", &[80], &[]),
                task("b", &[80], &[("traefik.enable", "False")]),
                task("c", &[81], &[("Traefik.Enable", "true")]),
            ],
            want: vec![
                "router a (a): Host(`a`) -> a",
                "router c (c): Host(`c`) -> c",
                "service a (a): http://10.0.0.1:80 @a",
                "service c (c): http://10.0.0.1:81 @c",
            ],
        },
        Case {
            name: "a bad enable value skips the task",
            opts: opts(),
            tasks: vec![task("a", &[80], &[("traefik.enable", "yes")])],
            want: vec![
                "error task \"a\" (task \"a\", label \"traefik.enable\"): invalid boolean \
                 \"yes\": expected true or false; the task is not routed",
            ],
        },
        Case {
            name: "constraints see all labels",
            opts: LabelOptions {
                exposed_by_default: true,
                constraints: Some(Constraint::parse("Label(`team`, `payments`)").expect("valid")),
                ..opts()
            },
            tasks: vec![team("a", "payments"), team("b", "search")],
            want: vec![
                "router a (a): Host(`a`) -> a",
                "service a (a): http://10.0.0.1:80 @a",
            ],
        },
        Case {
            name: "tasks that are not running are skipped",
            opts: opts(),
            tasks: [Lifecycle::Pending, Lifecycle::Stopping, Lifecycle::Stopped]
                .into_iter()
                .map(|lifecycle| Task {
                    lifecycle,
                    ..task(&format!("{lifecycle:?}"), &[80], &[ENABLE])
                })
                .collect(),
            want: vec![],
        },
        Case {
            name: "another prefix",
            opts: LabelOptions {
                prefix: "gantry".to_string(),
                ..opts()
            },
            tasks: vec![task(
                "a",
                &[80],
                &[
                    ("gantry.enable", "true"),
                    ("traefik.http.routers.x.rule", "ignored"),
                ],
            )],
            want: vec![
                "router a (a): Host(`a`) -> a",
                "service a (a): http://10.0.0.1:80 @a",
            ],
        },
    ]);
}

#[test]
fn defaults() {
    let named = Task {
        group: Some("service:api".to_string()),
        container: Some("web".to_string()),
        ..task_mapped("arn1-web", &[(8080, 32770), (80, 32769)], &[ENABLE])
    };
    run(vec![
        Case {
            name: "default names from group and container; lowest port, mapped",
            opts: opts(),
            tasks: vec![named],
            want: vec![
                "router service-api-web (arn1-web): Host(`service-api-web`) -> service-api-web",
                "service service-api-web (arn1-web): http://10.0.0.1:32769 @arn1-web",
            ],
        },
        Case {
            name: "a named service gets a router of its name with the default rule",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[("traefik.http.services.api.loadbalancer.server.port", "80")],
            )],
            want: vec![
                "router api (a): Host(`a`) -> api",
                "service api (a): http://10.0.0.1:80 @a",
            ],
        },
        Case {
            name: "a router without rule or service gets the defaults",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[("traefik.http.routers.r.entrypoints", "web")],
            )],
            want: vec![
                "router r (a): Host(`a`) -> a eps=web",
                "service a (a): http://10.0.0.1:80 @a",
            ],
        },
        Case {
            name: "several services: no default router, and a router must name one",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80, 81],
                    &[
                        ("traefik.http.services.x.loadbalancer.server.port", "80"),
                        ("traefik.http.services.y.loadbalancer.server.port", "81"),
                    ],
                ),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80, 81],
                    &[
                        ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
                        ("traefik.http.services.x.loadbalancer.server.port", "80"),
                        ("traefik.http.services.y.loadbalancer.server.port", "81"),
                    ],
                ),
            ],
            want: vec![
                "router r (b): PathPrefix(`/`) ->  DISABLED",
                "service x (a,b): http://10.0.0.1:80 @a, http://10.0.0.2:80 @b",
                "service y (a,b): http://10.0.0.1:81 @a, http://10.0.0.2:81 @b",
                "error router \"r\" (task \"b\"): has no service and task b defines several: \
                 x, y; set traefik.http.routers.r.service",
            ],
        },
        Case {
            name: "no port anywhere",
            opts: opts(),
            tasks: vec![enabled("a", "10.0.0.1", &[], &[])],
            want: vec![
                "router a (a): Host(`a`) -> a DISABLED",
                "service a (a):  DISABLED",
                "error router \"a\" (task \"a\"): service \"a\" is disabled",
                "error service \"a\" (task \"a\"): no port: set \
                 traefik.http.services.a.loadbalancer.server.port or expose a container port",
            ],
        },
    ]);
}

#[test]
fn servers() {
    let svc = |key: &'static str| -> &'static str {
        match key {
            "port" => "traefik.http.services.s.loadbalancer.server.port",
            "scheme" => "traefik.http.services.s.loadbalancer.server.scheme",
            _ => "traefik.http.services.s.loadbalancer.server.weight",
        }
    };
    // One explicit rule, so tasks of different names define the same router.
    let routed = |labels: &[(&'static str, &'static str)]| {
        let mut labels = labels.to_vec();
        labels.push(("traefik.http.routers.s.rule", "PathPrefix(`/`)"));
        labels
    };
    let unhealthy = Task {
        health: TaskHealth::Unhealthy,
        zone: Some("us-east-1a".to_string()),
        ..enabled("u", "10.0.0.9", &[80], &[])
    };
    run(vec![
        Case {
            name: "port label matching a container port uses its host port",
            opts: opts(),
            tasks: vec![task_mapped(
                "a",
                &[(80, 32768), (50051, 32769)],
                &[
                    ENABLE,
                    (svc("port"), "50051"),
                    (svc("scheme"), "h2c"),
                    (svc("weight"), "5"),
                ],
            )],
            want: vec![
                "router s (a): Host(`a`) -> s",
                "service s (a): h2c://10.0.0.1:32769 w=5 @a",
            ],
        },
        Case {
            name: "port label that is no container port is used as is; weight 0 allowed",
            opts: opts(),
            tasks: vec![task_mapped(
                "a",
                &[(80, 32768)],
                &[
                    ENABLE,
                    (svc("port"), "8443"),
                    (svc("scheme"), "HTTPS"),
                    (svc("weight"), "0"),
                ],
            )],
            want: vec![
                "router s (a): Host(`a`) -> s",
                "service s (a): https://10.0.0.1:8443 w=0 @a",
            ],
        },
        Case {
            name: "unhealthy servers stay listed",
            opts: opts(),
            tasks: vec![unhealthy],
            want: vec![
                "router u (u): Host(`u`) -> u",
                "service u (u): http://10.0.0.9:80 Unhealthy @u",
            ],
        },
        Case {
            name: "bad server values disable the service and its routers",
            opts: opts(),
            tasks: vec![
                enabled("a", "10.0.0.1", &[80], &routed(&[(svc("port"), "80a")])),
                enabled("b", "10.0.0.2", &[80], &routed(&[(svc("scheme"), "ftp")])),
                enabled("c", "10.0.0.3", &[80], &routed(&[(svc("weight"), "-1")])),
                enabled("d", "10.0.0.4", &[80], &routed(&[(svc("port"), "0")])),
            ],
            want: vec![
                "router s (a,b,c,d): PathPrefix(`/`) -> s DISABLED",
                "service s (a,b,c,d):  DISABLED",
                "error router \"s\" (task \"a\"): service \"s\" is disabled",
                "error service \"s\" (task \"a\", label \
                 \"traefik.http.services.s.loadbalancer.server.port\"): invalid port \"80a\": \
                 expected an integer 1-65535",
                "error service \"s\" (task \"b\", label \
                 \"traefik.http.services.s.loadbalancer.server.scheme\"): invalid scheme \
                 \"ftp\": expected http, h2c or https",
                "error service \"s\" (task \"c\", label \
                 \"traefik.http.services.s.loadbalancer.server.weight\"): invalid weight \"-1\": \
                 expected an integer 0-4294967295",
                "error service \"s\" (task \"d\", label \
                 \"traefik.http.services.s.loadbalancer.server.port\"): invalid port \"0\": \
                 expected an integer 1-65535",
            ],
        },
        Case {
            name: "the same bad label on many tasks is one error",
            opts: opts(),
            tasks: ["a", "b", "c"]
                .into_iter()
                .map(|id| enabled(id, "10.0.0.1", &[80], &routed(&[(svc("port"), "http")])))
                .collect(),
            want: vec![
                "router s (a,b,c): PathPrefix(`/`) -> s DISABLED",
                "service s (a,b,c):  DISABLED",
                "error router \"s\" (task \"a\"): service \"s\" is disabled",
                "error service \"s\" (task \"a\", label \
                 \"traefik.http.services.s.loadbalancer.server.port\"): invalid port \"http\": \
                 expected an integer 1-65535 (also in 2 other tasks)",
            ],
        },
    ]);
}

#[test]
fn merging() {
    let rg = |id: &str, ip: &str, rule: &'static str| {
        enabled(
            id,
            ip,
            &[50061],
            &[
                ("traefik.http.routers.rg.rule", rule),
                ("traefik.http.routers.rg.entrypoints", "web"),
                ("traefik.http.services.rg.loadbalancer.server.scheme", "h2c"),
            ],
        )
    };
    let from = |provider: &str, t: Task| Task {
        provider: provider.to_string(),
        ..t
    };
    run(vec![
        Case {
            name: "a service and an identical router from 3 tasks merge",
            opts: opts(),
            tasks: vec![
                rg("c", "10.0.0.3", "GRPCService(`routeguide.RouteGuide`)"),
                rg("a", "10.0.0.1", "GRPCService(`routeguide.RouteGuide`)"),
                rg("b", "10.0.0.2", "GRPCService(`routeguide.RouteGuide`)"),
            ],
            want: vec![
                "router rg (a,b,c): GRPCService(`routeguide.RouteGuide`) -> rg eps=web",
                "service rg (a,b,c): h2c://10.0.0.1:50061 @a, h2c://10.0.0.2:50061 @b, \
                 h2c://10.0.0.3:50061 @c",
            ],
        },
        Case {
            name: "conflicting routers are disabled, naming both tasks, once per variant",
            opts: opts(),
            tasks: vec![
                rg("a", "10.0.0.1", "PathPrefix(`/x`)"),
                rg("b", "10.0.0.2", "PathPrefix(`/yy`)"),
                rg("c", "10.0.0.3", "PathPrefix(`/yy`)"),
                rg("d", "10.0.0.4", "PathPrefix(`/x`)"),
            ],
            want: vec![
                "router rg (a,b,c,d): PathPrefix(`/x`) -> rg eps=web DISABLED",
                "service rg (a,b,c,d): h2c://10.0.0.1:50061 @a, h2c://10.0.0.2:50061 @b, \
                 h2c://10.0.0.3:50061 @c, h2c://10.0.0.4:50061 @d",
                "error router \"rg\" (task \"b\"): defined differently by tasks a and b: rule \
                 `PathPrefix(`/x`)` vs `PathPrefix(`/yy`)`; priority 16 vs 17",
            ],
        },
        Case {
            name: "default routers of different task families conflict",
            opts: opts(),
            tasks: vec![
                Task {
                    group: Some("service:one".to_string()),
                    ..enabled("a", "10.0.0.1", &[80], &[("traefik.backend", "api")])
                },
                Task {
                    group: Some("service:two".to_string()),
                    ..enabled("b", "10.0.0.2", &[80], &[("traefik.backend", "api")])
                },
            ],
            want: vec![
                "router api (a,b): Host(`service-one`) -> api DISABLED",
                "service api (a,b): http://10.0.0.1:80 @a, http://10.0.0.2:80 @b",
                "error router \"api\" (task \"b\"): defined differently by tasks a and b: rule \
                 `Host(`service-one`)` vs `Host(`service-two`)`",
            ],
        },
        Case {
            name: "the same names from two providers conflict",
            opts: opts(),
            tasks: vec![
                from("file", rg("a", "10.0.0.1", "PathPrefix(`/`)")),
                from("ecs", rg("a", "10.0.0.2", "PathPrefix(`/`)")),
            ],
            want: vec![
                "router rg (a,a): PathPrefix(`/`) -> rg eps=web DISABLED",
                "service rg (a,a): h2c://10.0.0.2:50061 @a, h2c://10.0.0.1:50061 @a DISABLED",
                "error router \"rg\" (task \"a\"): service \"rg\" is disabled",
                "error router \"rg\" (task \"a\"): defined differently by tasks a@ecs and \
                 a@file: provider ecs vs file",
                "error service \"rg\" (task \"a\"): defined differently by tasks a@ecs and \
                 a@file: provider ecs vs file",
            ],
        },
        Case {
            name: "a broken definition does not make the others conflict",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80],
                    &[
                        ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
                        ("traefik.http.routers.r.priority", "high"),
                    ],
                ),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80],
                    &[("traefik.http.routers.r.rule", "PathPrefix(`/`)")],
                ),
            ],
            want: vec![
                "router r (a,b): PathPrefix(`/`) -> b DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "service b (b): http://10.0.0.2:80 @b",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.priority\"): \
                 invalid priority \"high\": expected an integer",
            ],
        },
    ]);
}

#[test]
fn routers() {
    let r = |key: &str| format!("traefik.http.routers.r.{key}");
    let keys: Vec<String> = ["rule", "priority", "service", "entrypoints", "tls", "rulez"]
        .iter()
        .map(|k| r(k))
        .collect();
    let k = |i: usize| -> &str { &keys[i] };
    let one = |labels: &[(&str, &str)]| vec![enabled("a", "10.0.0.1", &[80], labels)];
    run(vec![
        Case {
            name: "all router settings",
            opts: opts(),
            tasks: one(&[
                (k(0), "PathPrefix(`/a`)"),
                (k(1), "-3"),
                (k(2), "a"),
                ("traefik.http.routers.r.entryPoints", " websecure , web "),
                (k(4), "true"),
            ]),
            want: vec![
                "router r (a): PathPrefix(`/a`) -> a prio=-3 eps=web,websecure tls",
                "service a (a): http://10.0.0.1:80 @a",
            ],
        },
        Case {
            name: "an invalid rule disables the router",
            opts: opts(),
            tasks: one(&[(k(0), "PathPrefix(`/a`")]),
            want: vec![
                "router r (a): PathPrefix(`/a` -> a DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.rule\"): rule: \
                 column *",
            ],
        },
        Case {
            name: "bad values",
            opts: opts(),
            tasks: one(&[(k(0), " "), (k(1), "1.5"), (k(3), "web,,x"), (k(4), "yes")]),
            want: vec![
                "router r (a):  -> a DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.entrypoints\"): \
                 invalid entrypoints \"web,,x\": expected comma-separated, non-empty \
                 entrypoint names",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.priority\"): \
                 invalid priority \"1.5\": expected an integer",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.rule\"): empty \
                 rule: expected a rule such as PathPrefix(`/`)",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.tls\"): invalid \
                 boolean \"yes\": expected true or false",
            ],
        },
        Case {
            name: "unknown router key and middlewares",
            opts: opts(),
            tasks: vec![
                enabled("a", "10.0.0.1", &[80], &[(k(5), "PathPrefix(`/a`)")]),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80],
                    &[
                        ("traefik.http.routers.m.middlewares", "auth"),
                        ("traefik.http.routers.m.rule", "PathPrefix(`/m`)"),
                    ],
                ),
            ],
            want: vec![
                "router m (b): PathPrefix(`/m`) -> b mw=auth DISABLED",
                "router r (a): Host(`a`) -> a DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "service b (b): http://10.0.0.2:80 @b",
                "error router \"m\" (task \"b\", label \"traefik.http.routers.m.middlewares\"): \
                 unknown middleware \"auth\"",
                "error router \"m\" (task \"b\", label \"traefik.http.routers.m.middlewares\"): \
                 uses middlewares auth: gantry does not apply middlewares to calls yet, so the \
                 router is disabled rather than routed without them",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.rulez\"): \
                 unknown router label \"traefik.http.routers.r.rulez\" (router settings: rule, \
                 priority, service, entrypoints, tls, middlewares, retry.attempts, retry.codes, \
                 retry.methods, tls.*)",
            ],
        },
        Case {
            name: "unknown service reference",
            opts: opts(),
            tasks: one(&[(k(0), "PathPrefix(`/a`)"), (k(2), "nope")]),
            want: vec![
                "router r (a): PathPrefix(`/a`) -> nope DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "error router \"r\" (task \"a\", label \"traefik.http.routers.r.service\"): \
                 unknown service \"nope\"",
            ],
        },
        Case {
            name: "a router may use a service another task defines",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80],
                    &[(k(0), "PathPrefix(`/a`)"), (k(2), "shared")],
                ),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80],
                    &[
                        (
                            "traefik.http.services.shared.loadbalancer.server.port",
                            "80",
                        ),
                        ("traefik.http.routers.other.rule", "PathPrefix(`/b`)"),
                    ],
                ),
            ],
            want: vec![
                "router other (b): PathPrefix(`/b`) -> shared",
                "router r (a): PathPrefix(`/a`) -> shared",
                "service a (a): http://10.0.0.1:80 @a",
                "service shared (b): http://10.0.0.2:80 @b",
            ],
        },
    ]);
}

#[test]
fn unsupported_and_unknown_labels() {
    run(vec![
        Case {
            name: "task-level labels: HTTP objects are still built",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[
                    ("traefik.tcp.routers.t.rule", "HostSNI(`*`)"),
                    ("traefik.udp.services.u.loadbalancer.server.port", "53"),
                    ("traefik.http.middlewares.auth.basicauth.users", "x"),
                    ("traefik.docker.network", "bridge"),
                    ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
                    ("com.amazonaws.ecs.cluster", "default"),
                ],
            )],
            want: vec![
                "router r (a): PathPrefix(`/`) -> a",
                "service a (a): http://10.0.0.1:80 @a",
                "middleware auth (a): basicAuth users=x",
                "error task \"a\" (task \"a\", label \"traefik.tcp.routers.t.rule\"): TCP/UDP \
                 routing is not supported",
                "error task \"a\" (task \"a\", label \
                 \"traefik.udp.services.u.loadbalancer.server.port\"): TCP/UDP routing is not \
                 supported",
                "warning task \"a\" (task \"a\", label \"traefik.docker.network\"): ignored: a \
                 label of Traefik's Docker provider, which means nothing on ECS",
            ],
        },
        Case {
            name: "a label gantry cannot read at all disables every router of its task",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80],
                    &[
                        ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
                        ("traefik.http.routers.s.rule", "PathPrefix(`/s`)"),
                        ("traefik.http.routers.s.service", "a"),
                        // A typo of frontend.auth.basic.users: it may ask for anything.
                        ("traefik.fronted.auth.basic.users", "ops:x"),
                    ],
                ),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80],
                    &[("traefik.http.routers.t.rule", "PathPrefix(`/t`)")],
                ),
            ],
            want: vec![
                "router r (a): PathPrefix(`/`) -> a DISABLED",
                "router s (a): PathPrefix(`/s`) -> a DISABLED",
                "router t (b): PathPrefix(`/t`) -> b",
                "service a (a): http://10.0.0.1:80 @a",
                "service b (b): http://10.0.0.2:80 @b",
                "error router \"r\" (task \"a\", label \"traefik.fronted.auth.basic.users\"): \
                 unknown label*",
                "error router \"s\" (task \"a\", label \"traefik.fronted.auth.basic.users\"): \
                 unknown label*",
            ],
        },
        Case {
            name: "service keys: Traefik options honoured, unknown ones refused",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80],
                    &[(
                        "traefik.http.services.s.loadbalancer.responseforwarding.flushinterval",
                        "1s",
                    )],
                ),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80],
                    &[("traefik.http.services.w.weighted.services[0].name", "s")],
                ),
                enabled(
                    "c",
                    "10.0.0.3",
                    &[80],
                    &[(
                        "traefik.http.services.p.loadbalancer.passhostheader",
                        "false",
                    )],
                ),
                enabled(
                    "d",
                    "10.0.0.4",
                    &[80],
                    &[(
                        "traefik.http.services.q.loadbalancer.passHostHeader",
                        "true",
                    )],
                ),
            ],
            // passhostheader=false and responseforwarding.flushinterval are Traefik
            // options gantry honours; an unknown key disables the service.
            want: vec![
                "router p (c): Host(`c`) -> p",
                "router q (d): Host(`d`) -> q",
                "router s (a): Host(`a`) -> s",
                "router w (b): Host(`b`) -> w DISABLED",
                "service p (c): http://10.0.0.3:80 @c",
                "service q (d): http://10.0.0.4:80 @d",
                "service s (a): http://10.0.0.1:80 @a",
                "service w (b): http://10.0.0.2:80 @b DISABLED",
                "error router \"w\" (task \"b\"): service \"w\" is disabled",
                "error service \"w\" (task \"b\", label \
                 \"traefik.http.services.w.weighted.services[0].name\"): unknown weighted-service \
                 label \"traefik.http.services.w.weighted.services[0].name\": write \
                 <prefix>.http.services.<name>.weighted.services.<service>.weight=<n>",
            ],
        },
    ]);
}

#[test]
fn v1_labels() {
    run(vec![
        Case {
            name: "every v1 key",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80, 50051],
                &[
                    ("traefik.frontend.rule", "Host:a.com"),
                    ("traefik.frontend.priority", "50"),
                    ("traefik.frontend.entryPoints", "web"),
                    ("traefik.protocol", "h2c"),
                    ("traefik.port", "50051"),
                    ("traefik.weight", "2"),
                    ("traefik.backend", "legacy"),
                ],
            )],
            want: vec![
                "router legacy (a): Host(`a.com`) -> legacy prio=50 eps=web",
                "service legacy (a): h2c://10.0.0.1:50051 w=2 @a",
            ],
        },
        Case {
            name: "v1 service labels only: default router, default backend name",
            opts: opts(),
            tasks: vec![enabled("a", "10.0.0.1", &[80], &[("traefik.port", "8080")])],
            want: vec![
                "router a (a): Host(`a`) -> a",
                "service a (a): http://10.0.0.1:8080 @a",
            ],
        },
        Case {
            name: "a task with v2 labels is read as v2 only, as Traefik v2 reads it",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[
                    ("traefik.frontend.rule", "Host:a.com"),
                    ("traefik.frontend.priority", "50"),
                    ("traefik.port", "bad"),
                    ("traefik.protocol", "h2c"),
                    ("traefik.http.routers.a.rule", "PathPrefix(`/v2`)"),
                    ("traefik.http.services.a.loadbalancer.server.port", "9000"),
                ],
            )],
            want: vec![
                "router a (a): PathPrefix(`/v2`) -> a",
                "service a (a): http://10.0.0.1:9000 @a",
                "warning task \"a\" (task \"a\", label \"traefik.frontend.priority\"): ignored: a \
                 Traefik v1 label on a task that has v2 labels (Traefik v2 reads only those)",
                "warning task \"a\" (task \"a\", label \"traefik.frontend.rule\"): ignored: a \
                 Traefik v1 label on a task that has v2 labels (Traefik v2 reads only those)",
                "warning task \"a\" (task \"a\", label \"traefik.port\"): ignored: a \
                 Traefik v1 label on a task that has v2 labels (Traefik v2 reads only those)",
                "warning task \"a\" (task \"a\", label \"traefik.protocol\"): ignored: a \
                 Traefik v1 label on a task that has v2 labels (Traefik v2 reads only those)",
            ],
        },
        Case {
            name: "untranslatable v1 rule names the v1 label",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[
                    ("traefik.frontend.rule", "nonsense"),
                    ("traefik.protocol", "grpc"),
                ],
            )],
            want: vec![
                "router a (a):  -> a DISABLED",
                "service a (a):  DISABLED",
                "error router \"a\" (task \"a\"): service \"a\" is disabled",
                "error router \"a\" (task \"a\", label \"traefik.frontend.rule\"): invalid v1 \
                 rule: column*",
                "error service \"a\" (task \"a\", label \"traefik.protocol\"): invalid protocol \
                 \"grpc\": expected http, h2c or https",
            ],
        },
    ]);
}

#[test]
fn output_does_not_depend_on_task_order() {
    let tasks: Vec<Task> = (0..40)
        .map(|i| {
            let ip = format!("10.0.{}.{}", i / 10, i % 10 + 1);
            let rule = if i % 7 == 3 {
                "PathPrefix(`/odd`)"
            } else {
                "PathPrefix(`/`)"
            };
            let port = if i % 11 == 5 { "x" } else { "80" };
            enabled(
                &format!("t{i:02}"),
                &ip,
                &[80],
                &[
                    ("traefik.http.routers.r.rule", rule),
                    ("traefik.http.services.s.loadbalancer.server.port", port),
                    ("traefik.http.services.s.loadbalancer.server.scheme", "h2c"),
                ],
            )
        })
        .collect();
    let want = build(&tasks, &opts());
    assert!(!want.errors.is_empty());
    let mut shuffled = tasks.clone();
    shuffled.reverse();
    shuffled.rotate_left(13);
    assert_eq!(build(&shuffled, &opts()), want);
    shuffled.sort_by_key(|t| std::cmp::Reverse(t.ip));
    assert_eq!(build(&shuffled, &opts()), want);
}

#[test]
fn duplicate_task_ids_are_reported() {
    let t = enabled("a", "10.0.0.1", &[80], &[]);
    let config = build(&[t.clone(), t], &opts());
    assert_eq!(config.services["a"].servers.len(), 1);
    assert_eq!(config.errors.len(), 1);
    assert_eq!(config.errors[0].object, ObjectRef::Task("a".to_string()));
}

#[test]
fn five_thousand_tasks() {
    // 50 services of 100 tasks each, one router each, plus one broken label per service.
    let tasks: Vec<Task> = (0..5000u32)
        .map(|i| {
            let svc = format!("svc{}", i % 50);
            let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            let labels = [
                (
                    format!("traefik.http.routers.{svc}.rule"),
                    format!("PathPrefix(`/{svc}/`)"),
                ),
                (
                    format!("traefik.http.routers.{svc}.entrypoints"),
                    "web".to_string(),
                ),
                (
                    format!("traefik.http.services.{svc}.loadbalancer.server.port"),
                    "50051".to_string(),
                ),
                (
                    format!("traefik.http.services.{svc}.loadbalancer.server.scheme"),
                    "h2c".to_string(),
                ),
                ("traefik.enable".to_string(), "true".to_string()),
            ];
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut t = task_at(&format!("task-{i:05}"), &ip, &[(50051, 50051)], &labels);
            if i < 50 {
                t.labels.insert(
                    format!("traefik.http.routers.{svc}.priority"),
                    "x".to_string(),
                );
            }
            t
        })
        .collect();
    let config = build(&tasks, &opts());
    assert_eq!(config.routers.len(), 50);
    assert_eq!(config.services.len(), 50);
    assert!(config.services.values().all(|s| s.servers.len() == 100));
    assert!(config
        .services
        .values()
        .all(|s| s.status == Status::Enabled));
    assert!(config
        .routers
        .values()
        .all(|r| r.status == Status::Disabled));
    assert_eq!(config.errors.len(), 50);
}

#[test]
fn middlewares() {
    let router = |mw: &'static str| -> [(&'static str, &'static str); 2] {
        [
            ("traefik.http.routers.m.rule", "PathPrefix(`/m`)"),
            ("traefik.http.routers.m.middlewares", mw),
        ]
    };
    let not_yet = "error router \"m\" (task \"a\", label \"traefik.http.routers.m.middlewares\"): \
                   uses middlewares *";
    run(vec![
        Case {
            name: "defined by one task, used by another's router",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80],
                    &[
                        ("traefik.http.middlewares.strip.stripprefix.prefixes", "/m"),
                        ("traefik.http.routers.a.rule", "PathPrefix(`/a`)"),
                    ],
                ),
                enabled("b", "10.0.0.2", &[80], &router("strip@file")),
            ],
            want: vec![
                "router a (a): PathPrefix(`/a`) -> a",
                "router m (b): PathPrefix(`/m`) -> b mw=strip@file DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "service b (b): http://10.0.0.2:80 @b",
                "middleware strip (a): stripPrefix prefixes=/m <- m",
                "error router \"m\" (task \"b\", label \"traefik.http.routers.m.middlewares\"): \
                 uses middlewares strip@file: gantry does not apply middlewares to calls yet, so \
                 the router is disabled rather than routed without them",
            ],
        },
        Case {
            name: "a reference to another provider's middleware of that name is unknown",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[
                    ("traefik.http.middlewares.auth.basicauth.users", "u:x"),
                    ("traefik.http.routers.m.rule", "PathPrefix(`/m`)"),
                    ("traefik.http.routers.m.middlewares", "auth@ecs"),
                ],
            )],
            want: vec![
                "router m (a): PathPrefix(`/m`) -> a mw=auth@ecs DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "middleware auth (a): basicAuth users=u:x",
                "error router \"m\" (task \"a\", label \"traefik.http.routers.m.middlewares\"): \
                 unknown middleware \"auth@ecs\"",
                not_yet,
            ],
        },
        Case {
            name: "a broken or refused middleware disables itself and its routers",
            opts: opts(),
            tasks: vec![enabled(
                "a",
                "10.0.0.1",
                &[80],
                &[
                    ("traefik.http.middlewares.rl.ratelimit.avrage", "10"),
                    ("traefik.http.middlewares.web.grpcweb.alloworigins", "*"),
                    ("traefik.http.routers.m.rule", "PathPrefix(`/m`)"),
                    ("traefik.http.routers.m.middlewares", "rl,web"),
                ],
            )],
            want: vec![
                "router m (a): PathPrefix(`/m`) -> a mw=rl,web DISABLED",
                "service a (a): http://10.0.0.1:80 @a",
                "middleware rl (a): rateLimit  <- m DISABLED",
                "middleware web (a): grpcWeb alloworigins=* <- m DISABLED",
                "error router \"m\" (task \"a\", label \"traefik.http.routers.m.middlewares\"): \
                 middleware \"rl\" is disabled",
                "error router \"m\" (task \"a\", label \"traefik.http.routers.m.middlewares\"): \
                 middleware \"web\" is disabled",
                not_yet,
                "error middleware \"rl\" (task \"a\", label \
                 \"traefik.http.middlewares.rl.ratelimit.avrage\"): unknown option \"avrage\" of \
                 middleware type rateLimit*",
                "error middleware \"web\" (task \"a\", label \
                 \"traefik.http.middlewares.web.grpcweb.alloworigins\"): middleware type grpcWeb \
                 is refused*",
            ],
        },
        Case {
            name: "two tasks defining one middleware differently",
            opts: opts(),
            tasks: vec![
                enabled(
                    "a",
                    "10.0.0.1",
                    &[80],
                    &[("traefik.http.middlewares.p.addprefix.prefix", "/a")],
                ),
                enabled(
                    "b",
                    "10.0.0.2",
                    &[80],
                    &[("traefik.http.middlewares.p.addprefix.prefix", "/b")],
                ),
            ],
            want: vec![
                "router a (a): Host(`a`) -> a",
                "router b (b): Host(`b`) -> b",
                "service a (a): http://10.0.0.1:80 @a",
                "service b (b): http://10.0.0.2:80 @b",
                "middleware p (a,b): addPrefix prefix=/a DISABLED",
                "error middleware \"p\" (task \"b\"): defined differently by tasks a and b: \
                 prefix \"/a\" vs \"/b\"",
            ],
        },
    ]);
}
