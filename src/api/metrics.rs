//! `/metrics`: the Prometheus (OpenMetrics) text exposition, with `prometheus-client`.
//!
//! Nothing is registered ahead of time: at each scrape a collector walks the current
//! routing table and the live counters and writes what they hold. Scopes that left the
//! table stop being reported; series appear once they have a non-zero count (a
//! status that never happened is not a time series).
//!
//! Families (counters carry the `_total` suffix on the wire):
//! - `gantry_{entrypoint,router,service,server}_requests_total{…, status}`: finished
//!   calls by gRPC status name (`OK`, `UNAVAILABLE`, …), or `HTTP 2xx`…`HTTP 5xx` for
//!   plain HTTP, `RESET` for broken streams, `CANCELLED` for HTTP clients gone early;
//! - `gantry_{…}_request_duration_seconds`: latency histograms (bucket bounds are
//!   powers of two of microseconds, 64 µs to ~67 s, exactly as recorded);
//! - `gantry_{…}_requests_in_flight`;
//! - `gantry_entrypoint_connections_closed_total{entrypoint, reason}`: connections
//!   closed to protect an entrypoint (`flood`, `header_timeout`, `max_connections`,
//!   `tls_handshake`, `protocol_error`);
//! - `gantry_server_health{state}` (1 for the current state of UP/DOWN/DRAINING),
//!   `gantry_upstream_connections`, `gantry_health_checks_total`,
//!   `gantry_health_check_failures_total`, `gantry_outlier_ejections_total`;
//! - `gantry_provider_*`: refreshes, failures, duration, tasks, last success, and AWS
//!   API calls and errors by operation;
//! - `gantry_routers`, `gantry_services` by status, `gantry_config_errors`,
//!   `gantry_table_generation`, `gantry_access_log_dropped_total`, `gantry_build_info`.

use std::collections::HashSet;
use std::fmt::Error;
use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Shared;
use crate::balance::{EndpointKey, Health};
use crate::dynamic::Status;
use crate::telemetry::{bucket_upper, slot_name, CallStats, BUCKETS, SLOTS};

type Labels = Vec<(&'static str, String)>;

/// Renders every metric as OpenMetrics text.
pub fn render(shared: &Shared) -> Result<String, Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(shared.clone())));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

struct Scrape(Shared);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

