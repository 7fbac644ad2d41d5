//! Turns one task's parsed labels into the routers and services it contributes: applies
//! Traefik's defaults (default service, default router, default rule and priority, a
//! router's implied service), works out the server address, and reports every value in
//! effect that is invalid.
//!
//! Everything here is about one task; what happens when several tasks define the same
//! object is [`super::merge`]'s business.

use std::net::SocketAddr;

use crate::dynamic::{LoadBalancer, Scheme, Server, WeightedService};
use crate::provider::Task;

use super::parse::{Problem, RouterLabels, ServiceLabels, TaskLabels, Value};

/// A router's settings once defaults are applied: what must be equal for two tasks to
/// define "the same" router.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouterSettings {
    pub rule: String,
    pub priority: i64,
    /// Empty when it could not be worked out (an error says why).
    pub service: String,
    pub entry_points: Vec<String>,
    pub tls: bool,
    pub retry: Option<crate::dynamic::RouterRetry>,
    /// The middlewares the router applies, in order, as written (`name[@provider]`).
    pub middlewares: Vec<String>,
}

/// A service's settings that belong to the service rather than to one server: they
/// must be equal across the tasks that define the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ServiceSettings {
    /// The client's Host goes to the servers (`true`, the default), or each server's
    /// own address does.
    pub pass_host_header: bool,
    /// Strategy, stickiness, hashing and health checks.
    pub load_balancer: LoadBalancer,
    /// A version split's services and weights, by name; empty for a load balancer.
    pub weighted: Vec<WeightedService>,
}

/// One task's definition of a router.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouterDef {
    pub name: String,
    pub settings: RouterSettings,
    /// The label the rule came from; `None` for the default rule.
    pub rule_label: Option<String>,
    /// The label the service came from; `None` when implied.
    pub service_label: Option<String>,
    /// The label the middlewares came from.
    pub middlewares_label: Option<String>,
    pub problems: Vec<Problem>,
}

/// One task's definition of a service, with the server it adds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServiceDef {
    pub name: String,
    pub settings: ServiceSettings,
    /// `None` when the address could not be worked out (an error says why).
    pub server: Option<Server>,
    pub problems: Vec<Problem>,
}

/// Everything one task contributes to the dynamic configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TaskDefs {
    pub routers: Vec<RouterDef>,
    pub services: Vec<ServiceDef>,
    pub middlewares: Vec<MiddlewareDef>,
    /// Problems with the task as a whole.
    pub problems: Vec<Problem>,
}

/// One task's definition of a middleware.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MiddlewareDef {
    pub name: String,
    pub settings: MiddlewareSettings,
    pub problems: Vec<Problem>,
}

/// What must be equal for two tasks to define "the same" middleware.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MiddlewareSettings {
    /// Traefik's name of the type (`rateLimit`); empty when no label named one.
    pub kind: String,
    /// Option → value, options in lower case (see [`super::middleware`]).
    pub options: std::collections::BTreeMap<String, String>,
}

/// Applies defaults to `labels` and resolves every router and service of `task`.
pub(crate) fn resolve(task: &Task, prefix: &str, labels: TaskLabels) -> TaskDefs {
    let TaskLabels {
        mut routers,
        mut services,
        middlewares,
        mut problems,
        router_problems,
        has_tcp_udp,
    } = labels;
    let default_name = task.default_name();
    // Like Traefik, a task that only describes TCP/UDP routing gets no HTTP defaults.
    let tcp_only = has_tcp_udp && routers.is_empty() && services.is_empty();
    if !tcp_only {
        if services.is_empty() {
            if default_name.is_empty() {
                problems.push(Problem::general(
                    "no service label, and the task has no name to give a default service",
                ));
            } else {
                services.insert(default_name.clone(), ServiceLabels::default());
            }
        }
        if routers.is_empty() && services.len() == 1 {
            if let Some(name) = services.keys().next() {
                routers.insert(name.clone(), RouterLabels::default());
            }
        }
    }

    let service_names: Vec<&str> = services.keys().map(String::as_str).collect();
    let routers = routers
        .into_iter()
        .map(|(name, labels)| {
            let mut def = resolve_router(task, prefix, &default_name, &service_names, name, labels);
            def.problems.extend(router_problems.iter().cloned());
            def
        })
        .collect();
    let services = services
        .into_iter()
        .map(|(name, labels)| resolve_service(task, prefix, name, labels))
        .collect();
    let middlewares = middlewares
        .into_iter()
        .map(|(name, labels)| resolve_middleware(name, labels))
        .collect();
    TaskDefs {
        routers,
        services,
        middlewares,
        problems,
    }
}

