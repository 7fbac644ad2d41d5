//! The dynamic configuration: typed routers, services and servers, with the errors
//! found while reading labels attached to the objects they break.
//!
//! This is the middle of gantry's three representations (raw tasks → `DynamicConfig`
//! → compiled `RoutingTable`). It is plain data: serialisable for the API and
//! `gantry check`, and `PartialEq` so an unchanged configuration causes no rebuild.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::provider::{Lifecycle, TaskHealth};

/// Everything the labels of all tasks describe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicConfig {
    pub routers: BTreeMap<String, Router>,
    pub services: BTreeMap<String, Service>,
    /// Middleware definitions (Traefik's `http.middlewares`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub middlewares: BTreeMap<String, Middleware>,
    /// Every problem found, in a stable order; each also sits on the object it broke.
    pub errors: Vec<ConfigError>,
}

/// A middleware definition: its Traefik type and options as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Middleware {
    /// Traefik's name of the type (`rateLimit`, `headers`…); empty when unknown.
    #[serde(rename = "type")]
    pub kind: String,
    /// Option → value, options in lower case and dotted below the type
    /// (`sourcecriterion.ipstrategy.depth`, `customrequestheaders.X-Id`).
    pub options: BTreeMap<String, String>,
    pub provider: String,
    /// Ids of the tasks whose labels define it.
    pub tasks: Vec<String>,
    /// Routers that name it.
    pub used_by: Vec<String>,
    pub status: Status,
    pub errors: Vec<String>,
}

/// Whether an object takes part in routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Enabled,
    /// Broken by an error of its own or of an object it depends on.
    Disabled,
}

/// A router: a rule that picks requests, and the service they go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Router {
    pub rule: String,
    /// Higher wins; defaults to the rule's length (as Traefik).
    pub priority: i64,
    pub service: String,
    /// Entrypoint names; empty means every entrypoint.
    pub entry_points: Vec<String>,
    pub tls: bool,
    /// The middlewares the router applies, in order, as written (`name[@provider]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middlewares: Vec<String>,
    /// Retries of calls a server has answered (labels `R.retry.*`): the router's
    /// owner says its calls are idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RouterRetry>,
    pub provider: String,
    /// Ids of the tasks whose labels define this router.
    pub tasks: Vec<String>,
    pub status: Status,
    pub errors: Vec<String>,
}

/// How a router retries calls a server answered with a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterRetry {
    /// Attempts after the first (1 to 5).
    pub attempts: u32,
    /// gRPC codes answered in a trailers-only response that are retried, canonical
    /// (`14`). Resets before any response are retried too; plain HTTP calls are
    /// retried on 502/503/504 and only for GET, HEAD, OPTIONS, PUT and DELETE.
    pub codes: String,
    /// gRPC methods (`/pkg.Svc/Method`) or services (`/pkg.Svc/`) retried; empty:
    /// every call of the router.
    pub methods: Vec<String>,
}

/// A service: a load-balanced set of servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub servers: Vec<Server>,
    /// How servers are chosen and checked.
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// A version split: calls go to these services in proportion to their weights
    /// (then `servers` is empty). Empty for a load-balanced service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted: Vec<WeightedService>,
    /// Whether the client's Host (HTTP/2 :authority) goes to the servers as it came
    /// (`S.passhostheader`, default true); else each server's own address does.
    #[serde(default = "yes")]
    pub pass_host_header: bool,
    pub provider: String,
    /// Ids of the tasks whose labels define this service.
    pub tasks: Vec<String>,
    pub status: Status,
    pub errors: Vec<String>,
}

/// One service of a version split and its share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WeightedService {
    pub name: String,
    pub weight: u32,
}

/// How a service picks and watches its servers (labels
/// `<prefix>.http.services.<s>.loadbalancer.{strategy,hash,sticky,healthcheck}.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub strategy: Strategy,
    pub health_check: Option<HealthCheck>,
    /// Passive health: servers whose calls fail are ejected for a while.
    pub outlier: OutlierDetection,
    /// Prefer servers in gantry's own availability zone.
    pub zone: Option<ZoneAffinity>,
    /// How servers of scheme `https` are verified (labels `S.tls.*`).
    #[serde(default)]
    pub tls: ServerTls,
}

