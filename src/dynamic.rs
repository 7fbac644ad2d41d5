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
    /// Every problem found, in a stable order; each also sits on the object it broke.
    pub errors: Vec<ConfigError>,
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
    pub provider: String,
    /// Ids of the tasks whose labels define this router.
    pub tasks: Vec<String>,
    pub status: Status,
    pub errors: Vec<String>,
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
        }
    }
}

/// What an error is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum ObjectRef {
    Router(String),
    Service(String),
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
            ObjectRef::Task(n) => write!(f, "task {n:?}"),
            ObjectRef::Provider(n) => write!(f, "provider {n:?}"),
        }
    }
}

/// A problem found in labels or configuration, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConfigError {
    pub object: ObjectRef,
    /// Provider of the task (`file`, `ecs`).
    pub provider: String,
    /// Task whose labels caused it, when one did.
    pub task: Option<String>,
    /// The label key at fault, when one is.
    pub label: Option<String>,
    pub message: String,
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
