//! Inputs for the label properties: label keys made of the real grammar's pieces and
//! templates, values that reach the value parsers, arbitrary tasks, and well-formed
//! tasks whose settings depend only on object names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gantry::labels::LabelOptions;
use gantry::provider::{Lifecycle, PortMapping, Task, TaskHealth};
use gantry::rules::constraints::Constraint;
use proptest::prelude::*;
use proptest::sample::select;

use super::noisy_text;

pub(crate) use crate::label_segments::SEGMENTS;

/// Values that parse for some setting, so that generated labels get past the parsers.
pub(crate) const VALUES: &[&str] = &[
    "true",
    "false",
    "1",
    "0",
    "80",
    "8080",
    "65536",
    "-1",
    "h2c",
    "http",
    "https",
    "p2c",
    "wrr",
    "hash",
    "sticky",
    "grpc",
    "call",
    "x-user",
    "10s",
    "5",
    "14,4",
    "0-2",
    "r",
    "s",
    "api",
    "api@file",
    "t0",
    "30s",
    "100ms",
    "200",
    "50",
    "web,websecure",
    "/pkg.Svc/Get",
    "/health",
    "Host(`a.com`)",
    "PathPrefix(`/x`) && Method(`GET`)",
    "PathPrefix(`/x`",
    "Host:a.com;PathPrefix:/x",
    "Lax",
    " ",
    "",
];

pub(crate) const PREFIXES: &[&str] = &[
    "traefik", "traefik", "traefik", "Traefik", "traefikx", "other",
];

/// Real label keys, `{}` standing for an object name.
pub(crate) const TEMPLATES: &[&str] = &[
    "enable",
    "http.routers.{}.rule",
    "http.routers.{}.priority",
    "http.routers.{}.service",
    "http.routers.{}.entrypoints",
    "http.routers.{}.tls",
    "http.routers.{}.tls.certresolver",
    "http.routers.{}.tls.domains[0].main",
    "http.routers.{}.retry.attempts",
    "http.routers.{}.retry.codes",
    "http.routers.{}.retry.methods",
    "http.routers.{}.middlewares.x",
    "http.services.{}.loadbalancer.server.port",
    "http.services.{}.loadbalancer.server.scheme",
    "http.services.{}.loadbalancer.server.weight",
    "http.services.{}.loadbalancer.passhostheader",
    "http.services.{}.loadbalancer.strategy",
    "http.services.{}.loadbalancer.hash.header",
    "http.services.{}.loadbalancer.sticky.cookie",
    "http.services.{}.loadbalancer.sticky.cookie.name",
    "http.services.{}.loadbalancer.sticky.cookie.samesite",
    "http.services.{}.loadbalancer.sticky.cookie.maxage",
    "http.services.{}.loadbalancer.healthcheck.mode",
    "http.services.{}.loadbalancer.healthcheck.path",
    "http.services.{}.loadbalancer.healthcheck.service",
    "http.services.{}.loadbalancer.healthcheck.codes",
    "http.services.{}.loadbalancer.healthcheck.interval",
    "http.services.{}.loadbalancer.healthcheck.timeout",
    "http.services.{}.loadbalancer.healthcheck.healthythreshold",
    "http.services.{}.loadbalancer.outlier",
    "http.services.{}.loadbalancer.outlier.consecutive",
    "http.services.{}.loadbalancer.outlier.codes",
    "http.services.{}.loadbalancer.outlier.interval",
    "http.services.{}.loadbalancer.outlier.maxejectionpercent",
    "http.services.{}.loadbalancer.zone.affinity",
    "http.services.{}.loadbalancer.zone.share",
    "http.services.{}.loadbalancer.zone.minservers",
    "http.services.{}.weighted.services.{}.weight",
    "frontend.rule",
    "frontend.priority",
    "frontend.entryPoints",
    "protocol",
    "port",
    "weight",
    "backend",
    "tcp.routers.{}.rule",
];

/// Object names: a few shared ones, and `t0`, the default name of the first task.
pub(crate) const NAMES: &[&str] = &["r", "s", "api", "t0", "A", ""];

pub(crate) fn template_key() -> impl Strategy<Value = String> {
    (select(TEMPLATES), select(NAMES), select(NAMES))
        .prop_map(|(t, a, b)| t.replacen("{}", a, 1).replacen("{}", b, 1))
}

pub(crate) fn label_key() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        8 => select(SEGMENTS).prop_map(str::to_string),
        1 => noisy_text(4),
    ];
    let segments = proptest::collection::vec(segment, 1..8).prop_map(|s| s.join("."));
    let rest = prop_oneof![3 => template_key(), 1 => segments];
    (select(PREFIXES), rest).prop_map(|(prefix, rest)| format!("{prefix}.{rest}"))
}

pub(crate) fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(VALUES).prop_map(str::to_string),
        1 => noisy_text(12),
        1 => any::<String>(),
    ]
}

/// Values shaped like numbers, durations, code lists and booleans, with junk mixed in:
/// what a setting's own parser sees most.
pub(crate) fn setting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,22}(\\.[0-9]{0,3})?(ns|us|µs|ms|s|m|h|¢|\u{a0}|x)?([0-9]{1,22}(ns|s|m|h))?",
        "[-+]?[0-9]{1,24}",
        "[0-9]{1,3}(-[0-9]{1,3})?(,[0-9]{1,3}(-[0-9]{1,3})?){0,3}",
        "(true|false|t|f|yes|TRUE)",
        noisy_text(8),
        any::<String>(),
    ]
}

