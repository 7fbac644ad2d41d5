//! Merges the routers and services of every task into one [`DynamicConfig`].
//!
//! Names are global: the same router or service name from many tasks is one object.
//! A service collects one server per task. Definitions must agree on every setting that
//! is not per server (for routers: all of them; and the provider for both); the first
//! error-free definition (in (provider, task id) order) is the reference, and each
//! differing variant is reported once and disables the object.
//!
//! Once every task is in, rules are compiled (once per router), router → service
//! references are checked, identical errors from many tasks are collapsed into one, and
//! each error is attached to the object it disables.
//!
//! Work is linear in the number of definitions: each is compared with the reference
//! only, and a differing variant is hashed to report it once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::dynamic::{
    ConfigError, DynamicConfig, Middleware, ObjectRef, Router, Server, Service, Severity, Status,
};
use crate::provider::Task;

use super::parse::Problem;
use super::resolve::{MiddlewareSettings, RouterDef, RouterSettings, ServiceSettings, TaskDefs};

/// Who defined an object.
#[derive(Debug, Clone)]
struct Origin {
    provider: String,
    task: String,
}

impl Origin {
    fn of(task: &Task) -> Origin {
        Origin {
            provider: task.provider.clone(),
            task: task.id.clone(),
        }
    }
}

/// An object as merged so far: `shown` is the reference definition (the first
/// error-free one, else the first), the one the others are compared with by their
/// settings `S`.
#[derive(Debug)]
struct Acc<D, S> {
    shown: D,
    origin: Origin,
    /// Whether `shown` is error-free, i.e. other definitions are compared with it.
    clean: bool,
    tasks: Vec<String>,
    /// Differing (provider, settings) already reported.
    reported: HashSet<(String, S)>,
}

impl<D, S: Clone + Eq + std::hash::Hash> Acc<D, S> {
    fn new(shown: D, task: &Task, clean: bool) -> Acc<D, S> {
        Acc {
            shown,
            origin: Origin::of(task),
            clean,
            tasks: vec![task.id.clone()],
            reported: HashSet::new(),
        }
    }

    /// Takes `task`'s definition of the same object. Returns the message to report
    /// when it is error-free and differs from the reference (in its settings, as
    /// `settings` reads them, or its provider), the first time that variant is seen.
    fn offer(
        &mut self,
        def: D,
        task: &Task,
        clean: bool,
        settings: fn(&D) -> &S,
        diff: fn(&S, &Origin, &S, &Task) -> String,
    ) -> Option<String> {
        self.tasks.push(task.id.clone());
        if !clean {
            return None;
        }
        if !self.clean {
            (self.shown, self.origin, self.clean) = (def, Origin::of(task), true);
            return None;
        }
        let (reference, other) = (settings(&self.shown), settings(&def));
        if reference == other && self.origin.provider == task.provider {
            return None;
        }
        let message = diff(reference, &self.origin, other, task);
        self.reported
            .insert((task.provider.clone(), other.clone()))
            .then_some(message)
    }
}

type RouterAcc = Acc<RouterDef, RouterSettings>;

/// A service as merged so far: its settings, and a server from each task.
#[derive(Debug)]
struct ServiceAcc {
    merged: Acc<ServiceSettings, ServiceSettings>,
    servers: Vec<Server>,
}

/// The settings of a definition that is its settings (services, middlewares).
fn itself<S>(s: &S) -> &S {
    s
}

/// Accumulates task definitions; [`Merger::finish`] yields the configuration.
#[derive(Debug, Default)]
pub(crate) struct Merger {
    routers: BTreeMap<String, RouterAcc>,
    services: BTreeMap<String, ServiceAcc>,
    middlewares: BTreeMap<String, Acc<MiddlewareSettings, MiddlewareSettings>>,
    errors: Vec<ConfigError>,
}

impl Merger {
    /// Records a problem with `object`, caused by `task`.
    pub(crate) fn report(&mut self, object: ObjectRef, task: &Task, problem: Problem) {
        self.errors.push(ConfigError {
            severity: problem.severity,
            object,
            provider: task.provider.clone(),
            task: Some(task.id.clone()),
            label: problem.label,
            message: problem.message,
        });
    }

