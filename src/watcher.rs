//! The watcher: from provider snapshots to a published routing table.
//!
//! Each provider publishes its whole view on a `watch` channel (latest wins). The
//! watcher wakes on any change, waits out a minimum interval since the last rebuild
//! (bursts coalesce into one rebuild), merges every provider's latest view, reads the
//! labels, and, only if the resulting [`DynamicConfig`] differs from the last one,
//! compiles a new table and swaps it in.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::dynamic::{ConfigError, DynamicConfig, ObjectRef, Severity};
use crate::labels::{self, LabelOptions};
use crate::provider::{ProviderUpdate, Task, UpdateRx};
use crate::table::SharedTable;
use crate::table::{self, RoutingTable};

/// One provider's feed, by name.
pub struct Input {
    pub name: String,
    pub updates: UpdateRx,
}

/// Turns provider updates into routing tables.
pub struct Watcher {
    pub inputs: Vec<Input>,
    pub labels: LabelOptions,
    /// Entrypoint names, and whether each terminates TLS.
    pub entrypoints: Vec<(String, bool)>,
    pub throttle: Duration,
    pub table: SharedTable,
    /// Progress counters (tests and the API wait on them).
    pub progress: watch::Sender<Progress>,
}

/// What the watcher has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Sets of provider updates read (each may or may not change the configuration).
    pub updates: u64,
    /// Routing tables compiled and swapped in.
    pub tables: u64,
}

impl Watcher {
    /// Runs until every provider has gone away.
    pub async fn run(mut self) {
        let mut last_updates: Vec<Option<Arc<ProviderUpdate>>> = vec![None; self.inputs.len()];
        let mut last_config: Option<DynamicConfig> = None;
        let mut last_build: Option<Instant> = None;
        loop {
            let updates: Vec<Option<Arc<ProviderUpdate>>> = self
                .inputs
                .iter_mut()
                .map(|i| i.updates.borrow_and_update().clone())
                .collect();
            let unchanged = updates
                .iter()
                .zip(&last_updates)
                .all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                });
            if !unchanged {
                let config = assemble(&self.inputs, &updates, &self.labels, &self.entrypoints);
                let rebuilt = last_config.as_ref() != Some(&config);
                if rebuilt {
                    self.publish(config.clone());
                    last_build = Some(Instant::now());
                    last_config = Some(config);
                } else {
                    tracing::debug!("providers changed but the configuration did not: no rebuild");
                }
                last_updates = updates;
                self.progress.send_modify(|p| {
                    p.updates += 1;
                    p.tables += u64::from(rebuilt);
                });
            }
            if !self.wait_change().await {
                return;
            }
            // Coalesce bursts: at most one rebuild per throttle interval.
            if let Some(at) = last_build {
                tokio::time::sleep_until(at + self.throttle).await;
            }
        }
    }

    /// Waits until some provider publishes; false when none ever can again.
    async fn wait_change(&mut self) -> bool {
        let mut waits = self
            .inputs
            .iter_mut()
            .map(|i| Box::pin(i.updates.changed()))
            .collect::<Vec<_>>();
        if waits.is_empty() {
            return false;
        }
        loop {
            let (res, _, rest) = futures_util::future::select_all(waits).await;
            if res.is_ok() {
                return true;
            }
            if rest.is_empty() {
                return false;
            }
            waits = rest;
        }
    }

    fn publish(&self, config: DynamicConfig) {
        let started = std::time::Instant::now();
        let previous = self.table.load_full();
        let routers = config.routers.len();
        let services = config.services.len();
        let errors = config.errors.len();
        let next = RoutingTable::compile(Arc::new(config), &self.entrypoints, &previous);
        self.table.store(Arc::new(next));
        tracing::info!(
            routers,
            services,
            errors,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "routing table updated"
        );
    }
}

/// Merges provider views, reads labels and checks the result: the configuration a
/// set of updates describes. Also what `gantry check` prints.
pub fn assemble(
    inputs: &[Input],
    updates: &[Option<Arc<ProviderUpdate>>],
    label_opts: &LabelOptions,
    entrypoints: &[impl table::EntrypointSpec],
) -> DynamicConfig {
    let named: Vec<(&str, Option<&ProviderUpdate>)> = inputs
        .iter()
        .zip(updates)
        .map(|(i, u)| (i.name.as_str(), u.as_deref()))
        .collect();
    assemble_named(&named, label_opts, entrypoints)
}

/// [`assemble`] over `(provider name, update)` pairs.
pub fn assemble_named(
    updates: &[(&str, Option<&ProviderUpdate>)],
    label_opts: &LabelOptions,
    entrypoints: &[impl table::EntrypointSpec],
) -> DynamicConfig {
    let total: usize = updates
        .iter()
        .filter_map(|(_, u)| *u)
        .map(|u| u.tasks.len())
        .sum();
    let mut tasks: Vec<Task> = Vec::with_capacity(total);
    for u in updates.iter().filter_map(|(_, u)| *u) {
        tasks.extend(u.tasks.iter().cloned());
    }
    let mut config = labels::build(&tasks, label_opts);
    for (name, update) in updates {
        if let Some(error) = update.and_then(|u| u.error.as_ref()) {
            config.errors.push(ConfigError {
                severity: Severity::Error,
                object: ObjectRef::Provider((*name).to_string()),
                provider: (*name).to_string(),
                task: None,
                label: None,
                message: error.clone(),
            });
        }
    }
    table::validate(&mut config, entrypoints);
    config
}