fn resolve_middleware(name: String, labels: super::middleware::MiddlewareLabels) -> MiddlewareDef {
    let mut problems = labels.problems;
    let kind = match labels.kind {
        Some((kind, label)) => {
            if let Some(super::middleware::Kind {
                support: super::middleware::Support::Refused(why),
                ..
            }) = super::middleware::kind(kind)
            {
                problems.push(Problem::at(
                    &label,
                    format!("middleware type {kind} is refused: {why}"),
                ));
            }
            kind.to_string()
        }
        // Every label of the middleware was refused (each says why).
        None => String::new(),
    };
    let options = labels
        .options
        .into_iter()
        .map(|(key, written)| (key, written.value))
        .collect();
    MiddlewareDef {
        name,
        settings: MiddlewareSettings { kind, options },
        problems,
    }
}

/// Takes the value of `slot` if it parsed, else reports why and returns `None`.
pub(crate) fn take<T>(
    slot: Option<Value<T>>,
    problems: &mut Vec<Problem>,
) -> Option<(T, Option<String>)> {
    let value = slot?;
    match value.parsed {
        Ok(v) => Some((v, value.label)),
        Err(message) => {
            problems.push(Problem::new(value.label, message));
            None
        }
    }
}

fn resolve_router(
    task: &Task,
    prefix: &str,
    default_name: &str,
    service_names: &[&str],
    name: String,
    labels: RouterLabels,
) -> RouterDef {
    let mut problems = labels.problems;
    let had_rule = labels.rule.is_some();
    let (rule, rule_label) = match take(labels.rule, &mut problems) {
        Some((rule, label)) => (rule, label),
        // Traefik's default rule: ``Host(`{{ normalize .Name }}`)``.
        None if !had_rule && !default_name.is_empty() => (format!("Host(`{default_name}`)"), None),
        None => {
            if !had_rule {
                problems.push(Problem::general(format!(
                    "no rule: set {prefix}.http.routers.{name}.rule (the task has no name \
                     for a default Host rule)"
                )));
            }
            (String::new(), None)
        }
    };
    // Traefik's default priority is the rule's length, so longer rules win.
    let priority = take(labels.priority, &mut problems)
        .map_or_else(|| rule.chars().count() as i64, |(p, _)| p);

    let had_service = labels.service.is_some();
    let (service, service_label) = match take(labels.service, &mut problems) {
        Some((service, label)) => (strip_provider(service, &task.provider), label),
        None if had_service => (String::new(), None),
        None => match service_names {
            [only] => ((*only).to_string(), None),
            [] => {
                problems.push(Problem::general(format!(
                    "no service: set {prefix}.http.routers.{name}.service"
                )));
                (String::new(), None)
            }
            several => {
                problems.push(Problem::general(format!(
                    "has no service and task {} defines several: {}; set \
                     {prefix}.http.routers.{name}.service",
                    task.id,
                    several.join(", ")
                )));
                (String::new(), None)
            }
        },
    };

    let entry_points = take(labels.entry_points, &mut problems)
        .map(|(eps, _)| eps)
        .unwrap_or_default();

    let tls_label = labels.tls.as_ref().and_then(|v| v.label.clone());
    let tls = match take(labels.tls, &mut problems) {
        Some((false, _)) if !labels.tls_options.is_empty() => {
            problems.push(Problem::new(
                tls_label,
                format!("tls is false but {} is set", labels.tls_options.join(", ")),
            ));
            false
        }
        Some((tls, _)) => tls,
        // `tls.certresolver` and friends mean "serve over TLS", as in Traefik.
        None => !labels.tls_options.is_empty(),
    };

    let any_retry = labels.retry_attempts.is_some()
        || labels.retry_codes.is_some()
        || labels.retry_methods.is_some();
    let attempts = take(labels.retry_attempts, &mut problems).map_or(1, |(n, _)| n);
    let codes = take(labels.retry_codes, &mut problems)
        .map_or_else(|| "14".to_string(), |(c, _)| c.to_string());
    let methods = take(labels.retry_methods, &mut problems)
        .map(|(m, _)| m)
        .unwrap_or_default();
    let retry = any_retry.then_some(crate::dynamic::RouterRetry {
        attempts,
        codes,
        methods,
    });

    let middlewares_label = labels.middlewares.as_ref().and_then(|v| v.label.clone());
    let middlewares = take(labels.middlewares, &mut problems)
        .map(|(m, _)| m)
        .unwrap_or_default();
    if !middlewares.is_empty() {
        problems.push(Problem::new(
            middlewares_label.clone(),
            format!(
                "uses middlewares {}: gantry does not apply middlewares to calls yet, so the \
                 router is disabled rather than routed without them",
                middlewares.join(", ")
            ),
        ));
    }

    RouterDef {
        name,
        settings: RouterSettings {
            rule,
            priority,
            service,
            entry_points,
            tls,
            retry,
            middlewares,
        },
        rule_label,
        service_label,
        middlewares_label,
        problems,
    }
}