    /// Adds everything `task` defines. Tasks must come in (provider, id) order for the
    /// output not to depend on input order.
    pub(crate) fn add(&mut self, task: &Task, defs: TaskDefs) {
        for problem in defs.problems {
            self.report(ObjectRef::Task(task.id.clone()), task, problem);
        }
        for def in defs.services {
            let clean = !def.problems.iter().any(Problem::is_error);
            for problem in def.problems {
                self.report(ObjectRef::Service(def.name.clone()), task, problem);
            }
            let Some(acc) = self.services.get_mut(&def.name) else {
                let acc = ServiceAcc {
                    merged: Acc::new(def.settings, task, clean),
                    servers: def.server.into_iter().collect(),
                };
                self.services.insert(def.name, acc);
                continue;
            };
            acc.servers.extend(def.server);
            if let Some(message) = acc
                .merged
                .offer(def.settings, task, clean, itself, service_diff)
            {
                let object = ObjectRef::Service(def.name);
                self.report(object, task, Problem::general(message));
            }
        }
        for def in defs.middlewares {
            let clean = !def.problems.iter().any(Problem::is_error);
            for problem in def.problems {
                self.report(ObjectRef::Middleware(def.name.clone()), task, problem);
            }
            let Some(acc) = self.middlewares.get_mut(&def.name) else {
                self.middlewares
                    .insert(def.name, Acc::new(def.settings, task, clean));
                continue;
            };
            if let Some(message) = acc.offer(def.settings, task, clean, itself, middleware_diff) {
                let object = ObjectRef::Middleware(def.name);
                self.report(object, task, Problem::general(message));
            }
        }
        for mut def in defs.routers {
            let clean = !def.problems.iter().any(Problem::is_error);
            for problem in std::mem::take(&mut def.problems) {
                self.report(ObjectRef::Router(def.name.clone()), task, problem);
            }
            let name = def.name.clone();
            let Some(acc) = self.routers.get_mut(&name) else {
                self.routers.insert(name, Acc::new(def, task, clean));
                continue;
            };
            let settings: fn(&RouterDef) -> &RouterSettings = |d| &d.settings;
            if let Some(message) = acc.offer(def, task, clean, settings, router_diff) {
                self.report(ObjectRef::Router(name), task, Problem::general(message));
            }
        }
    }

