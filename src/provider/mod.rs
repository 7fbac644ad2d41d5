//! Providers discover tasks and push whole snapshots of them to the watcher.
//!
//! A provider owns its discovery loop and publishes a [`Snapshot`] on a
//! `tokio::sync::watch` channel: latest wins, a slow consumer never queues stale state.
//! A provider that fails to read its source publishes nothing, so the last good
//! snapshot keeps serving; the failure is recorded in its [`ProviderStatus`].

pub mod ecs;
pub mod file;
mod task;

pub use task::{normalize, Lifecycle, PortMapping, Task, TaskHealth};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

/// What a provider publishes: its whole current view, and the error of its last
/// attempt if that failed (then `tasks` is the last good view, still serving).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderUpdate {
    pub tasks: Arc<Vec<Task>>,
    pub error: Option<String>,
}

/// The sending half a provider publishes on; `None` until its first attempt.
pub type UpdateTx = tokio::sync::watch::Sender<Option<Arc<ProviderUpdate>>>;
/// The receiving half the watcher reads.
pub type UpdateRx = tokio::sync::watch::Receiver<Option<Arc<ProviderUpdate>>>;

/// Live health of a provider, for the API and metrics.
#[derive(Debug)]
pub struct ProviderStatus {
    name: String,
    refreshes: AtomicU64,
    failures: AtomicU64,
    last: ArcSwap<LastRefresh>,
    total_calls: ArcSwap<std::collections::BTreeMap<&'static str, u64>>,
    /// Failed API calls since start, by operation and kind of error.
    api_errors: ArcSwap<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

/// The outcome of a provider's most recent refresh.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRefresh {
    pub at: Option<SystemTime>,
    pub duration_ms: f64,
    pub tasks: usize,
    pub error: Option<String>,
    /// When the last successful refresh happened.
    pub last_success: Option<SystemTime>,
    /// API calls the last refresh made, by operation (ECS provider).
    pub api_calls: std::collections::BTreeMap<&'static str, u64>,
}

impl ProviderStatus {
    pub fn new(name: &str) -> ProviderStatus {
        ProviderStatus {
            name: name.to_string(),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last: ArcSwap::from_pointee(LastRefresh::default()),
            total_calls: ArcSwap::from_pointee(Default::default()),
            api_errors: ArcSwap::from_pointee(Default::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn record_ok(&self, tasks: usize, took: Duration) {
        self.record(Ok(tasks), took, Default::default());
    }

    pub fn record_error(&self, error: String) {
        self.record(Err(error), Duration::ZERO, Default::default());
    }

    /// Records a refresh: its outcome (targets, or the error), time and API calls.
    pub fn record(
        &self,
        outcome: Result<usize, String>,
        took: Duration,
        api_calls: std::collections::BTreeMap<&'static str, u64>,
    ) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        if !api_calls.is_empty() {
            self.total_calls.rcu(|totals| {
                let mut totals = (**totals).clone();
                for (op, n) in &api_calls {
                    *totals.entry(op).or_insert(0) += n;
                }
                totals
            });
        }
        let now = SystemTime::now();
        let prev = self.last.load();
        let last = match outcome {
            Ok(tasks) => LastRefresh {
                at: Some(now),
                duration_ms: took.as_secs_f64() * 1e3,
                tasks,
                error: None,
                last_success: Some(now),
                api_calls,
            },
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                LastRefresh {
                    at: Some(now),
                    duration_ms: took.as_secs_f64() * 1e3,
                    tasks: prev.tasks,
                    error: Some(error),
                    last_success: prev.last_success,
                    api_calls,
                }
            }
        };
        self.last.store(Arc::new(last));
    }

    /// Counts an API call that failed (after the SDK's own retries).
    pub fn record_api_error(&self, op: &'static str, kind: &'static str) {
        self.api_errors.rcu(|errors| {
            let mut errors = (**errors).clone();
            *errors.entry((op, kind)).or_insert(0) += 1;
            errors
        });
    }

    /// Failed API calls since start, by (operation, kind).
    pub fn api_errors(&self) -> std::collections::BTreeMap<(&'static str, &'static str), u64> {
        (**self.api_errors.load()).clone()
    }

    /// API calls made since start, by operation.
    pub fn total_calls(&self) -> std::collections::BTreeMap<&'static str, u64> {
        (**self.total_calls.load()).clone()
    }

    pub fn last(&self) -> Arc<LastRefresh> {
        self.last.load_full()
    }

    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}
