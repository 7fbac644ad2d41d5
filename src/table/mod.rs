//! The routing table: a [`DynamicConfig`] compiled for the request path.
//!
//! Immutable once built and shared as `Arc` through an `ArcSwap`: a request loads the
//! current table once and uses it to the end, a rebuild never disturbs it. Rules are
//! compiled matchers, routers are pre-sorted per entrypoint, services hold their
//! balancer. Endpoints (live per-server state and connections) are looked up in the
//! previous table by key and carried over, so a rebuild keeps load, health and
//! connections; a server that left keeps its `Arc` alive only as long as calls on it
//! are still in flight.

mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::balance::retry::RetryBudget;
use crate::balance::{Balancer, Endpoint, EndpointKey, Split};
use crate::dynamic::{ConfigError, DynamicConfig, ObjectRef, Scheme, Severity, Status};
use crate::route_index::RouteIndex;
use crate::rules::{self, Matcher, RequestInfo};
use crate::telemetry::CallStats;

pub use retry::RetryRule;

/// The routing table every entrypoint and background loop reads; swapped whole by
/// the watcher.
pub type SharedTable = Arc<ArcSwap<RoutingTable>>;

/// A compiled router.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub priority: i64,
    /// Calls this router matched, on every entrypoint.
    pub stats: Arc<CallStats>,
    matcher: Matcher,
    service: usize,
    /// Retries of answered calls, when the router asks for them.
    pub retry: Option<Arc<RetryRule>>,
}

impl Route {
    /// Index of the route's service in [`RoutingTable::service`].
    pub fn service(&self) -> usize {
        self.service
    }
}

/// A service ready to pick servers.
#[derive(Debug)]
pub struct ServiceEntry {
    pub name: Arc<str>,
    pub balancer: Balancer,
    /// A version split: calls are passed to one of these services.
    pub split: Option<Split>,
    pub stats: Arc<CallStats>,
    /// Bounds retries of calls no server saw (carried across rebuilds by name).
    pub retry: Arc<RetryBudget>,
    /// The client's Host goes to the servers (`passhostheader`); else each server's
    /// address does.
    pub pass_host: bool,
}

/// A server that left the table with calls still in flight: it gets no new calls;
/// the calls it has may finish until `cut_at`, when its connection is closed.
#[derive(Debug, Clone)]
pub struct Draining {
    pub endpoint: Arc<Endpoint>,
    /// The services it was a server of (for the API).
    pub services: Vec<Arc<str>>,
    pub since: Instant,
    pub cut_at: Instant,
}

/// An entrypoint as the routing table sees it: its name, and whether it
/// terminates TLS (routers with `tls=true` serve only on those). A bare name is a
/// plain entrypoint.
pub trait EntrypointSpec {
    fn name(&self) -> &str;
    fn tls(&self) -> bool {
        false
    }
}

impl EntrypointSpec for String {
    fn name(&self) -> &str {
        self
    }
}

impl EntrypointSpec for (String, bool) {
    fn name(&self) -> &str {
        &self.0
    }
    fn tls(&self) -> bool {
        self.1
    }
}

/// Everything the request path needs, immutable.
#[derive(Debug)]
pub struct RoutingTable {
    config: Arc<DynamicConfig>,
    /// Per entrypoint (by index in the static config), routes by priority.
    entrypoints: Box<[Box<[Route]>]>,
    /// Per entrypoint, its routes indexed by host and first path segment.
    indexes: Box<[RouteIndex]>,
    services: Box<[ServiceEntry]>,
    endpoints: HashMap<EndpointKey, Arc<Endpoint>>,
    /// Counters of every router and service by name, carried across rebuilds so a
    /// reload never resets what the dashboard and `/metrics` show.
    router_stats: HashMap<Arc<str>, Arc<CallStats>>,
    service_stats: HashMap<Arc<str>, Arc<CallStats>>,
    /// Services by name.
    service_index: HashMap<Arc<str>, usize>,
    /// Gantry's own availability zone (zone affinity), carried from table to table.
    zone: Option<Arc<str>>,
    /// Servers gone from the configuration whose calls are finishing.
    draining: Vec<Draining>,
    /// How long they may take (carried from table to table).
    drain: Duration,
    /// What https servers are verified against (carried from table to table).
    upstream_tls: Option<Arc<crate::tls::UpstreamTls>>,
}

