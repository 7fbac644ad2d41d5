//! Runs the active health checks the configuration asks for: one task per server of
//! a service with `healthcheck.*` labels, started when the server appears, restarted
//! when its check's settings change, stopped when it leaves.
//!
//! The check's state lives on the server's [`Endpoint`] (which survives rebuilds), so
//! a reload neither resets a verdict nor starts a second probe. A server shared by two
//! services with different checks is checked with the first service's settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::codes::CodeSet;
use super::health::{self, CheckConfig, CheckKind, HealthState};
use super::EndpointKey;
use crate::dynamic::{HealthCheck, HealthMode, Status};
use crate::proxy::SharedTable;
use crate::table::RoutingTable;
use crate::watcher::Progress;

struct Running {
    config: HealthCheck,
    task: AbortHandle,
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
    let mut wanted: HashMap<EndpointKey, &HealthCheck> = HashMap::new();
    for svc in table.config().services.values() {
        let Some(check) = &svc.load_balancer.health_check else {
            continue;
        };
        if svc.status != Status::Enabled {
            continue;
        }
        for server in &svc.servers {
            wanted.entry(EndpointKey::of(server)).or_insert(check);
        }
    }
    running.retain(|key, r| {
        let keep = wanted.get(key).is_some_and(|c| **c == r.config);
        if !keep {
            r.task.abort();
            if let Some(e) = table.endpoints().get(key) {
                e.set_check(None);
            }
        }
        keep
    });
    for (key, check) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        let Some(endpoint) = table.endpoints().get(&key) else {
            continue;
        };
        let state = Arc::new(HealthState::new());
        endpoint.set_check(Some(state.clone()));
        let task = tokio::spawn(health::run(
            key.address,
            key.scheme.is_h2(),
            None,
            config_of(check),
            state,
        ));
        running.insert(
            key,
            Running {
                config: check.clone(),
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
    CheckConfig {
        kind,
        interval: Duration::from_millis(check.interval_ms),
        timeout: Duration::from_millis(check.timeout_ms),
        healthy_threshold: check.healthy_threshold,
        unhealthy_threshold: check.unhealthy_threshold,
    }
}