/// Drops a `@<provider>` suffix naming the task's own provider (`api@ecs`): Traefik
/// users write it, and names are global here. Other suffixes stay, and the reference
/// is then reported as unknown.
fn strip_provider(service: String, provider: &str) -> String {
    match service.rsplit_once('@') {
        Some((name, p)) if p == provider && !name.is_empty() => name.to_string(),
        _ => service,
    }
}

fn resolve_service(task: &Task, prefix: &str, name: String, labels: ServiceLabels) -> ServiceDef {
    if !labels.weighted.is_empty() {
        return resolve_weighted(name, labels);
    }
    let mut problems = labels.problems;
    let pass_host_header = take(labels.pass_host_header, &mut problems).is_none_or(|(p, _)| p);
    let had_port = labels.port.is_some();
    let port = match take(labels.port, &mut problems) {
        Some((port, label)) => match task.host_port(port) {
            Some(0) => {
                problems.push(Problem::new(
                    label,
                    format!("container port {port} has no host port yet"),
                ));
                None
            }
            Some(host) => Some(host),
            // Not a container port: the label names the port to dial as is.
            None => Some(port),
        },
        None if had_port => None,
        None => default_port(task, prefix, &name, &mut problems),
    };
    let load_balancer = super::balancing::resolve(&name, labels.balancing, &mut problems);
    let before = problems.len();
    let scheme = take(labels.scheme, &mut problems).map_or(Scheme::Http, |(s, _)| s);
    let weight = take(labels.weight, &mut problems).map_or(1, |(w, _)| w);
    // A bad scheme or weight leaves the server out rather than show made-up values.
    // The health-check port is a container port too: each task maps it to its own.
    let health_port = match load_balancer.health_check.as_ref().and_then(|h| h.port) {
        Some(port) => match task.host_port(port) {
            Some(0) => {
                problems.push(Problem::general(format!(
                    "healthcheck.port: container port {port} has no host port yet"
                )));
                None
            }
            Some(host) => Some(host),
            None => Some(port),
        },
        None => None,
    };
    let server = port
        .filter(|_| problems.len() == before)
        .map(|port| Server {
            health_port,
            ..Server::new(SocketAddr::new(task.ip, port), scheme, weight, task)
        });
    ServiceDef {
        name,
        settings: ServiceSettings {
            pass_host_header,
            load_balancer,
            weighted: Vec::new(),
        },
        server,
        problems,
    }
}

/// A version split: weighted references to other services, no servers of its own.
fn resolve_weighted(name: String, labels: ServiceLabels) -> ServiceDef {
    let mut problems = labels.problems;
    let own = [
        labels.port.as_ref().and_then(|v| v.label.clone()),
        labels.scheme.as_ref().and_then(|v| v.label.clone()),
        labels.weight.as_ref().and_then(|v| v.label.clone()),
    ];
    for label in own.into_iter().flatten() {
        problems.push(Problem::new(
            Some(label),
            "a weighted service has no servers of its own: set server settings on \
                      the services it splits between",
        ));
    }
    let mut weighted = Vec::new();
    for (child, value) in labels.weighted {
        if child == name {
            problems.push(Problem::new(
                value.label.clone(),
                "a weighted service cannot include itself",
            ));
        }
        if let Some((weight, _)) = take(Some(value), &mut problems) {
            weighted.push(WeightedService {
                name: child,
                weight,
            });
        }
    }
    if !weighted.is_empty() && weighted.iter().all(|w| w.weight == 0) {
        problems.push(Problem::general("every service of the split has weight 0"));
    }
    ServiceDef {
        name,
        settings: ServiceSettings {
            pass_host_header: true,
            load_balancer: super::balancing::resolve("", labels.balancing, &mut problems),
            weighted,
        },
        server: None,
        problems,
    }
}

