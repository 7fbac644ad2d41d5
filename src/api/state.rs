//! The API's own state: what its handlers and `/metrics` read, handed over by
//! `app` when it wires gantry together. All of it is shared with the data plane and
//! read at request time; nothing here is written by the API.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::ApiCredentials;
use crate::provider::ProviderStatus;
use crate::table::SharedTable;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::CallStats;
use crate::watcher::Progress;

/// What the API reads: the current routing table and the live state beside it.
#[derive(Clone)]
pub struct Shared {
    pub table: SharedTable,
    pub providers: Vec<Arc<ProviderStatus>>,
    pub entrypoints: Vec<(String, SocketAddr)>,
    /// Calls per entrypoint, in the order of `entrypoints`.
    pub entrypoint_stats: Vec<Arc<CallStats>>,
    /// Each entrypoint's certificates and protections, in the same order.
    pub entrypoint_edges: Vec<Edge>,
    pub progress: watch::Receiver<Progress>,
    pub access_log: Option<Arc<AccessLog>>,
    /// Credentials the API requires, if any.
    pub auth: Option<ApiCredentials>,
}

/// What an entrypoint shows of its edge: the certificates it serves (if it
/// terminates TLS) and the connections it closed to protect itself.
#[derive(Clone)]
pub struct Edge {
    pub tls: Option<Arc<crate::tls::CertStore>>,
    pub guards: Arc<crate::proxy::Guards>,
}