/// One scope's counters with its labels.
struct Scoped<'a> {
    labels: Labels,
    stats: &'a CallStats,
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        let shared = &self.0;
        let table = shared.table.load();
        let config = table.config();

        let entrypoints: Vec<Scoped> = shared
            .entrypoints
            .iter()
            .zip(&shared.entrypoint_stats)
            .map(|((name, _), stats)| Scoped {
                labels: vec![("entrypoint", name.clone())],
                stats,
            })
            .collect();
        let routers: Vec<Scoped> = config
            .routers
            .iter()
            .filter_map(|(name, r)| {
                let stats = table.router_stats(name)?;
                Some(Scoped {
                    labels: vec![("router", name.clone()), ("service", r.service.clone())],
                    stats,
                })
            })
            .collect();
        let services: Vec<Scoped> = config
            .services
            .keys()
            .filter_map(|name| {
                Some(Scoped {
                    labels: vec![("service", name.clone())],
                    stats: table.service_stats(name)?,
                })
            })
            .collect();
        // A server shared by two services is reported once, under the first.
        let mut seen = HashSet::new();
        let mut servers = Vec::new();
        for (name, svc) in &config.services {
            if svc.status != Status::Enabled {
                continue;
            }
            for server in &svc.servers {
                let key = EndpointKey::of(server);
                let Some(endpoint) = table.endpoints().get(&key) else {
                    continue;
                };
                if seen.insert(key) {
                    let labels = vec![
                        ("service", name.clone()),
                        ("server", server.url.clone()),
                        ("task", server.task.clone()),
                    ];
                    servers.push((labels, endpoint.clone()));
                }
            }
        }
        let server_scopes: Vec<Scoped> = servers
            .iter()
            .map(|(labels, e)| Scoped {
                labels: labels.clone(),
                stats: e.stats(),
            })
            .collect();

        for (scope, list) in [
            ("entrypoint", &entrypoints),
            ("router", &routers),
            ("service", &services),
            ("server", &server_scopes),
        ] {
            scope_families(&mut enc, scope, list)?;
        }

        let mut health = Vec::new();
        let mut connections = Vec::new();
        let mut checks = Vec::new();
        let mut check_failures = Vec::new();
        let mut ejections = Vec::new();
        for (labels, e) in &servers {
            ejections.push((labels.clone(), e.outlier().ejections()));
            if let Some(c) = e.check() {
                checks.push((labels.clone(), c.checks()));
                check_failures.push((labels.clone(), c.failures()));
            }
            let (now, _) = e.health();
            for (state, h) in [
                ("UP", Health::Up),
                ("DOWN", Health::Down),
                ("DRAINING", Health::Draining),
            ] {
                let mut l = labels.clone();
                l.push(("state", state.to_string()));
                health.push((l, u64::from(now == h)));
            }
            connections.push((labels.clone(), u64::from(e.upstream().is_connected())));
        }
        gauges(
            &mut enc,
            "gantry_server_health",
            "Server health: 1 for its current state",
            health,
        )?;
        gauges(
            &mut enc,
            "gantry_upstream_connections",
            "Open HTTP/2 connections to the server (h2c servers share one)",
            connections,
        )?;

        counters(
            &mut enc,
            "gantry_health_checks",
            "Active health checks run against the server",
            checks,
        )?;
        counters(
            &mut enc,
            "gantry_health_check_failures",
            "Active health checks the server failed",
            check_failures,
        )?;
        counters(
            &mut enc,
            "gantry_outlier_ejections",
            "Times passive outlier detection ejected the server",
            ejections,
        )?;

        let closed = shared
            .entrypoints
            .iter()
            .zip(&shared.entrypoint_edges)
            .flat_map(|((name, _), edge)| {
                edge.guards
                    .counts()
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(why, n)| {
                        (
                            vec![("entrypoint", name.clone()), ("reason", why.to_string())],
                            n,
                        )
                    })
            })
            .collect();
        counters(
            &mut enc,
            "gantry_entrypoint_connections_closed",
            "Client connections an entrypoint closed to protect itself, by reason",
            closed,
        )?;

        provider_families(&mut enc, shared)?;

        let by_status = |statuses: &mut dyn Iterator<Item = Status>| {
            let (mut enabled, mut disabled) = (0u64, 0u64);
            for s in statuses {
                match s {
                    Status::Enabled => enabled += 1,
                    Status::Disabled => disabled += 1,
                }
            }
            vec![
                (vec![("status", "enabled".to_string())], enabled),
                (vec![("status", "disabled".to_string())], disabled),
            ]
        };
        gauges(
            &mut enc,
            "gantry_routers",
            "Routers in the configuration, by status",
            by_status(&mut config.routers.values().map(|r| r.status)),
        )?;
        gauges(
            &mut enc,
            "gantry_services",
            "Services in the configuration, by status",
            by_status(&mut config.services.values().map(|s| s.status)),
        )?;
        gauges(
            &mut enc,
            "gantry_config_errors",
            "Label and provider errors in the configuration",
            vec![(Vec::new(), config.errors.len() as u64)],
        )?;
        gauges(
            &mut enc,
            "gantry_table_generation",
            "Routing tables published since start",
            vec![(Vec::new(), shared.progress.borrow().tables)],
        )?;
        if let Some(log) = &shared.access_log {
            counters(
                &mut enc,
                "gantry_access_log_dropped",
                "Access log lines dropped because the writer fell behind",
                vec![(Vec::new(), log.dropped())],
            )?;
        }
        gauges(
            &mut enc,
            "gantry_build_info",
            "Build information",
            vec![(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1)],
        )?;
        Ok(())
    }
}