    /// Checks rules and references, and builds the configuration.
    pub(crate) fn finish(self) -> DynamicConfig {
        let Merger {
            routers,
            services,
            middlewares,
            mut errors,
        } = self;

        let services: BTreeMap<String, Service> = services
            .into_iter()
            .map(|(name, acc)| {
                let ServiceAcc {
                    merged: acc,
                    mut servers,
                } = acc;
                // Stable: equal ids from different providers keep provider order.
                servers.sort_by(|a, b| a.task.cmp(&b.task));
                let mut tasks = acc.tasks;
                tasks.sort();
                let service = Service {
                    servers,
                    load_balancer: acc.shown.load_balancer,
                    weighted: acc.shown.weighted,
                    pass_host_header: acc.shown.pass_host_header,
                    provider: acc.origin.provider,
                    tasks,
                    status: Status::Enabled,
                    errors: Vec::new(),
                };
                (name, service)
            })
            .collect();

        // A rule is compiled once per router, not once per task defining it; only the
        // reference definition's, as a router without one is disabled anyway.
        for (name, acc) in &routers {
            if !acc.clean {
                continue;
            }
            if let Err(e) = crate::rules::compile(&acc.shown.settings.rule) {
                errors.push(router_error(
                    name,
                    acc,
                    acc.shown.rule_label.clone(),
                    format!("rule: {e}"),
                ));
            }
        }

        // A split's services must exist and have servers of their own.
        for (name, svc) in &services {
            for child in &svc.weighted {
                let problem = match services.get(&child.name) {
                    None => format!("weighted service {:?} does not exist", child.name),
                    Some(c) if !c.weighted.is_empty() => format!(
                        "weighted service {:?} is itself a split; splits do not nest",
                        child.name
                    ),
                    Some(_) => continue,
                };
                errors.push(ConfigError {
                    severity: Severity::Error,
                    object: ObjectRef::Service(name.clone()),
                    provider: svc.provider.clone(),
                    task: svc.tasks.first().cloned(),
                    label: None,
                    message: problem,
                });
            }
        }
        // A split is disabled with any of its services.
        let broken: BTreeSet<String> = errors
            .iter()
            .filter(|e| e.is_error())
            .filter_map(|e| match &e.object {
                ObjectRef::Service(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        for (name, svc) in &services {
            if let Some(child) = svc
                .weighted
                .iter()
                .find(|c| broken.contains(&c.name) && !broken.contains(name))
            {
                errors.push(ConfigError {
                    severity: Severity::Error,
                    object: ObjectRef::Service(name.clone()),
                    provider: svc.provider.clone(),
                    task: svc.tasks.first().cloned(),
                    label: None,
                    message: format!("weighted service {:?} is disabled", child.name),
                });
            }
        }

        // Every service error disables its service; routers to it are disabled too.
        let disabled: BTreeSet<String> = errors
            .iter()
            .filter(|e| e.is_error())
            .filter_map(|e| match &e.object {
                ObjectRef::Service(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        for (name, acc) in &routers {
            let service = &acc.shown.settings.service;
            if service.is_empty() {
                continue; // Could not be worked out: already reported.
            }
            let message = if !services.contains_key(service) {
                format!("unknown service {service:?}")
            } else if disabled.contains(service) {
                format!("service {service:?} is disabled")
            } else {
                continue;
            };
            errors.push(router_error(
                name,
                acc,
                acc.shown.service_label.clone(),
                message,
            ));
        }

        // A router never runs without a middleware it names: an unknown or disabled
        // one disables it.
        let broken_middlewares: BTreeSet<String> = errors
            .iter()
            .filter(|e| e.is_error())
            .filter_map(|e| match &e.object {
                ObjectRef::Middleware(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let mut used_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, acc) in &routers {
            for reference in &acc.shown.settings.middlewares {
                let (wanted, provider) = match reference.split_once('@') {
                    Some((n, p)) => (n, Some(p)),
                    None => (reference.as_str(), None),
                };
                let found = middlewares
                    .get(wanted)
                    .filter(|m| provider.is_none_or(|p| m.origin.provider == p));
                if found.is_some() {
                    let users = used_by.entry(wanted.to_string()).or_default();
                    if users.last() != Some(name) {
                        users.push(name.clone());
                    }
                }
                let message = match found {
                    None => format!("unknown middleware {reference:?}"),
                    Some(_) if broken_middlewares.contains(wanted) => {
                        format!("middleware {reference:?} is disabled")
                    }
                    Some(_) => continue,
                };
                let label = acc.shown.middlewares_label.clone();
                errors.push(router_error(name, acc, label, message));
            }
        }
        let middlewares: BTreeMap<String, Middleware> = middlewares
            .into_iter()
            .map(|(name, acc)| {
                let mut tasks = acc.tasks;
                tasks.sort();
                let middleware = Middleware {
                    kind: acc.shown.kind,
                    options: acc.shown.options,
                    provider: acc.origin.provider,
                    tasks,
                    used_by: used_by.remove(&name).unwrap_or_default(),
                    status: Status::Enabled,
                    errors: Vec::new(),
                };
                (name, middleware)
            })
            .collect();

        let routers: BTreeMap<String, Router> = routers
            .into_iter()
            .map(|(name, acc)| {
                let mut tasks = acc.tasks;
                tasks.sort();
                let s = acc.shown.settings;
                let router = Router {
                    rule: s.rule,
                    priority: s.priority,
                    service: s.service,
                    entry_points: s.entry_points,
                    tls: s.tls,
                    middlewares: s.middlewares,
                    retry: s.retry,
                    provider: acc.origin.provider,
                    tasks,
                    status: Status::Enabled,
                    errors: Vec::new(),
                };
                (name, router)
            })
            .collect();

        let mut config = DynamicConfig {
            routers,
            services,
            middlewares,
            errors: collapse(errors),
        };
        for error in config.errors.iter().filter(|e| e.is_error()) {
            let (status, list) = match &error.object {
                ObjectRef::Router(name) => match config.routers.get_mut(name) {
                    Some(r) => (&mut r.status, &mut r.errors),
                    None => continue,
                },
                ObjectRef::Service(name) => match config.services.get_mut(name) {
                    Some(s) => (&mut s.status, &mut s.errors),
                    None => continue,
                },
                ObjectRef::Middleware(name) => match config.middlewares.get_mut(name) {
                    Some(m) => (&mut m.status, &mut m.errors),
                    None => continue,
                },
                ObjectRef::Task(_) | ObjectRef::Provider(_) => continue,
            };
            *status = Status::Disabled;
            list.push(error.to_string());
        }
        config
    }
}

/// An error about a router as a whole, attributed to its reference definition.
fn router_error(
    name: &str,
    acc: &RouterAcc,
    label: Option<String>,
    message: String,
) -> ConfigError {
    ConfigError {
        severity: Severity::Error,
        object: ObjectRef::Router(name.to_string()),
        provider: acc.origin.provider.clone(),
        task: Some(acc.origin.task.clone()),
        label,
        message,
    }
}

/// Collapses errors that differ only by task (the same bad label on every task of an
/// ECS service) into one naming the first task and counting the others, then sorts.
fn collapse(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    type Key = (Severity, ObjectRef, String, Option<String>, String);
    let mut groups: BTreeMap<Key, (Option<String>, usize)> = BTreeMap::new();
    for e in errors {
        let group = groups
            .entry((e.severity, e.object, e.provider, e.label, e.message))
            .or_insert((None, 0));
        if group.1 == 0 || e.task < group.0 {
            group.0 = e.task;
        }
        group.1 += 1;
    }
    let mut out: Vec<ConfigError> = groups
        .into_iter()
        .map(
            |((severity, object, provider, label, mut message), (task, count))| {
                if count > 1 {
                    let others = count - 1;
                    let s = if others == 1 { "" } else { "s" };
                    message.push_str(&format!(" (also in {others} other task{s})"));
                }
                ConfigError {
                    severity,
                    object,
                    provider,
                    task,
                    label,
                    message,
                }
            },
        )
        .collect();
    out.sort();
    out
}

/// "defined differently by tasks a and b: rule `X` vs `Y`; …".
fn router_diff(a: &RouterSettings, origin: &Origin, b: &RouterSettings, task: &Task) -> String {
    let mut parts = Vec::new();
    if origin.provider != task.provider {
        parts.push(format!("provider {} vs {}", origin.provider, task.provider));
    }
    if a.rule != b.rule {
        parts.push(format!("rule `{}` vs `{}`", a.rule, b.rule));
    }
    if a.priority != b.priority {
        parts.push(format!("priority {} vs {}", a.priority, b.priority));
    }
    if a.service != b.service {
        parts.push(format!("service {:?} vs {:?}", a.service, b.service));
    }
    if a.entry_points != b.entry_points {
        parts.push(format!(
            "entrypoints [{}] vs [{}]",
            a.entry_points.join(", "),
            b.entry_points.join(", ")
        ));
    }
    if a.tls != b.tls {
        parts.push(format!("tls {} vs {}", a.tls, b.tls));
    }
    if a.retry != b.retry {
        parts.push("retry settings differ".to_string());
    }
    if a.middlewares != b.middlewares {
        parts.push(format!(
            "middlewares [{}] vs [{}]",
            a.middlewares.join(", "),
            b.middlewares.join(", ")
        ));
    }
    differently(origin, task, parts)
}

/// "defined differently by tasks a and b: provider ecs vs file; …".
fn middleware_diff(
    a: &MiddlewareSettings,
    origin: &Origin,
    b: &MiddlewareSettings,
    task: &Task,
) -> String {
    let mut parts = Vec::new();
    if origin.provider != task.provider {
        parts.push(format!("provider {} vs {}", origin.provider, task.provider));
    }
    if a.kind != b.kind {
        parts.push(format!("type {} vs {}", a.kind, b.kind));
    }
    let keys: BTreeSet<&String> = a.options.keys().chain(b.options.keys()).collect();
    for key in keys {
        let (x, y) = (a.options.get(key), b.options.get(key));
        if x != y {
            let show =
                |v: Option<&String>| v.map_or_else(|| "unset".to_string(), |v| format!("{v:?}"));
            parts.push(format!("{key} {} vs {}", show(x), show(y)));
        }
    }
    differently(origin, task, parts)
}

fn service_diff(a: &ServiceSettings, origin: &Origin, b: &ServiceSettings, task: &Task) -> String {
    let mut parts = Vec::new();
    if origin.provider != task.provider {
        parts.push(format!("provider {} vs {}", origin.provider, task.provider));
    }
    if a.pass_host_header != b.pass_host_header {
        parts.push(format!(
            "passhostheader {} vs {}",
            a.pass_host_header, b.pass_host_header
        ));
    }
    parts.extend(super::balancing::differences(
        &a.load_balancer,
        &b.load_balancer,
    ));
    differently(origin, task, parts)
}

fn differently(origin: &Origin, task: &Task, parts: Vec<String>) -> String {
    // Ids are unique within a provider only: qualify them when providers differ.
    let (a, b) = if origin.provider == task.provider {
        (origin.task.clone(), task.id.clone())
    } else {
        (
            format!("{}@{}", origin.task, origin.provider),
            format!("{}@{}", task.id, task.provider),
        )
    };
    format!(
        "defined differently by tasks {a} and {b}: {}",
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::resolve::ServiceDef;
    use crate::labels::tests::task;

    fn service_def(name: &str, pass_host_header: bool) -> ServiceDef {
        ServiceDef {
            name: name.to_string(),
            settings: ServiceSettings {
                pass_host_header,
                load_balancer: Default::default(),
                weighted: Vec::new(),
            },
            server: None,
            problems: Vec::new(),
        }
    }

    #[test]
    fn service_level_settings_conflict_once_per_variant() {
        // No label yields passhostheader=false today; this checks the machinery that
        // strategy, stickiness and health checks will use.
        let mut merger = Merger::default();
        for (id, phh) in [("a", true), ("b", false), ("c", false), ("d", true)] {
            let defs = TaskDefs {
                services: vec![service_def("s", phh)],
                ..TaskDefs::default()
            };
            merger.add(&task(id, &[80], &[]), defs);
        }
        let config = merger.finish();
        let s = &config.services["s"];
        assert_eq!(s.status, Status::Disabled);
        assert_eq!(s.tasks, ["a", "b", "c", "d"]);
        assert_eq!(
            config.errors,
            vec![ConfigError {
                severity: Severity::Error,
                object: ObjectRef::Service("s".to_string()),
                provider: "file".to_string(),
                task: Some("b".to_string()),
                label: None,
                message: "defined differently by tasks a and b: passhostheader true vs false"
                    .to_string(),
            }]
        );
    }

    #[test]
    fn identical_errors_collapse() {
        let error = |task: &str| ConfigError {
            severity: Severity::Error,
            object: ObjectRef::Service("s".to_string()),
            provider: "ecs".to_string(),
            task: Some(task.to_string()),
            label: Some("traefik.port".to_string()),
            message: "bad".to_string(),
        };
        let got = collapse(vec![error("c"), error("a"), error("b")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].task.as_deref(), Some("a"));
        assert_eq!(got[0].message, "bad (also in 2 other tasks)");
        let got = collapse(vec![error("c"), error("a")]);
        assert_eq!(got[0].message, "bad (also in 1 other task)");
    }
}
