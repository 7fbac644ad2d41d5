//! Reachability: notices within a second when a server stops accepting connections,
//! and when it comes back, without waiting for a call to fail on it.
//!
//! Every half second one task looks at the current table's endpoints. An h2c server
//! normally has its shared connection open; if that connection is gone (the server
//! went away, or it was never dialled), the task dials it, which both tests the
//! server and leaves a warm connection for the next call. An HTTP/1.1 server is
//! dialled only after a failure, until a dial succeeds. A failed dial marks the server
//! DOWN (no new calls); a successful one marks it UP. Dials run concurrently, a bounded
//! number at a time, each with a short timeout. (Active checks of the server's own
//! health, gRPC or HTTP, come on top of this.)

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::balance::Endpoint;
use crate::dynamic::Scheme;
use crate::table::SharedTable;

/// Time between two looks at the table.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// How long one dial may take before the server counts as unreachable.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Dials at once.
const CONCURRENCY: usize = 64;

/// Runs forever; the caller aborts it at shutdown.
pub async fn run(table: SharedTable) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due: Vec<Arc<Endpoint>> = table
            .load()
            .endpoints()
            .values()
            .filter(|e| needs_dial(e))
            .cloned()
            .collect();
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |e| async move { dial(&e).await })
            .await;
    }
}

fn needs_dial(e: &Endpoint) -> bool {
    if !e.platform_ok() {
        return false;
    }
    match e.scheme() {
        Scheme::H2c | Scheme::Https => !e.upstream().is_connected(),
        Scheme::Http => !e.is_reachable(),
    }
}

/// Dials one server and records what happened.
pub async fn dial(e: &Endpoint) {
    match tokio::time::timeout(DIAL_TIMEOUT, e.upstream().connect()).await {
        Ok(Ok(())) => e.observe_reachable(),
        Ok(Err(err)) => e.observe_unreachable(err.to_string()),
        Err(_) => e.observe_unreachable(format!(
            "connecting to {} timed out after {DIAL_TIMEOUT:?}",
            e.address()
        )),
    }
}
