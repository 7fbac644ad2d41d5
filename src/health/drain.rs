//! Ends the drain of servers that left the routing table: once a removed server has
//! no call in flight its connection is closed; once its drain time is over, the
//! calls still on it are cut (their clients see the stream reset).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::balance::EndpointKey;
use crate::table::SharedTable;

const TICK: Duration = Duration::from_millis(100);

/// Watches the table's draining servers until the task is dropped.
pub async fn run(table: SharedTable) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Servers already closed, so each is closed (and logged) once.
    let mut closed: HashSet<EndpointKey> = HashSet::new();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let table = table.load();
        closed.retain(|key| table.draining().iter().any(|d| d.endpoint.key() == key));
        for d in table.draining() {
            if closed.contains(d.endpoint.key()) {
                continue;
            }
            let in_flight = d.endpoint.in_flight();
            if in_flight == 0 {
                tracing::info!(server = %d.endpoint.display(), "removed server drained");
            } else if now >= d.cut_at {
                tracing::warn!(server = %d.endpoint.display(), calls = in_flight, drained_for = ?now.saturating_duration_since(d.since), "drain time over: cutting the calls still on a removed server");
            } else {
                continue;
            }
            d.endpoint.upstream().cut();
            closed.insert(d.endpoint.key().clone());
        }
    }
}
