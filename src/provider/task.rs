//! The raw view of a task, as a provider saw it. Nothing here is interpreted yet:
//! labels are plain strings, read later by [`crate::labels`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One routable target: an ECS task's container, or an entry of the tasks file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Unique within its provider (ECS: task ARN id plus container name).
    pub id: String,
    /// Provider that reported it (`file`, `ecs`).
    pub provider: String,
    /// Address servers of this task are dialled on.
    pub ip: IpAddr,
    /// Availability zone, when known.
    pub zone: Option<String>,
    /// ECS task group (`service:api`), used for default names.
    pub group: Option<String>,
    /// Container name, used for default names.
    pub container: Option<String>,
    pub lifecycle: Lifecycle,
    pub health: TaskHealth,
    /// Container port → host port (equal outside ECS bridge mode).
    pub ports: Vec<PortMapping>,
    pub labels: BTreeMap<String, String>,
}

/// A container port and the host port it is reachable on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub container: u16,
    pub host: u16,
}

/// Where a task is in its life (ECS `lastStatus`, simplified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Lifecycle {
    Pending,
    #[default]
    Running,
    /// Deactivating, stopping, deprovisioning: finish what is in flight, take nothing new.
    Stopping,
    Stopped,
}

/// Health as the platform reports it (ECS container health checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskHealth {
    Healthy,
    Unhealthy,
    #[default]
    Unknown,
}

impl Task {
    /// The host port a container port is published on, if the task maps it.
    pub fn host_port(&self, container: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.container == container)
            .map(|p| p.host)
    }

    /// Traefik's default name for a task's objects: `<group>-<container>` with `:`
    /// turned into `-` (`service:api` + `web` → `service-api-web`), else the task id;
    /// then normalised.
    pub fn default_name(&self) -> String {
        let raw = match (&self.group, &self.container) {
            (Some(g), Some(c)) => format!("{}-{}", g.replacen(':', "-", 1), c),
            (Some(g), None) => g.replacen(':', "-", 1),
            (None, Some(c)) if !c.is_empty() => format!("{}-{}", self.id, c),
            _ => self.id.clone(),
        };
        normalize(&raw)
    }
}

/// Traefik's `provider.Normalize`: the name is split on every character that is not
/// a letter or a digit, and the non-empty pieces are joined with `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_like_traefik() {
        for (input, want) in [
            ("service-api-web", "service-api-web"),
            ("a_b.c", "a-b-c"),
            ("--x::y--", "x-y"),
            ("route guide", "route-guide"),
        ] {
            assert_eq!(normalize(input), want, "{input}");
        }
    }
}
