//! What the API shows: routers, services, servers, entrypoints, providers and errors,
//! in Traefik's JSON shapes where Traefik has them, with gantry's live numbers beside.
//!
//! Views are built per request from one load of the routing table (the same snapshot
//! the data plane uses) and the live counters; nothing here is cached or locked.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::Shared;
use crate::balance::{EndpointKey, Health};
use crate::dynamic::{ConfigError, DynamicConfig, ObjectRef, Server, Status};
use crate::provider::{ProviderStatus, TaskHealth};
use crate::table::RoutingTable;
use crate::telemetry::{slot_name, CallStats, SLOTS};

/// Counters and recent rates of one scope.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    pub requests: u64,
    pub errors: u64,
    pub in_flight: u64,
    pub request_rate: f64,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Finished calls by gRPC status (or HTTP class), since start.
    pub grpc_status: BTreeMap<&'static str, u64>,
}

impl StatsView {
    pub fn of(stats: &CallStats, now: Instant) -> StatsView {
        let rates = stats.rates(now);
        let outcomes = stats.outcomes();
        let grpc_status = (0..SLOTS)
            .filter(|&s| outcomes[s] > 0)
            .map(|s| (slot_name(s), outcomes[s]))
            .collect();
        StatsView {
            requests: outcomes.iter().sum(),
            errors: stats.errors(),
            in_flight: stats.in_flight(),
            request_rate: round(rates.request_rate, 3),
            error_rate: round(rates.error_rate, 4),
            p50_ms: rates.p50.map(|d| round(d.as_secs_f64() * 1e3, 3)),
            p99_ms: rates.p99.map(|d| round(d.as_secs_f64() * 1e3, 3)),
            grpc_status,
        }
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// One server of a service.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub url: String,
    pub weight: u32,
    pub task_id: String,
    pub zone: Option<String>,
    pub health: &'static str,
    pub health_reason: Option<String>,
    pub platform_health: &'static str,
    pub connected: bool,
    /// Times passive outlier detection ejected it.
    pub ejections: u64,
    #[serde(flatten)]
    pub stats: StatsView,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerView {
    pub servers: Vec<ServerView>,
    pub strategy: &'static str,
    pub health_check: Option<crate::dynamic::HealthCheck>,
    pub outlier: crate::dynamic::OutlierDetection,
    pub zone_affinity: Option<crate::dynamic::ZoneAffinity>,
    /// How its https servers are verified (absent without https servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::dynamic::ServerTls>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub provider: String,
    pub status: &'static str,
    pub error: Vec<String>,
    /// What works but is unsafe or odd (servers' certificates not verified).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub used_by: Vec<String>,
    pub tasks: Vec<String>,
    pub load_balancer: LoadBalancerView,
    /// A version split's services and weights (Traefik's `weighted.services`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighted: Option<WeightedView>,
    pub server_status: BTreeMap<String, &'static str>,
    pub stats: StatsView,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedView {
    pub services: Vec<crate::dynamic::WeightedService>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterView {
    pub name: String,
    pub rule: String,
    pub service: String,
    pub priority: i64,
    pub entry_points: Vec<String>,
    pub using: Vec<String>,
    pub status: &'static str,
    pub error: Vec<String>,
    pub provider: String,
    pub tls: bool,
    /// The middlewares it applies, in order, as written.
    pub middlewares: Vec<String>,
    /// Retries of answered calls (`retry.*` labels), when set.
    pub retry: Option<crate::dynamic::RouterRetry>,
    pub tasks: Vec<String>,
    pub stats: StatsView,
}

/// A middleware definition, in Traefik's shape (`type` in lower case, as Traefik
/// reports it), with its options as written.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MiddlewareView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Option → value; credentials (`users`, `redis.password`) shown as `***`.
    pub options: BTreeMap<String, String>,
    pub status: &'static str,
    pub error: Vec<String>,
    pub provider: String,
    pub used_by: Vec<String>,
    pub tasks: Vec<String>,
}

/// Options whose values are credentials, never shown.
const SECRET_OPTIONS: &[&str] = &["users", "redis.password", "redis.username"];

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntrypointView {
    pub name: String,
    pub address: String,
    /// The certificates it serves, when it terminates TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsView>,
    /// Client connections it closed to protect itself, by why (`flood`,
    /// `header_timeout`, `max_connections`, `tls_handshake`, `protocol_error`).
    pub closed_connections: BTreeMap<&'static str, u64>,
    pub stats: StatsView,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsView {
    pub certificates: Vec<crate::tls::CertInfo>,
    /// Why the files last failed to reload (the previous certificates stay).
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    pub name: String,
    pub healthy: bool,
    pub last_refresh: Option<String>,
    pub last_success: Option<String>,
    pub duration_ms: f64,
    pub tasks: usize,
    pub refreshes: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub api_calls: BTreeMap<&'static str, u64>,
    pub total_api_calls: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorView {
    /// `error` (the object is disabled) or `warning` (an ignored label).
    pub severity: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub provider: String,
    pub task: Option<String>,
    pub label: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub total: usize,
    pub warnings: usize,
    pub errors: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerCounts {
    pub total: usize,
    pub up: usize,
    pub down: usize,
    pub draining: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCounts {
    pub routers: Counts,
    pub services: Counts,
    pub servers: ServerCounts,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntrypointAddress {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub http: HttpCounts,
    pub entry_points: Vec<EntrypointAddress>,
    pub providers: Vec<String>,
    pub provider_status: Vec<ProviderView>,
    /// Problems that disable something.
    pub errors: usize,
    /// Ignored labels, which disable nothing.
    pub warnings: usize,
    pub generation: u64,
    pub version: &'static str,
    /// Gantry's own availability zone (zone affinity), when known.
    pub zone: Option<String>,
    pub features: Features,
    pub stats: StatsView,
}

/// What this gantry has turned on (Traefik's overview has the same key).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub metrics: &'static str,
    pub access_log: bool,
    pub auth: bool,
}

/// `name@provider`, as Traefik names objects in its API.
pub fn qualified(name: &str, provider: &str) -> String {
    format!("{name}@{provider}")
}

/// One consistent snapshot to build views from.
pub struct Snapshot<'a> {
    pub shared: &'a Shared,
    pub table: arc_swap::Guard<std::sync::Arc<RoutingTable>>,
    pub now: Instant,
}

impl<'a> Snapshot<'a> {
    pub fn take(shared: &'a Shared) -> Snapshot<'a> {
        Snapshot {
            shared,
            table: shared.table.load(),
            now: Instant::now(),
        }
    }

    pub fn config(&self) -> &DynamicConfig {
        self.table.config()
    }

    fn server(&self, service_enabled: bool, server: &Server) -> ServerView {
        let endpoint = self.table.endpoints().get(&EndpointKey::of(server));
        let (health, reason) = match endpoint {
            Some(e) => e.health(),
            None if !service_enabled => (Health::Down, Some("service disabled".to_string())),
            None => (Health::Down, Some("not in the routing table".to_string())),
        };
        ServerView {
            url: server.url.clone(),
            weight: server.weight,
            task_id: server.task.clone(),
            zone: server.zone.clone(),
            health: health_name(health),
            health_reason: reason,
            platform_health: match server.health {
                TaskHealth::Healthy => "HEALTHY",
                TaskHealth::Unhealthy => "UNHEALTHY",
                TaskHealth::Unknown => "UNKNOWN",
            },
            connected: endpoint.is_some_and(|e| e.upstream().is_connected()),
            ejections: endpoint.map_or(0, |e| e.outlier().ejections()),
            stats: endpoint.map_or_else(StatsView::default, |e| StatsView::of(e.stats(), self.now)),
        }
    }

    /// Servers that left service `name`'s configuration and are finishing calls.
    fn draining_servers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = ServerView> + 's {
        self.table
            .draining()
            .iter()
            .filter(move |d| d.services.iter().any(|s| &**s == name) && d.endpoint.in_flight() > 0)
            .map(|d| {
                let e = &d.endpoint;
                let left = d
                    .cut_at
                    .saturating_duration_since(std::time::Instant::now());
                ServerView {
                    url: format!("{}://{}", e.scheme(), e.address()),
                    weight: 0,
                    task_id: e.key().task.clone(),
                    zone: None,
                    health: health_name(Health::Draining),
                    health_reason: Some(format!(
                        "removed from the configuration: {} call(s) finishing, cut in {}s",
                        e.in_flight(),
                        left.as_secs()
                    )),
                    platform_health: "UNKNOWN",
                    connected: e.upstream().is_connected(),
                    ejections: e.outlier().ejections(),
                    stats: StatsView::of(e.stats(), self.now),
                }
            })
    }

    pub fn services(&self) -> Vec<ServiceView> {
        let config = self.config();
        config
            .services
            .iter()
            .map(|(name, svc)| {
                let enabled = svc.status == Status::Enabled;
                let servers: Vec<ServerView> = svc
                    .servers
                    .iter()
                    .map(|s| self.server(enabled, s))
                    .chain(self.draining_servers(name))
                    .collect();
                let server_status = servers.iter().map(|s| (s.url.clone(), s.health)).collect();
                let split = !svc.weighted.is_empty();
                let https = svc
                    .servers
                    .iter()
                    .any(|s| s.scheme == crate::dynamic::Scheme::Https);
                let mut warnings = Vec::new();
                if https && svc.load_balancer.tls.insecure_skip_verify {
                    warnings.push(
                        "tls.insecure_skip_verify=true: the https servers' certificates are not \
                         verified, so anyone on the path can pose as them"
                            .to_string(),
                    );
                }
                let status = if !enabled {
                    "disabled"
                } else if split {
                    "enabled"
                } else if !warnings.is_empty()
                    || servers.iter().any(|s| s.health != "UP")
                    || servers.is_empty()
                {
                    "warning"
                } else {
                    "enabled"
                };
                let used_by = config
                    .routers
                    .iter()
                    .filter(|(_, r)| r.service == *name)
                    .map(|(n, r)| qualified(n, &r.provider))
                    .collect();
                ServiceView {
                    name: qualified(name, &svc.provider),
                    kind: if split { "weighted" } else { "loadbalancer" },
                    provider: svc.provider.clone(),
                    status,
                    error: svc.errors.clone(),
                    warnings,
                    used_by,
                    tasks: svc.tasks.clone(),
                    load_balancer: LoadBalancerView {
                        servers,
                        strategy: svc.load_balancer.strategy.name(),
                        health_check: svc.load_balancer.health_check.clone(),
                        outlier: svc.load_balancer.outlier.clone(),
                        zone_affinity: svc.load_balancer.zone.clone(),
                        tls: https.then(|| svc.load_balancer.tls.clone()),
                    },
                    weighted: split.then(|| WeightedView {
                        services: svc.weighted.clone(),
                    }),
                    server_status,
                    stats: self
                        .table
                        .service_stats(name)
                        .map_or_else(StatsView::default, |s| StatsView::of(s, self.now)),
                }
            })
            .collect()
    }

    pub fn middlewares(&self) -> Vec<MiddlewareView> {
        let config = self.config();
        config
            .middlewares
            .iter()
            .map(|(name, m)| MiddlewareView {
                name: qualified(name, &m.provider),
                kind: m.kind.to_ascii_lowercase(),
                options: m
                    .options
                    .iter()
                    .map(|(k, v)| {
                        let secret = SECRET_OPTIONS.contains(&k.as_str());
                        (
                            k.clone(),
                            if secret { "***".to_string() } else { v.clone() },
                        )
                    })
                    .collect(),
                status: match m.status {
                    crate::dynamic::Status::Enabled => "enabled",
                    crate::dynamic::Status::Disabled => "disabled",
                },
                error: m.errors.clone(),
                provider: m.provider.clone(),
                used_by: m
                    .used_by
                    .iter()
                    .map(|r| {
                        let provider = config.routers.get(r).map_or("", |r| &r.provider);
                        qualified(r, provider)
                    })
                    .collect(),
                tasks: m.tasks.clone(),
            })
            .collect()
    }

    pub fn routers(&self) -> Vec<RouterView> {
        let config = self.config();
        let all_entrypoints: Vec<String> = self
            .shared
            .entrypoints
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        config
            .routers
            .iter()
            .map(|(name, r)| {
                let enabled = r.status == Status::Enabled;
                let entry_points = if r.entry_points.is_empty() {
                    all_entrypoints.clone()
                } else {
                    r.entry_points.clone()
                };
                let using = if enabled {
                    entry_points
                        .iter()
                        .filter(|e| all_entrypoints.contains(e))
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                // A split is up when any of its versions is.
                let targets: Vec<&str> = match config.services.get(&r.service) {
                    Some(svc) if !svc.weighted.is_empty() => {
                        svc.weighted.iter().map(|w| w.name.as_str()).collect()
                    }
                    _ => vec![r.service.as_str()],
                };
                let service_up =
                    targets
                        .iter()
                        .filter_map(|t| config.services.get(*t))
                        .any(|svc| {
                            svc.servers.iter().any(|s| {
                                self.table
                                    .endpoints()
                                    .get(&EndpointKey::of(s))
                                    .is_some_and(|e| e.is_available())
                            })
                        });
                let status = match (enabled, service_up) {
                    (false, _) => "disabled",
                    (true, false) => "warning",
                    (true, true) => "enabled",
                };
                RouterView {
                    name: qualified(name, &r.provider),
                    rule: r.rule.clone(),
                    service: r.service.clone(),
                    priority: r.priority,
                    entry_points,
                    using,
                    status,
                    error: r.errors.clone(),
                    provider: r.provider.clone(),
                    tls: r.tls,
                    middlewares: r.middlewares.clone(),
                    retry: r.retry.clone(),
                    tasks: r.tasks.clone(),
                    stats: self
                        .table
                        .router_stats(name)
                        .map_or_else(StatsView::default, |s| StatsView::of(s, self.now)),
                }
            })
            .collect()
    }

    pub fn entrypoints(&self) -> Vec<EntrypointView> {
        self.shared
            .entrypoints
            .iter()
            .zip(&self.shared.entrypoint_stats)
            .zip(&self.shared.entrypoint_edges)
            .map(|(((name, addr), stats), edge)| EntrypointView {
                name: name.clone(),
                address: addr.to_string(),
                tls: edge.tls.as_ref().map(|store| TlsView {
                    certificates: store.info(),
                    last_error: store.last_error().map(|e| e.to_string()),
                }),
                closed_connections: edge.guards.counts().into_iter().collect(),
                stats: StatsView::of(stats, self.now),
            })
            .collect()
    }

    pub fn providers(&self) -> Vec<ProviderView> {
        self.shared.providers.iter().map(|p| provider(p)).collect()
    }

    pub fn errors(&self) -> Vec<ErrorView> {
        self.config().errors.iter().map(error).collect()
    }

    pub fn overview(&self) -> Overview {
        let routers = self.routers();
        let services = self.services();
        let count = |statuses: &mut dyn Iterator<Item = &'static str>| {
            let mut c = Counts::default();
            for s in statuses {
                c.total += 1;
                match s {
                    "warning" => c.warnings += 1,
                    "disabled" => c.errors += 1,
                    _ => {}
                }
            }
            c
        };
        let mut servers = ServerCounts::default();
        for s in services.iter().flat_map(|s| &s.load_balancer.servers) {
            servers.total += 1;
            match s.health {
                "UP" => servers.up += 1,
                "DRAINING" => servers.draining += 1,
                _ => servers.down += 1,
            }
        }
        // Every call passes an entrypoint: their sum is the whole.
        let mut stats = StatsView::default();
        for e in self.entrypoints() {
            stats = add_stats(stats, &e.stats);
        }
        let provider_status = self.providers();
        Overview {
            http: HttpCounts {
                routers: count(&mut routers.iter().map(|r| r.status)),
                services: count(&mut services.iter().map(|s| s.status)),
                servers,
            },
            entry_points: self
                .shared
                .entrypoints
                .iter()
                .map(|(n, a)| EntrypointAddress {
                    name: n.clone(),
                    address: a.to_string(),
                })
                .collect(),
            providers: provider_status.iter().map(|p| p.name.clone()).collect(),
            provider_status,
            errors: self.config().error_count(),
            warnings: self.config().warning_count(),
            generation: self.shared.progress.borrow().tables,
            version: env!("CARGO_PKG_VERSION"),
            zone: self.table.zone().map(|z| z.to_string()),
            features: Features {
                metrics: "prometheus",
                access_log: self.shared.access_log.is_some(),
                auth: self.shared.auth.is_some(),
            },
            stats,
        }
    }
}

/// Sums two scopes' views (rates add; the error rate and quantiles are weighted
/// approximations, good enough for an overview line).
fn add_stats(a: StatsView, b: &StatsView) -> StatsView {
    let rate = a.request_rate + b.request_rate;
    let weight = |x: &StatsView| x.request_rate.max(if x.requests > 0 { 1e-9 } else { 0.0 });
    let (wa, wb) = (weight(&a), weight(b));
    let mix = |x: f64, y: f64| {
        if wa + wb == 0.0 {
            0.0
        } else {
            (x * wa + y * wb) / (wa + wb)
        }
    };
    let max = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let mut grpc_status = a.grpc_status;
    for (k, v) in &b.grpc_status {
        *grpc_status.entry(k).or_insert(0) += v;
    }
    StatsView {
        requests: a.requests + b.requests,
        errors: a.errors + b.errors,
        in_flight: a.in_flight + b.in_flight,
        request_rate: round(rate, 3),
        error_rate: round(mix(a.error_rate, b.error_rate), 4),
        p50_ms: max(a.p50_ms, b.p50_ms),
        p99_ms: max(a.p99_ms, b.p99_ms),
        grpc_status,
    }
}

pub fn health_name(h: Health) -> &'static str {
    match h {
        Health::Up => "UP",
        Health::Down => "DOWN",
        Health::Draining => "DRAINING",
    }
}

fn timestamp(t: Option<SystemTime>) -> Option<String> {
    t.map(crate::telemetry::access_log::timestamp)
}

pub fn provider(p: &ProviderStatus) -> ProviderView {
    let last = p.last();
    ProviderView {
        name: p.name().to_string(),
        healthy: last.at.is_some() && last.error.is_none(),
        last_refresh: timestamp(last.at),
        last_success: timestamp(last.last_success),
        duration_ms: round(last.duration_ms, 3),
        tasks: last.tasks,
        refreshes: p.refreshes(),
        failures: p.failures(),
        last_error: last.error.clone(),
        api_calls: last.api_calls.clone(),
        total_api_calls: p.total_calls(),
    }
}

pub fn error(e: &ConfigError) -> ErrorView {
    let (kind, name) = match &e.object {
        ObjectRef::Router(n) => ("router", n),
        ObjectRef::Service(n) => ("service", n),
        ObjectRef::Middleware(n) => ("middleware", n),
        ObjectRef::Task(n) => ("task", n),
        ObjectRef::Provider(n) => ("provider", n),
    };
    ErrorView {
        severity: e.severity.as_str(),
        kind,
        name: name.clone(),
        provider: e.provider.clone(),
        task: e.task.clone(),
        label: e.label.clone(),
        message: e.message.clone(),
    }
}

/// Samples for field-mask checking: every nested object present, one element in
/// every list of objects, maps empty (maps are selectable only whole).
pub mod samples {
    use super::*;

    pub fn service() -> ServiceView {
        ServiceView {
            weighted: Some(WeightedView {
                services: vec![crate::dynamic::WeightedService {
                    name: String::new(),
                    weight: 0,
                }],
            }),
            load_balancer: LoadBalancerView {
                servers: vec![ServerView::default()],
                strategy: "wrr",
                health_check: None,
                outlier: Default::default(),
                zone_affinity: Some(Default::default()),
                tls: Some(Default::default()),
            },
            warnings: vec![String::new()],
            ..Default::default()
        }
    }

    pub fn overview() -> Overview {
        Overview {
            entry_points: vec![EntrypointAddress::default()],
            provider_status: vec![ProviderView::default()],
            ..Default::default()
        }
    }
}
