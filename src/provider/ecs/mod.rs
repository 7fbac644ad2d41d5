//! The ECS provider: polls clusters with the AWS SDK and publishes their running
//! tasks' containers, with their Docker labels, as targets.
//!
//! Improvements over Traefik's ECS provider, from its users' reports: API calls are
//! budgeted (task definitions and container instances are fetched once, not per
//! task and refresh), a refresh that fails anywhere publishes nothing (the last good
//! view keeps serving), throttling and server errors back off with jitter, and only
//! RUNNING (optionally HEALTHY) tasks get calls.

mod api;
pub mod fake;
mod model;
mod refresh;
pub mod sdk;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

pub use api::{ApiError, ApiErrorKind, EcsApi, Op, DESCRIBE_LIMIT, EC2_DESCRIBE_LIMIT};
pub use model::*;
pub use refresh::{CallCounts, Outcome, RefreshStats, Refresher, Settings, NAME};

use super::{ProviderStatus, ProviderUpdate, Task, UpdateTx};

/// When to refresh.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between two successful refreshes.
    pub interval: Duration,
    /// The longest wait after failures.
    pub max_backoff: Duration,
}

/// Polls ECS and publishes what it finds.
pub struct EcsProvider<A: EcsApi> {
    api: A,
    refresher: Refresher,
    timing: Timing,
    status: Arc<ProviderStatus>,
}

impl<A: EcsApi> EcsProvider<A> {
    pub fn new(api: A, settings: Settings, timing: Timing) -> Self {
        EcsProvider {
            api,
            refresher: Refresher::new(settings),
            timing,
            status: Arc::new(ProviderStatus::new(NAME)),
        }
    }

    pub fn status(&self) -> Arc<ProviderStatus> {
        self.status.clone()
    }

    /// Refreshes now and then every interval until the receiver is gone.
    ///
    /// A success publishes its tasks if they differ from the last published ones (or
    /// clears a previous error). A failure publishes the last good tasks with the
    /// error beside them, once per distinct error, and backs off.
    pub async fn run(mut self, tx: UpdateTx) {
        let mut failures: u32 = 0;
        let mut last_good: Arc<Vec<Task>> = Arc::new(Vec::new());
        let mut published_ok = false;
        let mut last_error: Option<String> = None;
        loop {
            let started = std::time::Instant::now();
            let delay = match self.refresher.refresh(&self.api).await {
                Ok(outcome) => {
                    failures = 0;
                    let stats = outcome.stats;
                    self.status
                        .record(Ok(stats.targets), stats.duration, stats.calls.by_name());
                    tracing::debug!(
                        clusters = stats.clusters,
                        tasks = stats.tasks_running,
                        targets = stats.targets,
                        calls = stats.calls.total(),
                        took_ms = stats.duration.as_secs_f64() * 1e3,
                        "ecs refresh"
                    );
                    let changed = !published_ok || *last_good != outcome.tasks;
                    if changed {
                        last_good = Arc::new(outcome.tasks);
                    }
                    if changed || last_error.is_some() {
                        tx.send_replace(Some(Arc::new(ProviderUpdate {
                            tasks: last_good.clone(),
                            error: None,
                        })));
                    }
                    published_ok = true;
                    last_error = None;
                    self.timing.interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let message = e.to_string();
                    self.status.record_api_error(e.op.name(), e.kind.name());
                    self.status.record(
                        Err(message.clone()),
                        started.elapsed(),
                        self.refresher.last_calls().by_name(),
                    );
                    let delay = backoff(
                        &self.timing,
                        failures,
                        e.kind,
                        e.retry_after,
                        &mut rand::rng(),
                    );
                    tracing::warn!(error = %message, retry_in_ms = delay.as_millis() as u64, "ecs refresh failed; the last good tasks keep serving");
                    if last_error.as_ref() != Some(&message) {
                        tx.send_replace(Some(Arc::new(ProviderUpdate {
                            tasks: last_good.clone(),
                            error: Some(message.clone()),
                        })));
                    }
                    last_error = Some(message);
                    delay
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = tx.closed() => return,
            }
        }
    }
}

/// How long to wait after `failures` consecutive failed refreshes.
///
/// Exponential from the refresh interval, doubling per failure, capped at
/// `max_backoff`; throttling starts one step higher (the account is over its rate,
/// polling sooner only makes it worse). "Equal jitter" (AWS Architecture Blog,
/// "Exponential Backoff and Jitter"): a uniform pick in [d/2, d], so many gantry
/// replicas throttled together do not retry in lockstep. A delay the service asked
/// for is honoured.
pub fn backoff(
    timing: &Timing,
    failures: u32,
    kind: ApiErrorKind,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    if failures == 0 {
        return timing.interval;
    }
    let steps = match kind {
        ApiErrorKind::Throttled => failures,
        _ => failures - 1,
    };
    let factor = 2u32.saturating_pow(steps.min(16));
    let d = timing
        .interval
        .saturating_mul(factor)
        .min(timing.max_backoff);
    let half = d / 2;
    // The floor applies after the jitter: a delay the service asked for is a minimum.
    (half + half.mul_f64(rng.random::<f64>())).max(retry_after.unwrap_or_default())
}