pub(crate) fn label_map(max: usize) -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(label_key(), label_value(), 0..max)
}

pub(crate) fn ports() -> impl Strategy<Value = Vec<PortMapping>> {
    let port = (
        select(&[80u16, 8080, 50051][..]),
        select(&[0u16, 80, 8080, 32768][..]),
    )
        .prop_map(|(container, host)| PortMapping { container, host });
    proptest::collection::vec(port, 0..3)
}

/// A task with arbitrary labels; `id` is made unique by the caller.
pub(crate) fn any_task(
    id: String,
    labels: BTreeMap<String, String>,
) -> impl Strategy<Value = Task> {
    (
        select(&["file", "ecs"][..]),
        any::<[u8; 4]>(),
        proptest::option::of(select(&["service:api", "svc"][..])),
        proptest::option::of(select(&["web", ""][..])),
        select(&[Lifecycle::Running, Lifecycle::Running, Lifecycle::Stopping][..]),
        select(
            &[
                TaskHealth::Healthy,
                TaskHealth::Unknown,
                TaskHealth::Unhealthy,
            ][..],
        ),
        ports(),
    )
        .prop_map(
            move |(provider, ip, group, container, lifecycle, health, ports)| Task {
                id: id.clone(),
                provider: provider.to_string(),
                ip: IpAddr::from(ip),
                zone: None,
                group: group.map(str::to_string),
                container: container.map(str::to_string),
                lifecycle,
                health,
                ports,
                labels: labels.clone(),
            },
        )
}

pub(crate) fn any_tasks(max: usize) -> impl Strategy<Value = Vec<Task>> {
    proptest::collection::vec((label_map(7), any::<bool>()), 1..max).prop_flat_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (labels, enable))| {
                let mut labels = labels;
                if enable {
                    labels.insert("traefik.enable".to_string(), "true".to_string());
                }
                any_task(format!("t{i}"), labels)
            })
            .collect::<Vec<_>>()
    })
}

pub(crate) fn options() -> impl Strategy<Value = LabelOptions> {
    (any::<bool>(), any::<bool>()).prop_map(|(exposed_by_default, constrained)| LabelOptions {
        prefix: "traefik".to_string(),
        exposed_by_default,
        constraints: constrained
            .then(|| Constraint::parse("!Label(`traefik.enable`, `false`)").ok())
            .flatten(),
    })
}

/// A plain running task at 10.0.0.1 of provider `file`.
pub(crate) fn plain_task(id: &str, ports: &[u16], labels: BTreeMap<String, String>) -> Task {
    Task {
        id: id.to_string(),
        provider: "file".to_string(),
        ip: IpAddr::from([10, 0, 0, 1]),
        zone: None,
        group: None,
        container: None,
        lifecycle: Lifecycle::Running,
        health: TaskHealth::Unknown,
        ports: ports
            .iter()
            .map(|&p| PortMapping {
                container: p,
                host: p,
            })
            .collect(),
        labels,
    }
}

// ---- well-formed tasks ------------------------------------------------------------

pub(crate) const GOOD_RULES: &[&str] = &[
    "Host(`a.com`)",
    "PathPrefix(`/v1`) && Method(`POST`)",
    "GRPCService(`pkg.Svc`) || GRPCMethod(`pkg.Other`, `Get`)",
    "!Header(`x-env`, `dev`) && Query(`k`)",
];

/// Well-formed labels for router `good-r<n>` and the service `good-s<n % 2>` it uses.
/// Settings depend only on the names, so every task that defines them agrees.
pub(crate) fn good_labels(routers: &BTreeSet<usize>, weight: u32) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("traefik.enable".to_string(), "true".to_string());
    for &n in routers {
        let r = format!("traefik.http.routers.good-r{n}");
        let s = n % 2;
        labels.insert(
            format!("{r}.rule"),
            GOOD_RULES[n % GOOD_RULES.len()].to_string(),
        );
        labels.insert(format!("{r}.service"), format!("good-s{s}"));
        labels.insert(format!("{r}.priority"), (10 * n).to_string());
        let svc = format!("traefik.http.services.good-s{s}.loadbalancer");
        labels.insert(format!("{svc}.server.port"), (8080 + s).to_string());
        labels.insert(format!("{svc}.server.weight"), weight.to_string());
        if s == 1 {
            labels.insert(format!("{svc}.server.scheme"), "h2c".to_string());
            labels.insert(format!("{svc}.strategy"), "p2c".to_string());
        }
    }
    labels
}

pub(crate) fn good_tasks() -> impl Strategy<Value = Vec<Task>> {
    let routers = proptest::collection::btree_set(0usize..4, 1..3);
    proptest::collection::vec((routers, 0u32..5), 1..4).prop_map(|specs| {
        specs
            .iter()
            .enumerate()
            .map(|(i, (routers, weight))| {
                plain_task(
                    &format!("good-{i}"),
                    &[8080, 8081],
                    good_labels(routers, *weight),
                )
            })
            .collect()
    })
}

/// Changes the case of the prefix and of keywords in every key: gantry matches them
/// case-insensitively (object names are kept as written).
pub(crate) fn recase(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| {
            let key = k
                .replacen("traefik.", "TRAEFIK.", 1)
                .replace(".http.", ".HTTP.")
                .replace(".routers.", ".Routers.")
                .replace(".loadbalancer.", ".loadBalancer.")
                .replace(".rule", ".Rule")
                .replace(".port", ".Port");
            (key, v.clone())
        })
        .collect()
}
