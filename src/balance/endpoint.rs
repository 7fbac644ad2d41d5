//! One server's live state.
//!
//! Everything here is atomics (or the upstream pool's own lock-free handle): the hot
//! path reads and bumps them without locks. Health combines what the platform says
//! (ECS health, task lifecycle) with what gantry saw dialling the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::ewma::PeakEwma;
use super::outlier::OutlierState;
use super::verdict::HealthState;

use crate::dynamic::{Scheme, Server, ServerTls};
use crate::provider::{Lifecycle, TaskHealth};
use crate::telemetry::CallStats;
use crate::upstream::Upstream;

/// Identity of an endpoint across rebuilds: the same task, address and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub task: String,
    pub address: SocketAddr,
    pub scheme: Scheme,
    /// An https server's verification settings.
    pub tls: Option<ServerTls>,
}

impl EndpointKey {
    pub fn of(server: &Server) -> EndpointKey {
        EndpointKey {
            task: server.task.clone(),
            address: server.address,
            scheme: server.scheme,
            tls: server.tls.clone(),
        }
    }
}

/// What the dashboard says of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Health {
    /// Takes new calls.
    Up,
    /// Takes no new calls: unhealthy, or cannot be reached.
    Down,
    /// Its task is stopping: calls in flight finish, no new ones arrive.
    Draining,
}

/// A server and what gantry knows about it right now.
#[derive(Debug)]
pub struct Endpoint {
    key: EndpointKey,
    /// Label for logs, errors and metrics: `task@address`.
    display: Arc<str>,
    /// `ip:port`, ready to put in request URIs.
    authority: http::uri::Authority,
    upstream: Upstream,
    /// What the provider last said (ECS health checks, task lifecycle).
    platform_health: AtomicU8,
    lifecycle: AtomicU8,
    /// False after a dial failed, until one succeeds (see `health::reachability`).
    reachable: AtomicBool,
    unreachable_reason: ArcSwapOption<String>,
    stats: Arc<CallStats>,
    /// Time to response headers, peak-EWMA (for p2c).
    latency: PeakEwma,
    /// The active health check's verdict, when the service has one.
    check: ArcSwapOption<HealthState>,
    /// Passive outlier detection (ejections, slow start).
    outlier: OutlierState,
}

/// p2c's starting guess of a new server's latency, and how fast estimates forget.
const DEFAULT_RTT: Duration = Duration::from_millis(1);
const RTT_DECAY: Duration = Duration::from_secs(10);

impl Endpoint {
    /// An endpoint whose https connections trust the system's roots.
    pub fn new(key: EndpointKey) -> Endpoint {
        let tls = match key.scheme {
            Scheme::Https => Some(crate::tls::UpstreamTls::system()),
            _ => None,
        };
        Endpoint::with_tls(key, tls.as_deref())
    }

    /// An endpoint dialling https with `tls` (what the config trusts).
    pub fn with_tls(key: EndpointKey, tls: Option<&crate::tls::UpstreamTls>) -> Endpoint {
        let display: Arc<str> = format!("{}@{}", key.task, key.address).into();
        let dial = match (key.scheme, tls) {
            (Scheme::Https, Some(tls)) => {
                let t = key.tls.clone().unwrap_or_default();
                Some(tls.dial(
                    key.address.ip(),
                    t.server_name.as_deref(),
                    t.insecure_skip_verify,
                ))
            }
            _ => None,
        };
        // A socket address always forms a valid authority; the fallback is unreachable.
        let authority = http::uri::Authority::try_from(key.address.to_string().as_str())
            .unwrap_or_else(|_| http::uri::Authority::from_static("invalid"));
        Endpoint {
            upstream: Upstream::new(key.address, key.scheme, dial),
            authority,
            key,
            display,
            platform_health: AtomicU8::new(TaskHealth::Unknown as u8),
            lifecycle: AtomicU8::new(Lifecycle::Running as u8),
            reachable: AtomicBool::new(true),
            unreachable_reason: ArcSwapOption::empty(),
            stats: Arc::new(CallStats::default()),
            latency: PeakEwma::new(DEFAULT_RTT, RTT_DECAY),
            check: ArcSwapOption::empty(),
            outlier: OutlierState::default(),
        }
    }

    pub fn key(&self) -> &EndpointKey {
        &self.key
    }

    pub fn address(&self) -> SocketAddr {
        self.key.address
    }

    pub fn scheme(&self) -> Scheme {
        self.key.scheme
    }

    pub fn display(&self) -> &Arc<str> {
        &self.display
    }

    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Time to response headers, as p2c weighs it.
    pub fn latency(&self) -> &PeakEwma {
        &self.latency
    }

    /// Calls on this server: counters, latency, in flight.
    pub fn stats(&self) -> &Arc<CallStats> {
        &self.stats
    }

    /// Applies what the provider last said about the task (at each rebuild).
    pub fn observe_platform(&self, health: TaskHealth, lifecycle: Lifecycle) {
        self.platform_health.store(health as u8, Ordering::Relaxed);
        self.lifecycle.store(lifecycle as u8, Ordering::Relaxed);
    }

