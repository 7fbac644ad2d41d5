//! Providers discover tasks and push whole snapshots of them to the watcher.
//!
//! A provider owns its discovery loop and publishes a [`Snapshot`] on a
//! `tokio::sync::watch` channel: latest wins, a slow consumer never queues stale state.
//! A provider that fails to read its source publishes nothing, so the last good
//! snapshot keeps serving; the failure is recorded in its [`ProviderStatus`].

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
}

impl ProviderStatus {
    pub fn new(name: &str) -> ProviderStatus {
        ProviderStatus {
            name: name.to_string(),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last: ArcSwap::from_pointee(LastRefresh::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn record_ok(&self, tasks: usize, took: Duration) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        self.last.store(Arc::new(LastRefresh {
            at: Some(now),
            duration_ms: took.as_secs_f64() * 1e3,
            tasks,
            error: None,
            last_success: Some(now),
        }));
    }

    pub fn record_error(&self, error: String) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let prev = self.last.load();
        self.last.store(Arc::new(LastRefresh {
            at: Some(SystemTime::now()),
            duration_ms: 0.0,
            tasks: prev.tasks,
            error: Some(error),
            last_success: prev.last_success,
        }));
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
