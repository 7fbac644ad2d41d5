//! One server's live state.
//!
//! Everything here is atomics (or the upstream pool's own lock-free handle): the hot
//! path reads and bumps them without locks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::dynamic::{Scheme, Server};
use crate::provider::{Lifecycle, TaskHealth};
use crate::proxy::upstream::Upstream;

/// Identity of an endpoint across rebuilds: the same task, address and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub task: String,
    pub address: SocketAddr,
    pub scheme: Scheme,
}

impl EndpointKey {
    pub fn of(server: &Server) -> EndpointKey {
        EndpointKey {
            task: server.task.clone(),
            address: server.address,
            scheme: server.scheme,
        }
    }
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
    /// Platform health (ECS): an unhealthy or stopping task gets no new calls.
    platform_ok: AtomicBool,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
}

impl Endpoint {
    pub fn new(key: EndpointKey) -> Endpoint {
        let display: Arc<str> = format!("{}@{}", key.task, key.address).into();
        // A socket address always forms a valid authority; the fallback is unreachable.
        let authority = http::uri::Authority::try_from(key.address.to_string().as_str())
            .unwrap_or_else(|_| http::uri::Authority::from_static("invalid"));
        Endpoint {
            upstream: Upstream::new(key.address, key.scheme),
            authority,
            key,
            display,
            platform_ok: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
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

    /// Applies what the provider last said about the task (at each rebuild).
    pub fn observe_platform(&self, health: TaskHealth, lifecycle: Lifecycle) {
        let ok = health != TaskHealth::Unhealthy && lifecycle == Lifecycle::Running;
        self.platform_ok.store(ok, Ordering::Relaxed);
    }

    /// Whether new calls may be sent here.
    pub fn is_available(&self) -> bool {
        self.platform_ok.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Counts a call starting; the guard counts it finished when dropped.
    pub fn start_call(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: self.clone(),
        }
    }

    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// A call in flight on an endpoint; dropping it ends the call.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
}

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
