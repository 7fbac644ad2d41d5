//! Tasks with labels made of the label grammar's own words (and the fuzzer's bytes) →
//! `labels::build`: never a panic; the result does not depend on task order; every
//! error names a task and, when it names a label, one that task really has.
#![no_main]

use std::collections::BTreeMap;
use std::net::IpAddr;

use arbitrary::{Result, Unstructured};
use gantry::labels::{build, LabelOptions};
use gantry::provider::{Lifecycle, PortMapping, Task, TaskHealth};
use gantry::rules::constraints::Constraint;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/label_segments.rs"]
mod label_segments;
use label_segments::SEGMENTS;

/// Real label keys, `{}` standing for an object name.
const TEMPLATES: &[&str] = &[
    "enable",
    "http.routers.{}.rule",
    "http.routers.{}.priority",
    "http.routers.{}.service",
    "http.routers.{}.entrypoints",
    "http.routers.{}.tls",
    "http.routers.{}.tls.certresolver",
    "http.routers.{}.tls.domains[0].sans",
    "http.routers.{}.retry.attempts",
    "http.routers.{}.retry.codes",
    "http.routers.{}.retry.methods",
    "http.services.{}.loadbalancer.server.port",
    "http.services.{}.loadbalancer.server.scheme",
    "http.services.{}.loadbalancer.server.weight",
    "http.services.{}.loadbalancer.passhostheader",
    "http.services.{}.loadbalancer.strategy",
    "http.services.{}.loadbalancer.hash.header",
    "http.services.{}.loadbalancer.sticky.cookie",
    "http.services.{}.loadbalancer.sticky.cookie.name",
    "http.services.{}.loadbalancer.sticky.cookie.secure",
    "http.services.{}.loadbalancer.sticky.cookie.httponly",
    "http.services.{}.loadbalancer.sticky.cookie.samesite",
    "http.services.{}.loadbalancer.sticky.cookie.maxage",
    "http.services.{}.loadbalancer.healthcheck.mode",
    "http.services.{}.loadbalancer.healthcheck.path",
    "http.services.{}.loadbalancer.healthcheck.service",
    "http.services.{}.loadbalancer.healthcheck.codes",
    "http.services.{}.loadbalancer.healthcheck.interval",
    "http.services.{}.loadbalancer.healthcheck.timeout",
    "http.services.{}.loadbalancer.healthcheck.healthythreshold",
    "http.services.{}.loadbalancer.healthcheck.unhealthythreshold",
    "http.services.{}.loadbalancer.outlier",
    "http.services.{}.loadbalancer.outlier.consecutive",
    "http.services.{}.loadbalancer.outlier.codes",
    "http.services.{}.loadbalancer.outlier.failurepercent",
    "http.services.{}.loadbalancer.outlier.minrequests",
    "http.services.{}.loadbalancer.outlier.interval",
    "http.services.{}.loadbalancer.outlier.ejection",
    "http.services.{}.loadbalancer.outlier.maxejection",
    "http.services.{}.loadbalancer.outlier.maxejectionpercent",
    "http.services.{}.loadbalancer.outlier.slowstart",
    "http.services.{}.loadbalancer.zone.affinity",
    "http.services.{}.loadbalancer.zone.share",
    "http.services.{}.loadbalancer.zone.minservers",
    "http.services.{}.loadbalancer.zone.minhealthypercent",
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

/// Object names: shared ones, and the default names of the tasks.
const NAMES: &[&str] = &[
    "r",
    "s",
    "api",
    "task-0",
    "task-1",
    "service-api-web",
    "A",
    "",
];

/// Values that parse for some setting, so that the fuzzer gets past the value parsers.
const VALUES: &[&str] = &[
    "true",
    "false",
    "1",
    "0",
    "80",
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
    "web,websecure",
    "/pkg.Svc/Get",
    "Host(`a.com`)",
    "PathPrefix(`/x`) && Method(`GET`)",
    "Host:a.com;PathPrefix:/x",
    "Lax",
    "",
];

fn text(u: &mut Unstructured<'_>, words: &[&str]) -> Result<String> {
    Ok(if u.ratio(1, 8)? {
        u.arbitrary::<String>()?
    } else {
        (*u.choose(words)?).to_string()
    })
}

fn task(u: &mut Unstructured<'_>, i: usize) -> Result<Task> {
    let mut labels = BTreeMap::new();
    if u.ratio(1, 4)? {
        // Every setting of one router and service given the same value: each value
        // parser meets whatever the fuzzer makes.
        let (name, value) = (text(u, NAMES)?, u.arbitrary::<String>()?);
        for t in TEMPLATES {
            labels.insert(format!("traefik.{}", t.replace("{}", &name)), value.clone());
        }
    }
    for _ in 0..u.int_in_range(0..=12)? {
        let mut key = "traefik".to_string();
        if u.ratio(3, 4)? {
            // A real key with object names filled in.
            let mut template = (*u.choose(TEMPLATES)?).to_string();
            while template.contains("{}") {
                template = template.replacen("{}", &text(u, NAMES)?, 1);
            }
            key.push('.');
            key.push_str(&template);
        } else {
            for _ in 0..u.int_in_range(1..=7)? {
                key.push('.');
                key.push_str(&text(u, SEGMENTS)?);
            }
        }
        labels.insert(key, text(u, VALUES)?);
    }
    let ports = (0..u.int_in_range(0..=3)?)
        .map(|_| {
            Ok(PortMapping {
                container: *u.choose(&[80, 8080, 50051, 1])?,
                host: u.int_in_range(1..=u16::MAX)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let id = if u.ratio(1, 16)? {
        u.arbitrary::<String>()?
    } else {
        format!("task-{i}")
    };
    Ok(Task {
        id,
        provider: (*u.choose(&["file", "ecs"])?).to_string(),
        ip: IpAddr::from(u.arbitrary::<[u8; 4]>()?),
        zone: u.arbitrary()?,
        group: if u.ratio(1, 2)? {
            Some("service:api".to_string())
        } else {
            None
        },
        container: if u.ratio(1, 2)? {
            Some("web".to_string())
        } else {
            None
        },
        lifecycle: *u.choose(&[Lifecycle::Running, Lifecycle::Running, Lifecycle::Stopping])?,
        health: *u.choose(&[
            TaskHealth::Healthy,
            TaskHealth::Unknown,
            TaskHealth::Unhealthy,
        ])?,
        ports,
        labels,
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1..=4)?;
    let tasks = (0..n).map(|i| task(u, i)).collect::<Result<Vec<_>>>()?;
    let opts = LabelOptions {
        prefix: "traefik".to_string(),
        exposed_by_default: u.arbitrary()?,
        constraints: if u.ratio(1, 8)? {
            Constraint::parse("!Label(`traefik.enable`, `false`)").ok()
        } else {
            None
        },
    };
    let config = build(&tasks, &opts);
    for e in &config.errors {
        let Some(id) = &e.task else { continue };
        let Some(task) = tasks.iter().find(|t| &t.id == id) else {
            panic!("error names no task of the input: {e:?}");
        };
        if let Some(label) = &e.label {
            // A duplicate id's labels belong to the other task of that id.
            let dup = tasks.iter().filter(|t| &t.id == id).count() > 1;
            assert!(
                dup || task.labels.contains_key(label),
                "error names a label task {id:?} does not have: {e:?}"
            );
        }
    }
    let unique = {
        let mut ids: Vec<(&str, &str)> = tasks
            .iter()
            .map(|t| (t.provider.as_str(), t.id.as_str()))
            .collect();
        ids.sort();
        ids.windows(2).all(|w| w[0] != w[1])
    };
    if unique {
        let mut reversed = tasks.clone();
        reversed.reverse();
        assert_eq!(
            build(&reversed, &opts),
            config,
            "task order changed the result"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