/// TLS to a service's `https` servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    /// Accept any certificate (`S.tls.insecure_skip_verify=true`): shown as a
    /// warning in the dashboard.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The name the certificate must carry (`S.tls.server_name`); else the server's
    /// IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Passive outlier detection (labels `S.outlier.*`). On by default: a server failing
/// 5 calls in a row, or failing at least 10% of its calls over an interval while its
/// peers fail less than half as often, is ejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Failures in a row that eject a server (0: off).
    pub consecutive: u32,
    /// gRPC codes that count as failures, canonical (`14`). Resets, connection
    /// failures and HTTP 502/503/504 always do.
    pub codes: String,
    /// Failure percentage over an interval that ejects a server (0: off).
    pub failure_percent: u32,
    /// Calls a server needs in an interval for its failure percentage to count.
    pub min_requests: u32,
    pub interval_ms: u64,
    /// First ejection's length; each new one is longer by as much, up to the maximum.
    pub ejection_ms: u64,
    pub max_ejection_ms: u64,
    /// Never more than this share of a service's servers ejected at once.
    pub max_ejection_percent: u32,
    /// A returning server's share of calls grows from 10% to all over this time.
    pub slow_start_ms: u64,
}

impl Default for OutlierDetection {
    fn default() -> OutlierDetection {
        OutlierDetection {
            consecutive: 5,
            codes: "14".to_string(),
            failure_percent: 10,
            min_requests: 20,
            interval_ms: 2_000,
            ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 50,
            slow_start_ms: 10_000,
        }
    }
}

impl OutlierDetection {
    pub fn is_enabled(&self) -> bool {
        self.consecutive > 0 || self.failure_percent > 0
    }
}

/// Zone affinity (labels `S.zone.*`): calls stay in gantry's availability zone while
/// enough servers there are UP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneAffinity {
    /// Percent of calls kept in the zone while it is healthy (the rest are balanced
    /// over every zone).
    pub share: u32,
    /// Fewer UP servers in the zone than this: calls spill over to every zone.
    pub min_servers: u32,
    /// Fewer than this percent of the zone's servers UP: spill over too.
    pub min_healthy_percent: u32,
}

impl Default for ZoneAffinity {
    fn default() -> ZoneAffinity {
        ZoneAffinity {
            share: 100,
            min_servers: 1,
            min_healthy_percent: 50,
        }
    }
}

/// How a server is picked for each call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Strategy {
    /// Smooth weighted round robin.
    #[default]
    Wrr,
    /// Power of two choices over peak-EWMA latency × calls in flight.
    P2c,
    /// Consistent hashing on a request header or gRPC metadata key (lower-case).
    Hash { header: String },
    /// Round robin for a client's first call, then the server its cookie names.
    Sticky { cookie: StickyCookie },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Wrr => "wrr",
            Strategy::P2c => "p2c",
            Strategy::Hash { .. } => "hash",
            Strategy::Sticky { .. } => "sticky",
        }
    }
}

/// The cookie of sticky sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StickyCookie {
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Lax`, `Strict` or `None`; not sent when unset.
    pub same_site: Option<String>,
    /// Seconds; a session cookie when unset.
    pub max_age: Option<u64>,
}

/// An active health check run against every server of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub mode: HealthMode,
    /// `grpc`: the service name asked about ("" = the whole server); `http`: the path;
    /// `call`: the method path (`/pkg.Service/Method`).
    pub target: String,
    /// `call`: the gRPC codes that count as healthy, canonical (`0,12`, `0-2`).
    pub codes: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// The container port probed instead of the server's (`healthcheck.port`); each
    /// server maps it to its own host port ([`Server::health_port`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The protocol of the probes when it is not the server's (`healthcheck.scheme`):
    /// `http` (HTTP/1.1) or `h2c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// Host / :authority of the probes (`healthcheck.hostname`); else the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Extra request headers of the probes (`healthcheck.headers.<name>`), by
    /// lower-case name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `http` mode: the request method (`healthcheck.method`, default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http` mode: the one status that is healthy (`healthcheck.status`); else any
    /// 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `http` mode: redirects to the same server are followed, up to 10
    /// (`healthcheck.followredirects`, default true), and the last answer judged.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
}