fn scope_families(enc: &mut DescriptorEncoder, scope: &str, list: &[Scoped]) -> Result<(), Error> {
    let mut requests = Vec::new();
    let mut in_flight = Vec::new();
    for s in list {
        let outcomes = s.stats.outcomes();
        for (slot, &n) in outcomes.iter().enumerate().take(SLOTS) {
            if n > 0 {
                let mut l = s.labels.clone();
                l.push(("status", slot_name(slot).to_string()));
                requests.push((l, n));
            }
        }
        in_flight.push((s.labels.clone(), s.stats.in_flight()));
    }
    counters(
        enc,
        &format!("gantry_{scope}_requests"),
        &format!("Finished calls per {scope}, by gRPC status (or HTTP class)"),
        requests,
    )?;
    gauges(
        enc,
        &format!("gantry_{scope}_requests_in_flight"),
        &format!("Calls in flight per {scope}"),
        in_flight,
    )?;
    let name = format!("gantry_{scope}_request_duration_seconds");
    let mut m = enc.encode_descriptor(
        &name,
        &format!("Call duration per {scope}, from routing to the end of the response"),
        None,
        MetricType::Histogram,
    )?;
    for s in list {
        let (sum, count, buckets) = exported_buckets(s.stats);
        m.encode_family(&s.labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// Exported `le` bounds: 2^6..=2^26 microseconds.
const FIRST_BOUND: u32 = 6;
const LAST_BOUND: u32 = 26;

/// The histogram as Prometheus buckets: per-bucket counts (the encoder accumulates),
/// bounds in seconds, the last one +Inf.
fn exported_buckets(stats: &CallStats) -> (f64, u64, Vec<(f64, u64)>) {
    let internal = stats.buckets();
    let mut out: Vec<(f64, u64)> = (FIRST_BOUND..=LAST_BOUND)
        .map(|p| ((1u64 << p) as f64 / 1e6, 0))
        .collect();
    out.push((f64::MAX, 0));
    let last = out.len() - 1;
    for (i, &n) in internal.iter().enumerate().take(BUCKETS) {
        if n == 0 {
            continue;
        }
        let upper = bucket_upper(i);
        // The first exported bound that holds the whole internal bucket.
        let j = (FIRST_BOUND..=LAST_BOUND)
            .position(|p| upper <= 1u64 << p)
            .unwrap_or(last);
        out[j].1 += n;
    }
    let count = internal.iter().sum();
    (stats.sum().as_secs_f64(), count, out)
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, u64)>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
    }
    Ok(())
}

fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, V)>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn provider_families(enc: &mut DescriptorEncoder, shared: &Shared) -> Result<(), Error> {
    let mut refreshes = Vec::new();
    let mut failures = Vec::new();
    let mut duration = Vec::new();
    let mut tasks = Vec::new();
    let mut success = Vec::new();
    let mut calls = Vec::new();
    let mut errors = Vec::new();
    for p in &shared.providers {
        let name = || vec![("provider", p.name().to_string())];
        let last = p.last();
        refreshes.push((name(), p.refreshes()));
        failures.push((name(), p.failures()));
        duration.push((name(), last.duration_ms / 1e3));
        tasks.push((name(), last.tasks as u64));
        let at = last
            .last_success
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        success.push((name(), at));
        for (op, n) in p.total_calls() {
            let mut l = name();
            l.push(("operation", op.to_string()));
            calls.push((l, n));
        }
        for ((op, kind), n) in p.api_errors() {
            let mut l = name();
            l.push(("operation", op.to_string()));
            l.push(("kind", kind.to_string()));
            errors.push((l, n));
        }
    }
    counters(
        enc,
        "gantry_provider_refreshes",
        "Provider refreshes (reads of its source)",
        refreshes,
    )?;
    counters(
        enc,
        "gantry_provider_refresh_failures",
        "Provider refreshes that failed",
        failures,
    )?;
    gauges(
        enc,
        "gantry_provider_refresh_duration_seconds",
        "Duration of the last refresh",
        duration,
    )?;
    gauges(
        enc,
        "gantry_provider_tasks",
        "Targets the provider's last good refresh found",
        tasks,
    )?;
    gauges(
        enc,
        "gantry_provider_last_success_timestamp_seconds",
        "Unix time of the last successful refresh (0: none yet)",
        success,
    )?;
    counters(
        enc,
        "gantry_provider_api_calls",
        "AWS API calls made, by operation",
        calls,
    )?;
    counters(
        enc,
        "gantry_provider_api_errors",
        "AWS API calls that failed after the SDK's retries, by operation and kind",
        errors,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Outcome;
    use std::time::Duration;

    #[test]
    fn exported_buckets_hold_every_call_under_the_right_bound() {
        let s = CallStats::default();
        s.record(Outcome::Grpc(0), Duration::from_micros(10)); // <= 64 µs
        s.record(Outcome::Grpc(0), Duration::from_micros(64)); // shares a bucket with 64..80 µs
        s.record(Outcome::Grpc(0), Duration::from_micros(65)); // <= 128 µs
        s.record(Outcome::Grpc(0), Duration::from_millis(1)); // <= 1024 µs
        s.record(Outcome::Grpc(0), Duration::from_secs(100)); // +Inf
        let (_, count, buckets) = exported_buckets(&s);
        assert_eq!(count, 5);
        assert_eq!(buckets[0], (64e-6, 1));
        assert_eq!(buckets[1], (128e-6, 2));
        assert_eq!(buckets[4].1, 1);
        assert_eq!(buckets.last().map(|b| b.1), Some(1));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 5);
    }
}
