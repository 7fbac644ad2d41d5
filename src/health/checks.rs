//! Runs the active health checks the configuration asks for: one task per server of
//! a service with `healthcheck.*` labels, started when the server appears, restarted
//! when its check's settings change, stopped when it leaves.
//!
//! The check's state lives on the server's [`Endpoint`](crate::balance::Endpoint) (which survives rebuilds), so
//! a reload neither resets a verdict nor starts a second probe. A server shared by two
//! services with different checks is checked with the first service's settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::probe::{self, CheckConfig, CheckKind, HttpCheck};
use crate::balance::EndpointKey;
use crate::balance::HealthState;
use crate::dynamic::{HealthCheck, HealthMode, Status};
use crate::table::{RoutingTable, SharedTable};
use crate::telemetry::codes::CodeSet;
use crate::watcher::Progress;

struct Running {
    config: HealthCheck,
    /// What the probes dial and speak (the check's port, scheme and hostname).
    target: Target,
    task: AbortHandle,
}

/// Where and how one server is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    address: std::net::SocketAddr,
    h2c: bool,
    authority: Option<http::uri::Authority>,
}

impl Target {
    /// The server's address and protocol, unless the check names its own port
    /// (already mapped to the task's host port), scheme or host name.
    fn of(server: &crate::dynamic::Server, check: &HealthCheck) -> Target {
        let port = server.health_port.unwrap_or(server.address.port());
        Target {
            address: std::net::SocketAddr::new(server.address.ip(), port),
            h2c: check.scheme.unwrap_or(server.scheme).is_h2(),
            authority: check
                .hostname
                .as_deref()
                .and_then(|h| http::uri::Authority::try_from(h).ok()),
        }
    }
}

/// Keeps the running checks in line with each new routing table, until the progress
/// channel closes.
pub async fn run(table: SharedTable, mut progress: watch::Receiver<Progress>) {
    let mut running: HashMap<EndpointKey, Running> = HashMap::new();
    loop {
        reconcile(&table.load(), &mut running);
        if progress.changed().await.is_err() {
            break;
        }
    }
    for (_, r) in running {
        r.task.abort();
    }
}

fn reconcile(table: &RoutingTable, running: &mut HashMap<EndpointKey, Running>) {
    let mut wanted: HashMap<EndpointKey, (&HealthCheck, Target)> = HashMap::new();
    for svc in table.config().services.values() {
        let Some(check) = &svc.load_balancer.health_check else {
            continue;
        };
        if svc.status != Status::Enabled {
            continue;
        }
        for server in &svc.servers {
            wanted
                .entry(EndpointKey::of(server))
                .or_insert_with(|| (check, Target::of(server, check)));
        }
    }
    running.retain(|key, r| {
        let keep = wanted
            .get(key)
            .is_some_and(|(c, t)| **c == r.config && *t == r.target);
        if !keep {
            r.task.abort();
            if let Some(e) = table.endpoints().get(key) {
                e.set_check(None);
            }
        }
        keep
    });
    for (key, (check, target)) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        let Some(endpoint) = table.endpoints().get(&key) else {
            continue;
        };
        let state = Arc::new(HealthState::new());
        endpoint.set_check(Some(state.clone()));
        let task = tokio::spawn(probe::run(
            target.address,
            target.h2c,
            target.authority.clone(),
            config_of(check),
            state,
        ));
        running.insert(
            key,
            Running {
                config: check.clone(),
                target,
                task: task.abort_handle(),
            },
        );
    }
}

/// The prober's settings for a configured check.
pub fn config_of(check: &HealthCheck) -> CheckConfig {
    let kind = match check.mode {
        HealthMode::Grpc => CheckKind::Grpc {
            service: check.target.clone(),
        },
        HealthMode::Http => CheckKind::Http {
            path: check.target.clone(),
        },
        HealthMode::Call => CheckKind::Call {
            path: check.target.clone(),
            // Stored in canonical form by the label reader: it parses.
            codes: CodeSet::parse(&check.codes).unwrap_or_default(),
        },
    };
    // Names and values were checked by the label reader: they convert.
    let headers = check
        .headers
        .iter()
        .filter_map(|(n, v)| {
            Some((
                http::HeaderName::from_bytes(n.as_bytes()).ok()?,
                http::HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    CheckConfig {
        kind,
        interval: Duration::from_millis(check.interval_ms),
        timeout: Duration::from_millis(check.timeout_ms),
        healthy_threshold: check.healthy_threshold,
        unhealthy_threshold: check.unhealthy_threshold,
        headers,
        http: HttpCheck {
            method: check
                .method
                .as_deref()
                .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok())
                .unwrap_or(http::Method::GET),
            status: check
                .status
                .and_then(|s| http::StatusCode::from_u16(s).ok()),
            follow_redirects: check.follow_redirects,
        },
    }
}