fn yes() -> bool {
    true
}

/// Which kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthMode {
    /// `grpc.health.v1.Health/Check`.
    Grpc,
    /// An HTTP GET; 2xx and 3xx are healthy.
    Http,
    /// Calls a gRPC method with an empty message; the configured codes are healthy.
    Call,
}

/// Protocol spoken to a server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    /// HTTP/2 with prior knowledge, cleartext: what gRPC servers speak.
    H2c,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::H2c => "h2c",
            Scheme::Https => "https",
        }
    }

    /// Spoken through gantry's own HTTP/2 connection (h2c, or h2 over TLS).
    pub fn is_h2(self) -> bool {
        matches!(self, Scheme::H2c | Scheme::Https)
    }

    /// Parses a label value; case-insensitive.
    pub fn parse(s: &str) -> Option<Scheme> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "h2c" => Some(Scheme::H2c),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server of a service: a task's address and port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// `scheme://ip:port`, as Traefik shows it.
    pub url: String,
    pub address: SocketAddr,
    pub scheme: Scheme,
    pub weight: u32,
    /// Id of the task that provides it.
    pub task: String,
    pub zone: Option<String>,
    pub health: TaskHealth,
    pub lifecycle: Lifecycle,
    /// An https server's TLS settings (its service's `S.tls.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
    /// The port active health checks probe, when the service's check names one
    /// (`healthcheck.port`, mapped like the server's port: a container port becomes
    /// the task's host port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u16>,
}

impl Server {
    pub fn new(
        address: SocketAddr,
        scheme: Scheme,
        weight: u32,
        task: &crate::provider::Task,
    ) -> Server {
        Server {
            url: format!("{scheme}://{address}"),
            address,
            scheme,
            weight,
            task: task.id.clone(),
            zone: task.zone.clone(),
            health: task.health,
            lifecycle: task.lifecycle,
            tls: None,
            health_port: None,
        }
    }
}

/// What an error is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum ObjectRef {
    Router(String),
    Service(String),
    Middleware(String),
    /// A problem with a task as a whole (e.g. an unknown top-level label).
    Task(String),
    /// A problem with a provider's input (e.g. an unparsable tasks file).
    Provider(String),
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::Router(n) => write!(f, "router {n:?}"),
            ObjectRef::Service(n) => write!(f, "service {n:?}"),
            ObjectRef::Middleware(n) => write!(f, "middleware {n:?}"),
            ObjectRef::Task(n) => write!(f, "task {n:?}"),
            ObjectRef::Provider(n) => write!(f, "provider {n:?}"),
        }
    }
}

/// How bad a [`ConfigError`] is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object it names is disabled (or, for a task or provider, something it
    /// asked for is not served).
    #[default]
    Error,
    /// Nothing is disabled: a label that means nothing to gantry and restricts
    /// nothing (another Traefik provider's, a v1 label on a task read as v2) was
    /// ignored, and is listed so the owner can clean it up.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A problem found in labels or configuration, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConfigError {
    /// Errors disable what they name; warnings only inform.
    #[serde(default)]
    pub severity: Severity,
    pub object: ObjectRef,
    /// Provider of the task (`file`, `ecs`).
    pub provider: String,
    /// Task whose labels caused it, when one did.
    pub task: Option<String>,
    /// The label key at fault, when one is.
    pub label: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl DynamicConfig {
    /// The problems that disable something (not the warnings).
    pub fn error_count(&self) -> usize {
        self.errors.iter().filter(|e| e.is_error()).count()
    }

    /// The warnings: ignored labels that disable nothing.
    pub fn warning_count(&self) -> usize {
        self.errors.len() - self.error_count()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.object)?;
        if let Some(task) = &self.task {
            write!(f, " (task {task:?}")?;
            if let Some(label) = &self.label {
                write!(f, ", label {label:?}")?;
            }
            f.write_str(")")?;
        } else if let Some(label) = &self.label {
            write!(f, " (label {label:?})")?;
        }
        write!(f, ": {}", self.message)
    }
}
