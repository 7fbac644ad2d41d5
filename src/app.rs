//! Wires the parts together: providers → watcher → routing table ← entrypoints, and
//! the API beside them; runs until a signal, then shuts down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{Edge, Shared};
use crate::config::EcsProviderConfig;
use crate::config::Loaded;
use crate::dynamic::DynamicConfig;
use crate::labels::LabelOptions;
use crate::provider::ecs::{self, sdk::SdkApi, EcsProvider, Refresher};
use crate::provider::file::{self, FileProvider};
use crate::provider::{ProviderStatus, ProviderUpdate};
use crate::proxy;
use crate::table::{RoutingTable, SharedTable};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::CallStats;
use crate::watcher::{self, Input, Progress, Watcher};

/// Why gantry could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("entrypoint {name}: cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("access_log: cannot open {target:?}: {source}")]
    AccessLog {
        target: crate::telemetry::access_log::Target,
        source: std::io::Error,
    },
    #[error("api: cannot listen on {addr}: {source}")]
    ApiBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Certificate or key files that do not load (the message names them).
    #[error("{0}")]
    Tls(String),
}

/// A running gantry.
pub struct Gantry {
    shared: Shared,
    api: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    serving: JoinSet<()>,
    background: JoinSet<()>,
}

fn label_options(loaded: &Loaded) -> LabelOptions {
    LabelOptions {
        prefix: loaded.config.providers.label_prefix.clone(),
        exposed_by_default: loaded.config.providers.exposed_by_default,
        constraints: loaded.constraints.clone(),
    }
}

fn ecs_settings(ecs: &EcsProviderConfig) -> ecs::Settings {
    ecs::Settings {
        clusters: ecs.clusters.clone(),
        auto_discover: ecs.auto_discover_clusters,
        healthy_only: ecs.healthy_tasks_only,
        concurrency: 4,
    }
}

fn ecs_timing(ecs: &EcsProviderConfig) -> ecs::Timing {
    ecs::Timing {
        interval: Duration::from_secs(ecs.refresh_seconds),
        max_backoff: Duration::from_secs(ecs.max_backoff_seconds),
    }
}

/// An entrypoint's HTTP/2 limits, from its config.
fn http2_limits(ep: &crate::config::EntrypointConfig) -> crate::http2::wire::Limits {
    use crate::http2::wire::{Budget, Limits};
    let h2 = &ep.http2;
    Limits {
        max_concurrent_streams: h2.max_concurrent_streams,
        stream_window: h2.stream_window,
        connection_window: h2.connection_window,
        max_frame_size: h2.max_frame_size,
        max_header_list_size: ep.max_header_bytes,
        resets: Budget {
            per_second: h2.max_resets_per_second,
            burst: h2.max_reset_burst,
        },
        control: Budget {
            per_second: h2.max_control_frames_per_second,
            burst: h2.max_control_frame_burst,
        },
    }
}

/// Loads every file the config names beyond the tasks file (certificates, keys,
/// CAs), as a start would: for `gantry check`.
pub fn check_files(loaded: &Loaded) -> Result<(), String> {
    for (name, ep) in &loaded.config.entrypoints {
        if let Some(cfg) = &ep.tls {
            crate::tls::ServerTls::new(name, cfg, |p| loaded.resolve(p))?;
        }
    }
    upstream_tls(loaded).map(drop)
}

/// What servers of scheme `https` are verified against.
fn upstream_tls(loaded: &Loaded) -> Result<Arc<crate::tls::UpstreamTls>, String> {
    let cfg = &loaded.config.upstream.tls;
    if cfg.ca_files.is_empty() && cfg.system_roots {
        return Ok(crate::tls::UpstreamTls::system());
    }
    let files: Vec<_> = cfg.ca_files.iter().map(|p| loaded.resolve(p)).collect();
    crate::tls::UpstreamTls::new(&files, cfg.system_roots).map(Arc::new)
}

fn entrypoint_names(loaded: &Loaded) -> Vec<(String, bool)> {
    loaded
        .config
        .entrypoints
        .iter()
        .map(|(name, ep)| (name.clone(), ep.tls.is_some()))
        .collect()
}

/// The providers' feeds into the watcher, and their status for the API.
#[derive(Default)]
struct Feeds {
    inputs: Vec<Input>,
    providers: Vec<Arc<ProviderStatus>>,
}

impl Feeds {
    /// Registers a provider; returns the sender it publishes on.
    fn add(&mut self, name: &str, status: Arc<ProviderStatus>) -> crate::provider::UpdateTx {
        let (tx, rx) = watch::channel::<Option<Arc<ProviderUpdate>>>(None);
        self.inputs.push(Input {
            name: name.to_string(),
            updates: rx,
        });
        self.providers.push(status);
        tx
    }
}