impl RoutingTable {
    /// A table that routes nothing (before the first configuration arrives).
    pub fn empty(entrypoints: usize) -> RoutingTable {
        RoutingTable::empty_for(entrypoints, None, DEFAULT_DRAIN)
    }

    /// An empty table for a gantry in `zone` that gives removed servers `drain` to
    /// finish their calls; every table compiled after it keeps both.
    pub fn empty_for(entrypoints: usize, zone: Option<Arc<str>>, drain: Duration) -> RoutingTable {
        RoutingTable {
            zone,
            draining: Vec::new(),
            drain,
            config: Arc::new(DynamicConfig::default()),
            entrypoints: (0..entrypoints).map(|_| Box::default()).collect(),
            indexes: (0..entrypoints).map(|_| RouteIndex::default()).collect(),
            services: Box::default(),
            endpoints: HashMap::new(),
            router_stats: HashMap::new(),
            service_stats: HashMap::new(),
            service_index: HashMap::new(),
            upstream_tls: None,
        }
    }

    /// Trust `tls` for https servers (else the system's roots).
    pub fn with_upstream_tls(mut self, tls: Arc<crate::tls::UpstreamTls>) -> RoutingTable {
        self.upstream_tls = Some(tls);
        self
    }

    /// Compiles a checked configuration (see [`validate`]), reusing `previous`'s
    /// endpoints. `entrypoints` are the static config's entrypoint names, in order.
    pub fn compile(
        config: Arc<DynamicConfig>,
        entrypoints: &[impl EntrypointSpec],
        previous: &RoutingTable,
    ) -> RoutingTable {
        let mut endpoints: HashMap<EndpointKey, Arc<Endpoint>> = HashMap::new();
        let mut services = Vec::new();
        let mut service_index: HashMap<&str, usize> = HashMap::new();
        let mut service_stats = HashMap::new();
        let mut router_stats = HashMap::new();
        for (name, svc) in &config.services {
            if svc.status != Status::Enabled {
                continue;
            }
            let mut servers = Vec::with_capacity(svc.servers.len());
            let mut local = Vec::with_capacity(svc.servers.len());
            for server in &svc.servers {
                local.push(
                    previous.zone.is_some() && server.zone.as_deref() == previous.zone.as_deref(),
                );
                let key = EndpointKey::of(server);
                let ep = endpoints
                    .entry(key)
                    .or_insert_with_key(|key| {
                        previous
                            .endpoints
                            .get(key)
                            .or_else(|| {
                                // Back before it finished draining: same connection.
                                previous
                                    .draining
                                    .iter()
                                    .map(|d| &d.endpoint)
                                    .find(|e| e.key() == key)
                            })
                            .cloned()
                            .unwrap_or_else(|| {
                                Arc::new(match &previous.upstream_tls {
                                    Some(tls) => Endpoint::with_tls(key.clone(), Some(tls)),
                                    None => Endpoint::new(key.clone()),
                                })
                            })
                    })
                    .clone();
                ep.observe_platform(server.health, server.lifecycle);
                servers.push((ep, server.weight));
            }
            service_index.insert(name.as_str(), services.len());
            let name: Arc<str> = name.as_str().into();
            let stats = carry(&previous.service_stats, &name);
            service_stats.insert(name.clone(), stats.clone());
            let retry = previous
                .service_named(&name)
                .map_or_else(Default::default, |s| s.retry.clone());
            services.push(ServiceEntry {
                name,
                balancer: match (&svc.load_balancer.zone, &previous.zone) {
                    (Some(affinity), Some(_)) => {
                        Balancer::in_zone(servers, &svc.load_balancer.strategy, affinity, &local)
                    }
                    _ => Balancer::new(servers, &svc.load_balancer.strategy),
                },
                split: None,
                stats,
                retry,
                pass_host: svc.pass_host_header,
            });
        }
        // Splits refer to services by index, known once all are in place.
        for (name, svc) in &config.services {
            if svc.weighted.is_empty() {
                continue;
            }
            let Some(&index) = service_index.get(name.as_str()) else {
                continue;
            };
            let children: Vec<(usize, u32)> = svc
                .weighted
                .iter()
                .filter_map(|w| service_index.get(w.name.as_str()).map(|&i| (i, w.weight)))
                .collect();
            services[index].split = Some(Split::new(&children));
        }

        let mut per_ep: Vec<Vec<Route>> = (0..entrypoints.len()).map(|_| Vec::new()).collect();
        for (name, router) in &config.routers {
            if router.status != Status::Enabled {
                continue;
            }
            let (Some(&service), Ok(matcher)) = (
                service_index.get(router.service.as_str()),
                rules::compile(&router.rule),
            ) else {
                // `validate` and the label reader rule these out; never route on doubt.
                tracing::warn!(router = %name, "router skipped: not compilable");
                continue;
            };
            let name: Arc<str> = name.as_str().into();
            let stats = carry(&previous.router_stats, &name);
            router_stats.insert(name.clone(), stats.clone());
            let retry = router.retry.as_ref().map(|r| Arc::new(RetryRule::new(r)));
            for (i, ep) in entrypoints.iter().enumerate() {
                let named = router.entry_points.is_empty()
                    || router.entry_points.iter().any(|e| e == ep.name());
                if named && (ep.tls() || !router.tls) {
                    per_ep[i].push(Route {
                        name: name.clone(),
                        priority: router.priority,
                        stats: stats.clone(),
                        matcher: matcher.clone(),
                        service,
                        retry: retry.clone(),
                    });
                }
            }
        }
        for routes in &mut per_ep {
            // Highest priority first; ties by name so the order is stable.
            routes.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| a.name.cmp(&b.name))
            });
        }
        let by_name = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let indexes = per_ep
            .iter()
            .map(|routes| {
                let hints: Vec<rules::IndexHint> =
                    routes.iter().map(|r| r.matcher.index_hint()).collect();
                RouteIndex::new(&hints)
            })
            .collect();
        RoutingTable {
            config,
            indexes,
            entrypoints: per_ep.into_iter().map(Vec::into_boxed_slice).collect(),
            services: services.into_boxed_slice(),
            router_stats,
            service_stats,
            service_index: by_name,
            zone: previous.zone.clone(),
            draining: draining(previous, &endpoints),
            drain: previous.drain,
            upstream_tls: previous.upstream_tls.clone(),
            endpoints,
        }
    }

    /// Servers gone from the configuration whose calls are still finishing.
    pub fn draining(&self) -> &[Draining] {
        &self.draining
    }

    /// The first matching route by trying every rule in order: what [`Self::route`]
    /// finds through its index (the routing benchmark compares the two).
    pub fn route_linear(&self, entrypoint: usize, req: &RequestInfo<'_>) -> Option<&Route> {
        self.entrypoints
            .get(entrypoint)?
            .iter()
            .find(|r| r.matcher.matches(req))
    }

    /// Gantry's own availability zone, when known.
    pub fn zone(&self) -> Option<&Arc<str>> {
        self.zone.as_ref()
    }

    /// The first route of the entrypoint that matches the request.
    pub fn route(&self, entrypoint: usize, req: &RequestInfo<'_>) -> Option<&Route> {
        let routes = self.entrypoints.get(entrypoint)?;
        let index = self.indexes.get(entrypoint)?;
        let found = index.find(req.host, req.path, |i| {
            routes.get(i).is_some_and(|r| r.matcher.matches(req))
        })?;
        routes.get(found)
    }

    pub fn service(&self, index: usize) -> &ServiceEntry {
        &self.services[index]
    }

    /// An enabled service, by name.
    pub fn service_named(&self, name: &str) -> Option<&ServiceEntry> {
        self.service_index
            .get(name)
            .and_then(|&i| self.services.get(i))
    }

    /// The service a call to service `index` goes to: itself, or for a version split
    /// the version picked for this call.
    pub fn resolve_service(&self, index: usize) -> &ServiceEntry {
        let entry = &self.services[index];
        match &entry.split {
            Some(split) => split
                .pick(|i| self.services.get(i).map(|s| &s.balancer))
                .and_then(|i| self.services.get(i))
                .unwrap_or(entry),
            None => entry,
        }
    }

    pub fn services(&self) -> &[ServiceEntry] {
        &self.services
    }

    /// The configuration this table was compiled from.
    pub fn config(&self) -> &Arc<DynamicConfig> {
        &self.config
    }

    /// Every endpoint of the table, by key.
    pub fn endpoints(&self) -> &HashMap<EndpointKey, Arc<Endpoint>> {
        &self.endpoints
    }

    /// Counters of an enabled router, by name.
    pub fn router_stats(&self, name: &str) -> Option<&Arc<CallStats>> {
        self.router_stats.get(name)
    }

    /// Counters of an enabled service, by name.
    pub fn service_stats(&self, name: &str) -> Option<&Arc<CallStats>> {
        self.service_stats.get(name)
    }

    /// Every counter scope of the table: routers, services, servers.
    pub fn all_stats(&self) -> impl Iterator<Item = &Arc<CallStats>> {
        self.router_stats
            .values()
            .chain(self.service_stats.values())
            .chain(self.endpoints.values().map(|e| e.stats()))
    }

    /// Routes of one entrypoint, in match order.
    pub fn routes(&self, entrypoint: usize) -> &[Route] {
        self.entrypoints.get(entrypoint).map_or(&[], |r| r)
    }
}

