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
    pub provider: String,
    /// Ids of the tasks whose labels define this service.
    pub tasks: Vec<String>,
    pub status: Status,
    pub errors: Vec<String>,
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