    pub fn platform_health(&self) -> TaskHealth {
        match self.platform_health.load(Ordering::Relaxed) {
            h if h == TaskHealth::Healthy as u8 => TaskHealth::Healthy,
            h if h == TaskHealth::Unhealthy as u8 => TaskHealth::Unhealthy,
            _ => TaskHealth::Unknown,
        }
    }

    pub fn lifecycle(&self) -> Lifecycle {
        match self.lifecycle.load(Ordering::Relaxed) {
            l if l == Lifecycle::Pending as u8 => Lifecycle::Pending,
            l if l == Lifecycle::Stopping as u8 => Lifecycle::Stopping,
            l if l == Lifecycle::Stopped as u8 => Lifecycle::Stopped,
            _ => Lifecycle::Running,
        }
    }

    /// The platform allows calls: running, and not reported unhealthy.
    pub fn platform_ok(&self) -> bool {
        self.platform_health.load(Ordering::Relaxed) != TaskHealth::Unhealthy as u8
            && self.lifecycle.load(Ordering::Relaxed) == Lifecycle::Running as u8
    }

    /// Whether new calls should be sent here.
    pub fn is_available(&self) -> bool {
        self.platform_ok()
            && self.reachable.load(Ordering::Relaxed)
            && self.check_ok()
            && !self.outlier.is_ejected()
    }

    /// Passive outlier detection's state.
    pub fn outlier(&self) -> &OutlierState {
        &self.outlier
    }

    /// Counts a finished call (or a failed attempt) on this server.
    pub fn finished(&self, outcome: crate::telemetry::Outcome, took: Duration) {
        self.stats.finished(outcome, took);
        self.outlier.observe(outcome, &self.display);
    }

    /// A call that got no answer before its deadline: counted with `outcome`,
    /// and as a failure for outlier detection whatever the service's codes are.
    pub fn finished_unanswered(&self, outcome: crate::telemetry::Outcome, took: Duration) {
        self.stats.finished(outcome, took);
        self.outlier
            .observe(crate::telemetry::Outcome::Reset, &self.display);
    }

    /// The active health check passes, or there is none.
    pub fn check_ok(&self) -> bool {
        self.check.load().as_ref().is_none_or(|c| c.is_healthy())
    }

    /// Attaches (or removes) the active health check's state.
    pub fn set_check(&self, state: Option<Arc<HealthState>>) {
        self.check.store(state);
    }

    /// The active health check's state, if the service has one.
    pub fn check(&self) -> Option<Arc<HealthState>> {
        self.check.load_full()
    }

    /// Records that a connection to the server could not be made.
    pub fn observe_unreachable(&self, reason: String) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::info!(server = %self.display, %reason, "server unreachable: no new calls until a dial succeeds");
        }
        self.unreachable_reason.store(Some(Arc::new(reason)));
    }

    /// Records that a connection to the server was made. Cheap when nothing changes.
    pub fn observe_reachable(&self) {
        if !self.reachable.load(Ordering::Relaxed) && !self.reachable.swap(true, Ordering::Relaxed)
        {
            tracing::info!(server = %self.display, "server reachable again");
            self.unreachable_reason.store(None);
        }
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Health as the dashboard shows it, with the reason when not UP.
    pub fn health(&self) -> (Health, Option<String>) {
        let lifecycle = self.lifecycle();
        match lifecycle {
            Lifecycle::Running => {}
            Lifecycle::Stopping | Lifecycle::Stopped => {
                return (
                    Health::Draining,
                    Some(format!("task {}", lifecycle_name(lifecycle))),
                )
            }
            Lifecycle::Pending => return (Health::Down, Some("task PENDING".to_string())),
        }
        if self.platform_health() == TaskHealth::Unhealthy {
            return (
                Health::Down,
                Some("task UNHEALTHY (platform health check)".to_string()),
            );
        }
        if let Some(check) = self.check.load().as_ref().filter(|c| !c.is_healthy()) {
            let reason = check
                .reason()
                .unwrap_or_else(|| "health check failing".to_string());
            return (Health::Down, Some(reason));
        }
        if let Some(reason) = self.outlier.reason() {
            return (Health::Down, Some(reason));
        }
        if !self.is_reachable() {
            let reason = self
                .unreachable_reason
                .load()
                .as_deref()
                .map_or_else(|| "cannot connect".to_string(), |r| r.to_string());
            return (Health::Down, Some(reason));
        }
        (Health::Up, None)
    }

    pub fn in_flight(&self) -> u64 {
        self.stats.in_flight()
    }

    /// Calls finished on this server.
    pub fn requests(&self) -> u64 {
        self.stats.requests()
    }
}

fn lifecycle_name(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Pending => "PENDING",
        Lifecycle::Running => "RUNNING",
        Lifecycle::Stopping => "STOPPING",
        Lifecycle::Stopped => "STOPPED",
    }
}