/// How long a removed server's calls may run on, unless configured.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// The servers of `previous` (in its table or already draining) that are not in
/// `kept` and still have calls in flight.
fn draining(previous: &RoutingTable, kept: &HashMap<EndpointKey, Arc<Endpoint>>) -> Vec<Draining> {
    let now = Instant::now();
    let mut out: Vec<Draining> = previous
        .draining
        .iter()
        .filter(|d| !kept.contains_key(d.endpoint.key()) && d.endpoint.in_flight() > 0)
        .cloned()
        .collect();
    for (key, endpoint) in &previous.endpoints {
        if kept.contains_key(key) || endpoint.in_flight() == 0 {
            continue;
        }
        let services = previous
            .config
            .services
            .iter()
            .filter(|(_, s)| s.servers.iter().any(|srv| EndpointKey::of(srv) == *key))
            .map(|(name, _)| Arc::from(name.as_str()))
            .collect();
        tracing::info!(server = %endpoint.display(), calls = endpoint.in_flight(), "server removed: draining its calls");
        out.push(Draining {
            endpoint: endpoint.clone(),
            services,
            since: now,
            cut_at: now + previous.drain,
        });
    }
    out
}

fn carry(previous: &HashMap<Arc<str>, Arc<CallStats>>, name: &Arc<str>) -> Arc<CallStats> {
    previous.get(name).cloned().unwrap_or_default()
}