/// Binds every socket, starts providers, the watcher, entrypoints and the API.
pub async fn start(loaded: Loaded) -> Result<Gantry, StartError> {
    let names = entrypoint_names(&loaded);
    let zone = crate::node::zone(
        loaded.config.node.zone.as_deref(),
        std::env::var(crate::node::METADATA_ENV).ok().as_deref(),
    )
    .await;
    let upstream_tls = upstream_tls(&loaded).map_err(StartError::Tls)?;
    let table: SharedTable = Arc::new(ArcSwap::from_pointee(
        RoutingTable::empty_for(names.len(), zone.map(Arc::from), loaded.drain())
            .with_upstream_tls(upstream_tls),
    ));
    let (shutdown, shutdown_rx) = watch::channel(false);

    let mut entrypoints = Vec::new();
    let mut bound = Vec::new();
    let mut entrypoint_stats = Vec::new();
    let mut entrypoint_edges = Vec::new();
    for (index, (name, ep)) in loaded.config.entrypoints.iter().enumerate() {
        let tls = match &ep.tls {
            Some(cfg) => Some(Arc::new(
                crate::tls::ServerTls::new(name, cfg, |p| loaded.resolve(p))
                    .map_err(StartError::Tls)?,
            )),
            None => None,
        };
        let mut e = proxy::bind(name, index, ep.address)
            .await
            .map_err(|source| StartError::Bind {
                name: name.clone(),
                addr: ep.address,
                source,
            })?;
        entrypoint_edges.push(Edge {
            tls: tls.as_ref().map(|t| t.store.clone()),
            guards: e.guards.clone(),
        });
        e.settings = proxy::EntrypointSettings {
            idle_timeout: (ep.idle_timeout_seconds > 0)
                .then(|| Duration::from_secs(ep.idle_timeout_seconds)),
            header_timeout: ep.header_read_timeout(),
            max_connections: ep.max_connections,
            max_header_bytes: ep.max_header_bytes as usize,
            http2: http2_limits(ep),
            tls,
        };
        let addr = e.local_addr().map_err(|source| StartError::Bind {
            name: name.clone(),
            addr: ep.address,
            source,
        })?;
        bound.push((name.clone(), addr));
        entrypoint_stats.push(e.stats.clone());
        entrypoints.push(e);
    }
    let api_listener =
        match &loaded.config.api {
            Some(api) => Some(tokio::net::TcpListener::bind(api.address).await.map_err(
                |source| StartError::ApiBind {
                    addr: api.address,
                    source,
                },
            )?),
            None => None,
        };

    let access_log = match loaded.access_log_target() {
        Some(target) => Some(
            AccessLog::start(&target)
                .await
                .map_err(|source| StartError::AccessLog { target, source })?,
        ),
        None => None,
    };

    let mut background = JoinSet::new();
    let mut feeds = Feeds::default();
    if let Some(path) = loaded.file_provider_path() {
        let watch_file = loaded
            .config
            .providers
            .file
            .as_ref()
            .is_some_and(|f| f.watch);
        let provider = FileProvider::new(path, watch_file);
        let tx = feeds.add(file::NAME, provider.status());
        background.spawn(provider.run(tx));
    }
    if let Some(ecs) = &loaded.config.providers.ecs {
        let api = SdkApi::from_config(ecs).await;
        let provider = EcsProvider::new(api, ecs_settings(ecs), ecs_timing(ecs));
        let tx = feeds.add(ecs::NAME, provider.status());
        background.spawn(provider.run(tx));
    }
    let Feeds { inputs, providers } = feeds;

    let (progress, progress_rx) = watch::channel(Progress::default());
    let watcher = Watcher {
        inputs,
        labels: label_options(&loaded),
        entrypoints: names,
        throttle: loaded.throttle(),
        table: table.clone(),
        progress,
    };
    background.spawn(watcher.run());

    background.spawn(crate::health::reachability::run(table.clone()));
    background.spawn(crate::health::outlier::run(table.clone()));
    background.spawn(crate::health::drain::run(table.clone()));
    background.spawn(crate::health::checks::run(
        table.clone(),
        progress_rx.clone(),
    ));
    background.spawn(sample_stats(table.clone(), entrypoint_stats.clone()));

    let shared = Shared {
        table: table.clone(),
        providers,
        entrypoints: bound,
        entrypoint_stats,
        entrypoint_edges,
        progress: progress_rx,
        access_log: access_log.clone(),
        auth: loaded.api_auth.clone(),
    };
    let mut serving = JoinSet::new();
    for e in entrypoints {
        serving.spawn(e.serve(
            table.clone(),
            shutdown_rx.clone(),
            loaded.drain(),
            access_log.clone(),
        ));
    }
    let mut api = None;
    if let Some(listener) = api_listener {
        api = listener.local_addr().ok();
        serving.spawn(crate::api::serve(
            listener,
            shared.clone(),
            shutdown_rx.clone(),
        ));
    }
    Ok(Gantry {
        shared,
        api,
        shutdown,
        serving,
        background,
    })
}