/// The task's lowest container port, as published on the host.
fn default_port(task: &Task, prefix: &str, name: &str, problems: &mut Vec<Problem>) -> Option<u16> {
    match task.ports.iter().min_by_key(|p| p.container) {
        Some(p) if p.host != 0 => Some(p.host),
        Some(p) => {
            problems.push(Problem::general(format!(
                "container port {} has no host port yet",
                p.container
            )));
            None
        }
        None => {
            problems.push(Problem::general(format!(
                "no port: set {prefix}.http.services.{name}.loadbalancer.server.port or \
                 expose a container port"
            )));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::parse::parse_task;
    use crate::labels::tests::{task, task_mapped};

    fn defs(t: &Task) -> TaskDefs {
        resolve(t, "traefik", parse_task(t, "traefik"))
    }

    fn addr(def: &ServiceDef) -> String {
        def.server
            .as_ref()
            .map_or_else(|| "-".to_string(), |s| s.url.clone())
    }

    #[test]
    fn server_port_table() {
        /// (container→host ports, port label, expected server url or "-").
        type PortCase = (&'static [(u16, u16)], Option<&'static str>, &'static str);
        let cases: &[PortCase] = &[
            (&[(8080, 8080), (80, 80)], None, "http://10.0.0.1:80"),
            (&[(80, 32768)], None, "http://10.0.0.1:32768"),
            (
                &[(80, 32768), (9000, 32769)],
                Some("9000"),
                "http://10.0.0.1:32769",
            ),
            (&[(80, 32768)], Some("7000"), "http://10.0.0.1:7000"),
            (&[], Some("7000"), "http://10.0.0.1:7000"),
            (&[], None, "-"),
            (&[(80, 0)], None, "-"),
            (&[(80, 80)], Some("80a"), "-"),
        ];
        for (ports, label, want) in cases {
            let mut labels = vec![];
            if let Some(port) = label {
                labels.push(("traefik.http.services.s.loadbalancer.server.port", *port));
            }
            let t = task_mapped("t1", ports, &labels);
            let d = defs(&t);
            assert_eq!(d.services.len(), 1, "{ports:?} {label:?}");
            assert_eq!(addr(&d.services[0]), *want, "{ports:?} {label:?}");
            assert_eq!(
                d.services[0].problems.is_empty(),
                *want != "-",
                "{ports:?} {label:?}"
            );
        }
    }

    #[test]
    fn no_port_message_names_the_label() {
        let d = defs(&task("t1", &[], &[]));
        assert_eq!(
            d.services[0].problems,
            vec![Problem::general(
                "no port: set traefik.http.services.t1.loadbalancer.server.port or expose a \
                 container port"
            )]
        );
    }

    #[test]
    fn tls_options_imply_tls() {
        /// (labels besides the rule, expected tls, expected number of problems).
        type TlsCase = (&'static [(&'static str, &'static str)], bool, usize);
        let cases: &[TlsCase] = &[
            (&[], false, 0),
            (&[("traefik.http.routers.r.tls", "true")], true, 0),
            (
                &[("traefik.http.routers.r.tls.certresolver", "le")],
                true,
                0,
            ),
            (
                &[("traefik.http.routers.r.tls.domains[0].main", "a.com")],
                true,
                0,
            ),
            (
                &[
                    ("traefik.http.routers.r.tls", "false"),
                    ("traefik.http.routers.r.tls.options", "modern"),
                ],
                false,
                1,
            ),
            (&[("traefik.http.routers.r.tls.ciphers", "x")], false, 1),
            (&[("traefik.http.routers.r.tls", "yes")], false, 1),
        ];
        for (labels, want_tls, want_problems) in cases {
            let mut labels = labels.to_vec();
            labels.push(("traefik.http.routers.r.rule", "PathPrefix(`/`)"));
            let d = defs(&task("t1", &[80], &labels));
            let r = &d.routers[0];
            assert_eq!(r.settings.tls, *want_tls, "{labels:?}");
            assert_eq!(
                r.problems.len(),
                *want_problems,
                "{labels:?}: {:?}",
                r.problems
            );
        }
    }

    #[test]
    fn service_suffix_naming_own_provider_is_dropped() {
        let d = defs(&task(
            "t1",
            &[80],
            &[
                ("traefik.http.routers.a.service", "api@file"),
                ("traefik.http.routers.b.service", "api@docker"),
            ],
        ));
        assert_eq!(d.routers[0].settings.service, "api");
        assert_eq!(d.routers[1].settings.service, "api@docker");
    }

    #[test]
    fn tcp_only_task_gets_no_http_defaults() {
        let d = defs(&task(
            "t1",
            &[80],
            &[("traefik.tcp.routers.x.rule", "HostSNI(`*`)")],
        ));
        assert!(d.routers.is_empty() && d.services.is_empty());
        assert_eq!(d.problems.len(), 1);
    }
}