/// Checks what only the static configuration knows (entrypoint names, what this
/// build supports), disabling the objects at fault with an error each.
pub fn validate(config: &mut DynamicConfig, entrypoints: &[impl EntrypointSpec]) {
    let mut errors = Vec::new();
    for (name, svc) in config.services.iter_mut() {
        if svc.status != Status::Enabled {
            continue;
        }
        let https = svc.servers.iter().find(|s| s.scheme == Scheme::Https);
        if let (Some(server), Some(_)) = (https, &svc.load_balancer.health_check) {
            let message = format!(
                "server {} uses scheme https, and active health checks over TLS are not available yet; \
                 remove the healthcheck labels (outlier detection still ejects failing servers)",
                server.url
            );
            svc.status = Status::Disabled;
            svc.errors.push(message.clone());
            errors.push(ConfigError {
                severity: Severity::Error,
                object: ObjectRef::Service(name.clone()),
                provider: svc.provider.clone(),
                task: Some(server.task.clone()),
                label: None,
                message,
            });
        }
    }
    for (name, router) in config.routers.iter_mut() {
        if router.status != Status::Enabled {
            continue;
        }
        let mut problem = None;
        let names = || {
            entrypoints
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let tls_named = |e: &str| entrypoints.iter().any(|x| x.name() == e && x.tls());
        if let Some(unknown) = router
            .entry_points
            .iter()
            .find(|e| !entrypoints.iter().any(|x| x.name() == e.as_str()))
        {
            problem = Some(format!(
                "unknown entrypoint {unknown:?}; configured entrypoints: {}",
                names()
            ));
        } else if router.tls
            && !(router.entry_points.is_empty() && entrypoints.iter().any(|e| e.tls()))
            && !router.entry_points.iter().any(|e| tls_named(e))
        {
            let tls: Vec<&str> = entrypoints
                .iter()
                .filter(|e| e.tls())
                .map(|e| e.name())
                .collect();
            problem = Some(if tls.is_empty() {
                "tls=true but no entrypoint terminates TLS (add [entrypoints.<name>.tls])"
                    .to_string()
            } else {
                format!(
                    "tls=true but none of its entrypoints terminates TLS; TLS entrypoints: {}",
                    tls.join(", ")
                )
            });
        } else if config
            .services
            .get(&router.service)
            .is_some_and(|s| s.status != Status::Enabled)
        {
            problem = Some(format!("service {:?} is disabled", router.service));
        }
        if let Some(message) = problem {
            router.status = Status::Disabled;
            router.errors.push(message.clone());
            errors.push(ConfigError {
                severity: Severity::Error,
                object: ObjectRef::Router(name.clone()),
                provider: router.provider.clone(),
                task: router.tasks.first().cloned(),
                label: None,
                message,
            });
        }
    }
    config.errors.extend(errors);
    config.errors.sort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::tests::task;
    use crate::labels::{build, LabelOptions};

    fn eps() -> Vec<(String, bool)> {
        vec![
            ("web".to_string(), false),
            ("websecure".to_string(), true),
            ("other".to_string(), false),
        ]
    }

    fn compiled(labels: &[(&str, &str)]) -> (DynamicConfig, RoutingTable) {
        let mut all = vec![("traefik.enable", "true")];
        all.extend_from_slice(labels);
        let mut config = build(&[task("a", &[50051], &all)], &LabelOptions::default());
        validate(&mut config, &eps());
        let table =
            RoutingTable::compile(Arc::new(config.clone()), &eps(), &RoutingTable::empty(3));
        (config, table)
    }

    fn served_on(table: &RoutingTable) -> Vec<usize> {
        (0..3).filter(|&i| !table.routes(i).is_empty()).collect()
    }

    #[test]
    fn tls_routers_serve_only_on_tls_entrypoints() {
        let (_, t) = compiled(&[("traefik.http.routers.r.rule", "PathPrefix(`/`)")]);
        assert_eq!(served_on(&t), [0, 1, 2], "a plain router serves everywhere");
        let (_, t) = compiled(&[
            ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
            ("traefik.http.routers.r.tls", "true"),
        ]);
        assert_eq!(served_on(&t), [1]);
        let (_, t) = compiled(&[
            ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
            ("traefik.http.routers.r.tls", "true"),
            ("traefik.http.routers.r.entrypoints", "web,websecure"),
        ]);
        assert_eq!(served_on(&t), [1], "only the TLS one of those named");
    }

    #[test]
    fn a_tls_router_without_a_tls_entrypoint_is_disabled_with_why() {
        let (config, t) = compiled(&[
            ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
            ("traefik.http.routers.r.tls", "true"),
            ("traefik.http.routers.r.entrypoints", "web"),
        ]);
        assert!(served_on(&t).is_empty());
        let r = &config.routers["r"];
        assert_eq!(r.status, Status::Disabled);
        assert_eq!(
            r.errors,
            ["tls=true but none of its entrypoints terminates TLS; TLS entrypoints: websecure"]
        );
        let mut config = build(
            &[task(
                "a",
                &[1],
                &[
                    ("traefik.enable", "true"),
                    ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
                    ("traefik.http.routers.r.tls", "true"),
                ],
            )],
            &LabelOptions::default(),
        );
        validate(&mut config, &["web".to_string()]);
        assert!(config.routers["r"].errors[0].contains("no entrypoint terminates TLS"));
    }

    #[test]
    fn https_servers_carry_their_services_tls_and_refuse_active_checks() {
        let (config, t) = compiled(&[
            (
                "traefik.http.services.s.loadbalancer.server.scheme",
                "https",
            ),
            (
                "traefik.http.services.s.loadbalancer.tls.server_name",
                "API.internal",
            ),
        ]);
        let server = &config.services["s"].servers[0];
        let tls = server.tls.as_ref().expect("https servers carry tls");
        assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
        assert!(!tls.insecure_skip_verify);
        assert_eq!(t.endpoints().len(), 1);

        let (config, _) = compiled(&[
            (
                "traefik.http.services.s.loadbalancer.server.scheme",
                "https",
            ),
            (
                "traefik.http.services.s.loadbalancer.healthcheck.mode",
                "grpc",
            ),
        ]);
        let s = &config.services["s"];
        assert_eq!(s.status, Status::Disabled);
        assert!(
            s.errors[0].contains("active health checks over TLS"),
            "{:?}",
            s.errors
        );

        let (config, _) = compiled(&[
            (
                "traefik.http.services.s.loadbalancer.server.scheme",
                "https",
            ),
            (
                "traefik.http.services.s.loadbalancer.tls.server_name",
                "not a name",
            ),
        ]);
        let e = config
            .errors
            .iter()
            .find(|e| e.object == crate::dynamic::ObjectRef::Service("s".into()))
            .expect("an error on the service");
        assert_eq!(e.message, "\"not a name\" is not a DNS name");
        assert_eq!(
            e.label.as_deref(),
            Some("traefik.http.services.s.loadbalancer.tls.server_name")
        );
    }
}