/// Takes the once-a-second samples behind the dashboard's recent rates.
async fn sample_stats(table: SharedTable, entrypoints: Vec<Arc<CallStats>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = std::time::Instant::now();
        for s in &entrypoints {
            s.sample(now);
        }
        for s in table.load().all_stats() {
            s.sample(now);
        }
    }
}

impl Gantry {
    /// The address an entrypoint listens on (its port resolved if it was 0).
    pub fn entrypoint(&self, name: &str) -> Option<SocketAddr> {
        self.shared
            .entrypoints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api
    }

    /// The current routing table.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.shared.table.load_full()
    }

    /// The configuration the current table was built from.
    pub fn config(&self) -> Arc<DynamicConfig> {
        self.shared.table.load().config().clone()
    }

    /// How many tables have been published so far.
    pub fn generation(&self) -> u64 {
        self.shared.progress.borrow().tables
    }

    /// What the watcher has done so far.
    pub fn progress(&self) -> Progress {
        *self.shared.progress.borrow()
    }

    /// Waits until at least `n` tables have been published.
    pub async fn wait_generation(&self, n: u64) {
        self.wait_progress(|p| p.tables >= n).await;
    }

    /// Waits until the watcher's progress satisfies `f`.
    pub async fn wait_progress(&self, f: impl FnMut(&Progress) -> bool) {
        let mut rx = self.shared.progress.clone();
        let _ = rx.wait_for(f).await;
    }

    pub fn providers(&self) -> &[Arc<ProviderStatus>] {
        &self.shared.providers
    }

    /// Stops accepting, lets calls in flight finish (up to `drain`), stops providers.
    pub async fn shutdown(mut self, drain: Duration) {
        let _ = self.shutdown.send(true);
        let finished = tokio::time::timeout(drain + Duration::from_secs(1), async {
            while self.serving.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            self.serving.abort_all();
        }
        self.background.abort_all();
    }
}

/// Runs gantry until SIGINT or SIGTERM.
pub async fn run(loaded: Loaded) -> Result<(), StartError> {
    let drain = loaded.drain();
    let gantry = start(loaded).await?;
    for (name, addr) in &gantry.shared.entrypoints {
        tracing::info!(entrypoint = %name, %addr, "listening");
    }
    if let Some(addr) = gantry.api {
        tracing::info!(%addr, "api and dashboard at http://{addr}/");
        if !addr.ip().is_loopback() && gantry.shared.auth.is_none() {
            tracing::warn!(%addr, "the API listens beyond loopback without [api.auth]: anyone who can reach it can read routes and servers");
        }
    }
    wait_for_signal().await;
    tracing::info!("shutting down: draining calls in flight");
    gantry.shutdown(drain).await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The configuration every provider describes right now, read once (for `gantry
/// check`). Provider failures appear as errors in it.
pub async fn check(loaded: &Loaded) -> DynamicConfig {
    let mut updates: Vec<(&str, Option<ProviderUpdate>)> = Vec::new();
    if let Some(path) = loaded.file_provider_path() {
        let update = match file::read(&path) {
            Ok(tasks) => ProviderUpdate {
                tasks: Arc::new(tasks),
                error: None,
            },
            Err(e) => ProviderUpdate {
                tasks: Arc::new(Vec::new()),
                error: Some(e.to_string()),
            },
        };
        updates.push((file::NAME, Some(update)));
    }
    if let Some(config) = &loaded.config.providers.ecs {
        let api = SdkApi::from_config(config).await;
        let update = match Refresher::new(ecs_settings(config)).refresh(&api).await {
            Ok(outcome) => ProviderUpdate {
                tasks: Arc::new(outcome.tasks),
                error: None,
            },
            Err(e) => ProviderUpdate {
                tasks: Arc::new(Vec::new()),
                error: Some(e.to_string()),
            },
        };
        updates.push((ecs::NAME, Some(update)));
    }
    let named: Vec<(&str, Option<&ProviderUpdate>)> =
        updates.iter().map(|(n, u)| (*n, u.as_ref())).collect();
    watcher::assemble_named(&named, &label_options(loaded), &entrypoint_names(loaded))
}
