//! The outlier detector's timed work, over the current routing table: every 100 ms
//! one task ends ejections that ran their time, moves slow starts and closes failure
//! windows; when a new table is published it first puts each service's servers
//! under that service's detection (see [`crate::balance::outlier`] for the
//! algorithm, which the call path feeds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::balance::outlier::Detector;
use crate::balance::Endpoint;
use crate::dynamic::{OutlierDetection, Status};
use crate::table::{RoutingTable, SharedTable};

/// How often returns, windows and slow-start shares are updated.
const TICK: Duration = Duration::from_millis(100);

/// Keeps every server under its service's detection, ends ejections, moves slow
/// starts and closes windows, every 100 ms until the task is dropped.
pub async fn run(table: SharedTable) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut current: Option<Arc<RoutingTable>> = None;
    let mut detector = Detector::default();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let latest = table.load_full();
        if !current.as_ref().is_some_and(|t| Arc::ptr_eq(t, &latest)) {
            detector.reconcile(watched(&latest), now);
            current = Some(latest);
        }
        detector.sweep(now);
    }
}

/// The services of `table` with detection on: name, settings, servers.
fn watched(
    table: &RoutingTable,
) -> impl Iterator<Item = (&Arc<str>, &OutlierDetection, &[Arc<Endpoint>])> {
    table.config().services.iter().filter_map(|(name, svc)| {
        let settings = &svc.load_balancer.outlier;
        if svc.status != Status::Enabled || !settings.is_enabled() {
            return None;
        }
        let entry = table.service_named(name)?;
        Some((&entry.name, settings, entry.balancer.endpoints()))
    })
}
