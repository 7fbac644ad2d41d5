//! Static configuration: `config.toml`.
//!
//! Read once at start-up. Every key is known: an unknown key or a bad value is an
//! error that names the key and its line (toml's spans), and values are turned into
//! typed ones (`SocketAddr`, `Duration`, compiled constraints) here, at the edge.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::rules::constraints::Constraint;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole static configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub entrypoints: BTreeMap<String, EntrypointConfig>,
    #[serde(default)]
    pub api: Option<ApiConfig>,
    #[serde(default)]
    pub providers: ProvidersConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// JSON access logs; off unless the section is present.
    #[serde(default)]
    pub access_log: Option<AccessLogConfig>,
    /// This gantry instance: its zone, how long it drains.
    #[serde(default)]
    pub node: NodeConfig,
    /// The async runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// How gantry connects to servers.
    #[serde(default)]
    pub upstream: UpstreamConfig,
}

/// The async runtime that serves every connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads; default: the number of cores gantry may use.
    #[serde(default)]
    pub worker_threads: Option<usize>,
}

/// This gantry instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Its availability zone, for zone affinity. When absent, read from the ECS task
    /// metadata endpoint (v4) if gantry runs on ECS.
    #[serde(default)]
    pub zone: Option<String>,
    /// How long calls in flight may run on after SIGTERM, and on a server that left
    /// the routing table, before they are cut.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            zone: None,
            drain_seconds: default_drain_seconds(),
        }
    }
}

fn default_drain_seconds() -> u64 {
    30
}

fn default_idle_timeout_seconds() -> u64 {
    180
}

/// Where access log lines go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// A file to append to (relative to the config file); standard output if absent.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// A listening address accepting HTTP/1.1 and HTTP/2 (h2c, or h2 over TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrypointConfig {
    pub address: SocketAddr,
    /// A client connection with no call for this long is closed (GOAWAY); 0: never.
    #[serde(default = "default_idle_timeout_seconds")]
    pub idle_timeout_seconds: u64,
    /// How long a client may take to finish a TLS handshake, its first bytes, an
    /// HTTP/1.1 request head or an HTTP/2 header block (slowloris).
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// Client connections open at once; more are closed as they are accepted.
    /// 0: no limit.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest request head: an HTTP/1.1 head in bytes, or an HTTP/2 header list
    /// (SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113 says).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u32,
    #[serde(default)]
    pub http2: Http2Config,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl EntrypointConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds)
    }
}

fn default_header_read_timeout_seconds() -> u64 {
    10
}

fn default_max_connections() -> usize {
    25_000
}

fn default_max_header_bytes() -> u32 {
    64 << 10
}

/// HTTP/2 limits of an entrypoint's client connections. The flood budgets are
/// leaky buckets: `burst` events at once, refilled at `per_second`; a connection
/// that goes past one gets GOAWAY ENHANCE_YOUR_CALM and is closed.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE).
    #[serde(default = "default_stream_window")]
    pub stream_window: u32,
    /// The connection's receive window: at most this much is buffered per client.
    #[serde(default = "default_connection_window")]
    pub connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE (16384 to 16777215).
    #[serde(default = "default_max_frame_size")]
    pub max_frame_size: u32,
    /// Streams the client resets, or makes gantry reset by breaking a rule, beyond
    /// the calls it completes (rapid reset, CVE-2023-44487).
    #[serde(default = "default_reset_rate")]
    pub max_resets_per_second: u32,
    #[serde(default = "default_reset_burst")]
    pub max_reset_burst: u32,
    /// SETTINGS, PING, PRIORITY, empty DATA and unknown frames (floods of frames
    /// that cost work and carry no call).
    #[serde(default = "default_control_rate")]
    pub max_control_frames_per_second: u32,
    #[serde(default = "default_control_burst")]
    pub max_control_frame_burst: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_concurrent_streams: default_max_concurrent_streams(),
            stream_window: default_stream_window(),
            connection_window: default_connection_window(),
            max_frame_size: default_max_frame_size(),
            max_resets_per_second: default_reset_rate(),
            max_reset_burst: default_reset_burst(),
            max_control_frames_per_second: default_control_rate(),
            max_control_frame_burst: default_control_burst(),
        }
    }
}

fn default_max_concurrent_streams() -> u32 {
    250
}
fn default_stream_window() -> u32 {
    1 << 20
}
fn default_connection_window() -> u32 {
    8 << 20
}
fn default_max_frame_size() -> u32 {
    16_384
}
fn default_reset_rate() -> u32 {
    100
}
fn default_reset_burst() -> u32 {
    400
}
fn default_control_rate() -> u32 {
    100
}
fn default_control_burst() -> u32 {
    400
}

/// TLS termination (rustls): TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chains with their keys. The client's SNI picks among them by the
    /// names in their subjectAltName; the first is served to a client naming none
    /// of them (or none at all).
    pub certificates: Vec<CertificateConfig>,
    /// The oldest TLS version accepted: "1.2" (default) or "1.3".
    #[serde(default = "default_min_tls_version")]
    pub min_version: String,
    /// How often the files are read again; changed ones are served from then on.
    #[serde(default = "default_reload_seconds")]
    pub reload_seconds: u64,
}

fn default_min_tls_version() -> String {
    "1.2".into()
}

fn default_reload_seconds() -> u64 {
    5
}

/// A PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1
/// or SEC1), relative to the config file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How gantry talks TLS to servers of scheme `https`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(default)]
    pub tls: UpstreamTlsConfig,
}

/// Servers are verified against the system's roots and any `ca_files`; a service
/// can opt out with the label `S.tls.insecure_skip_verify=true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM files of extra CA certificates (a private CA), relative to the config file.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    /// Trust the operating system's roots as well.
    #[serde(default = "default_true")]
    pub system_roots: bool,
}

impl Default for UpstreamTlsConfig {
    fn default() -> Self {
        UpstreamTlsConfig {
            ca_files: Vec::new(),
            system_roots: true,
        }
    }
}

/// The dashboard, JSON API, `/metrics` and `/ping`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_api_address")]
    pub address: SocketAddr,
    /// Credentials required for everything but `/ping`.
    #[serde(default)]
    pub auth: Option<ApiAuthConfig>,
}

/// API credentials: a bearer token, basic auth, or both (either is accepted).
/// Secrets can come from the environment (ECS injects secrets as variables).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiAuthConfig {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

impl std::fmt::Debug for ApiAuthConfig {
    // Never print a secret (logs, `check`, panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuthConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .finish()
    }
}

/// Resolved API credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCredentials {
    pub token: Option<String>,
    /// User and password for basic auth.
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for ApiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCredentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("user", &self.basic.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl ApiAuthConfig {
    /// Resolves secrets from the environment; errors name the key at fault.
    pub fn resolve(&self) -> Result<ApiCredentials, String> {
        let from_env = |key: &str, var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!("api.auth.{key}: environment variable {var:?} is not set or empty")
                })
        };
        let token = match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => return Err("api.auth: set token or token_env, not both".into()),
            (Some(t), None) if t.is_empty() => return Err("api.auth.token: empty".into()),
            (Some(t), None) => Some(t.clone()),
            (None, Some(var)) => Some(from_env("token_env", var)?),
            (None, None) => None,
        };
        let password = match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => {
                return Err("api.auth: set password or password_env, not both".into())
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(var)) => Some(from_env("password_env", var)?),
            (None, None) => None,
        };
        let basic = match (&self.user, password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() && !u.contains(':') => {
                Some((u.clone(), p))
            }
            (Some(_), Some(_)) => {
                return Err(
                    "api.auth: user must be non-empty without ':' and password non-empty".into(),
                )
            }
            (Some(_), None) => return Err("api.auth.user: needs password or password_env".into()),
            (None, Some(_)) => return Err("api.auth.password: needs user".into()),
            (None, None) => None,
        };
        if token.is_none() && basic.is_none() {
            return Err("api.auth: set token (or token_env), or user and password".into());
        }
        Ok(ApiCredentials { token, basic })
    }
}

fn default_api_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Settings shared by every provider, and the providers themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    #[serde(default = "default_prefix")]
    pub label_prefix: String,
    #[serde(default)]
    pub exposed_by_default: bool,
    /// Traefik constraint expression over task labels, compiled at load.
    #[serde(default)]
    pub constraints: Option<String>,
    /// Minimum time between two routing-table rebuilds (milliseconds).
    #[serde(default = "default_throttle_ms")]
    pub throttle_ms: u64,
    #[serde(default)]
    pub file: Option<FileProviderConfig>,
    #[serde(default)]
    pub ecs: Option<EcsProviderConfig>,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            label_prefix: default_prefix(),
            exposed_by_default: false,
            constraints: None,
            throttle_ms: default_throttle_ms(),
            file: None,
            ecs: None,
        }
    }
}

fn default_prefix() -> String {
    "traefik".to_string()
}

fn default_throttle_ms() -> u64 {
    100
}

/// Tasks from a local TOML file, shaped like ECS tasks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProviderConfig {
    /// Relative paths are resolved against the config file's directory.
    pub path: PathBuf,
    #[serde(default = "default_true")]
    pub watch: bool,
}

fn default_true() -> bool {
    true
}

/// Tasks discovered by polling ECS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsProviderConfig {
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub auto_discover_clusters: bool,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_refresh_seconds")]
    pub refresh_seconds: u64,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub healthy_tasks_only: bool,
    /// The longest wait between refreshes after failures.
    #[serde(default = "default_max_backoff_seconds")]
    pub max_backoff_seconds: u64,
    /// Static credentials, for emulators and tests. In AWS, leave this out and let the
    /// SDK's default chain (task role, instance profile, environment) provide them.
    #[serde(default)]
    pub credentials: Option<StaticCredentials>,
}

/// An access key pair given in the configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    // Never print the secret (logs, `check`, panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

fn default_refresh_seconds() -> u64 {
    15
}

fn default_max_backoff_seconds() -> u64 {
    120
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `gantry=debug`); `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_string()
}

/// A configuration that has been read and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Directory of the config file; relative paths in it are resolved against this.
    pub base_dir: PathBuf,
    pub constraints: Option<Constraint>,
    /// API credentials, when `[api.auth]` asks for them.
    pub api_auth: Option<ApiCredentials>,
}

impl Loaded {
    /// The access log target, when logging is on.
    pub fn access_log_target(&self) -> Option<crate::telemetry::access_log::Target> {
        use crate::telemetry::access_log::Target;
        let log = self.config.access_log.as_ref()?;
        Some(match &log.path {
            None => Target::Stdout,
            Some(p) if p.is_absolute() => Target::File(p.clone()),
            Some(p) => Target::File(self.base_dir.join(p)),
        })
    }

    /// The file provider's tasks file, resolved.
    pub fn file_provider_path(&self) -> Option<PathBuf> {
        let file = self.config.providers.file.as_ref()?;
        Some(if file.path.is_absolute() {
            file.path.clone()
        } else {
            self.base_dir.join(&file.path)
        })
    }

    pub fn throttle(&self) -> Duration {
        Duration::from_millis(self.config.providers.throttle_ms)
    }

    /// A path from the config file, resolved against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// How long calls in flight may finish after SIGTERM or on a removed server.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.config.node.drain_seconds)
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, base_dir).map_err(|message| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses and checks config text. Errors are messages naming the key and line.
pub fn parse(text: &str, base_dir: PathBuf) -> Result<Loaded, String> {
    let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
    let constraints = match &config.providers.constraints {
        Some(expr) => Some(
            Constraint::parse(expr)
                .map_err(|e| format!("providers.constraints: {e} in {expr:?}"))?,
        ),
        None => None,
    };
    validate(&config)?;
    let api_auth = match config.api.as_ref().and_then(|a| a.auth.as_ref()) {
        Some(auth) => Some(auth.resolve()?),
        None => None,
    };
    Ok(Loaded {
        config,
        base_dir,
        constraints,
        api_auth,
    })
}

/// An entrypoint's limits, in ranges that make sense.
fn validate_entrypoint(name: &str, ep: &EntrypointConfig) -> Result<(), String> {
    let at = |key: &str| format!("entrypoints.{name}.{key}");
    if !(1..=3600).contains(&ep.header_read_timeout_seconds) {
        return Err(format!(
            "{}: {} is not between 1 and 3600 seconds",
            at("header_read_timeout_seconds"),
            ep.header_read_timeout_seconds
        ));
    }
    if ep.max_header_bytes < 1024 || ep.max_header_bytes > 16 << 20 {
        return Err(format!(
            "{}: {} is not between 1024 and 16777216",
            at("max_header_bytes"),
            ep.max_header_bytes
        ));
    }
    let h2 = &ep.http2;
    let max_window = (1u32 << 31) - 1;
    for (key, value, min, max) in [
        (
            "http2.max_concurrent_streams",
            h2.max_concurrent_streams,
            1,
            u32::MAX,
        ),
        ("http2.stream_window", h2.stream_window, 65_535, max_window),
        (
            "http2.connection_window",
            h2.connection_window,
            65_535,
            max_window,
        ),
        (
            "http2.max_frame_size",
            h2.max_frame_size,
            16_384,
            16_777_215,
        ),
        ("http2.max_reset_burst", h2.max_reset_burst, 1, u32::MAX),
        (
            "http2.max_control_frame_burst",
            h2.max_control_frame_burst,
            1,
            u32::MAX,
        ),
    ] {
        if !(min..=max).contains(&value) {
            return Err(if max == u32::MAX {
                format!("{}: must be at least {min}", at(key))
            } else {
                format!("{}: {value} is not between {min} and {max}", at(key))
            });
        }
    }
    if let Some(tls) = &ep.tls {
        if tls.certificates.is_empty() {
            return Err(format!(
                "{}: list at least one {{ cert = \"…\", key = \"…\" }}",
                at("tls.certificates")
            ));
        }
        if tls.min_version != "1.2" && tls.min_version != "1.3" {
            return Err(format!(
                "{}: {:?} is not \"1.2\" or \"1.3\"",
                at("tls.min_version"),
                tls.min_version
            ));
        }
        if !(1..=86_400).contains(&tls.reload_seconds) {
            return Err(format!(
                "{}: {} is not between 1 and 86400 seconds",
                at("tls.reload_seconds"),
                tls.reload_seconds
            ));
        }
    }
    Ok(())
}

/// Checks that toml cannot express as types.
fn validate(config: &Config) -> Result<(), String> {
    if let Some(n) = config.runtime.worker_threads {
        if n == 0 || n > 1024 {
            return Err(format!(
                "runtime.worker_threads: {n} is not a number of threads (1 to 1024)"
            ));
        }
    }
    if config.node.drain_seconds > 3600 {
        return Err(format!(
            "node.drain_seconds: {} is more than an hour (3600)",
            config.node.drain_seconds
        ));
    }
    if let Some(zone) = &config.node.zone {
        if zone.trim().is_empty() || zone.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "node.zone: {zone:?} is not a zone name (like us-east-1a)"
            ));
        }
    }
    if config.entrypoints.is_empty() {
        return Err("no [entrypoints.<name>] defined: gantry needs at least one".into());
    }
    let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
    for (name, ep) in &config.entrypoints {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "entrypoints.{name:?}: names may use only letters, digits, '-' and '_'"
            ));
        }
        // Port 0 asks the OS for a free port: never a clash.
        let clash = if ep.address.port() == 0 {
            None
        } else {
            seen.insert(ep.address, name)
        };
        if let Some(other) = clash {
            return Err(format!(
                "entrypoints.{name}.address: {} is already used by entrypoints.{other}",
                ep.address
            ));
        }
        validate_entrypoint(name, ep)?;
    }
    if let Some(api) = &config.api {
        if let Some(name) = seen.get(&api.address).filter(|_| api.address.port() != 0) {
            return Err(format!(
                "api.address: {} is already used by entrypoints.{name}",
                api.address
            ));
        }
    }
    let p = &config.providers;
    if p.label_prefix.is_empty() || p.label_prefix.starts_with('.') || p.label_prefix.ends_with('.')
    {
        return Err(format!(
            "providers.label_prefix: {:?} must be a non-empty label prefix without leading or trailing '.'",
            p.label_prefix
        ));
    }
    if let Some(file) = &p.file {
        if file.path.as_os_str().is_empty() {
            return Err("providers.file.path: must not be empty".into());
        }
    }
    if let Some(ecs) = &p.ecs {
        if ecs.clusters.is_empty() && !ecs.auto_discover_clusters {
            return Err(
                "providers.ecs: set clusters = [\"name\", …] or auto_discover_clusters = true"
                    .into(),
            );
        }
        if ecs.refresh_seconds == 0 {
            return Err("providers.ecs.refresh_seconds: must be at least 1".into());
        }
        if ecs.max_backoff_seconds < ecs.refresh_seconds {
            return Err(format!(
                "providers.ecs.max_backoff_seconds: {} is shorter than refresh_seconds ({})",
                ecs.max_backoff_seconds, ecs.refresh_seconds
            ));
        }
        if let Some(url) = &ecs.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "providers.ecs.endpoint_url: {url:?} must start with http:// or https://"
                ));
            }
        }
    }
    if p.file.is_none() && p.ecs.is_none() {
        return Err("no provider configured: add [providers.file] or [providers.ecs]".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Loaded {
        match parse(text, PathBuf::from("/etc/gantry")) {
            Ok(l) => l,
            Err(e) => panic!("config should parse: {e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match parse(text, PathBuf::from(".")) {
            Ok(_) => panic!("config should be rejected:\n{text}"),
            Err(e) => e,
        }
    }

    const MINIMAL: &str = r#"
[entrypoints.web]
address = "127.0.0.1:8000"
[providers.file]
path = "tasks.toml"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let l = parse_ok(MINIMAL);
        assert_eq!(l.config.providers.label_prefix, "traefik");
        assert!(!l.config.providers.exposed_by_default);
        assert!(l.config.api.is_none());
        assert_eq!(
            l.file_provider_path(),
            Some(PathBuf::from("/etc/gantry/tasks.toml"))
        );
        let file = l.config.providers.file.as_ref().map(|f| f.watch);
        assert_eq!(file, Some(true));
    }

    #[test]
    fn full_config_parses() {
        let l = parse_ok(
            r#"
[entrypoints.web]
address = "127.0.0.1:8000"
[entrypoints.grpc]
address = "0.0.0.0:9000"
[api]
address = "127.0.0.1:8081"
[providers]
label_prefix = "gantry"
exposed_by_default = true
constraints = "Label(`team`, `payments`)"
[providers.file]
path = "/abs/tasks.toml"
watch = false
[providers.ecs]
clusters = ["default", "prod"]
region = "eu-west-1"
refresh_seconds = 30
endpoint_url = "http://127.0.0.1:5555"
healthy_tasks_only = true
[log]
level = "debug"
[runtime]
worker_threads = 1
[node]
zone = "eu-west-1b"
drain_seconds = 5
"#,
        );
        assert_eq!(l.config.entrypoints.len(), 2);
        assert_eq!(l.config.runtime.worker_threads, Some(1));
        assert_eq!(l.config.node.zone.as_deref(), Some("eu-west-1b"));
        assert_eq!(l.drain(), Duration::from_secs(5));
        assert_eq!(l.config.entrypoints["web"].idle_timeout_seconds, 180);
        assert_eq!(
            l.file_provider_path(),
            Some(PathBuf::from("/abs/tasks.toml"))
        );
        let ecs = l.config.providers.ecs.as_ref().map(|e| e.refresh_seconds);
        assert_eq!(ecs, Some(30));
        assert!(l.constraints.is_some());
    }

    #[test]
    fn limits_and_tls_parse_with_defaults_where_silent() {
        let l = parse_ok(
            "[entrypoints.web]\naddress = \"127.0.0.1:1\"\n\
             [entrypoints.edge]\naddress = \"127.0.0.1:2\"\nmax_connections = 3\n\
             header_read_timeout_seconds = 2\nmax_header_bytes = 8192\n\
             [entrypoints.edge.http2]\nmax_concurrent_streams = 7\nmax_reset_burst = 9\n\
             [entrypoints.edge.tls]\ncertificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n\
             min_version = \"1.3\"\n\
             [upstream.tls]\nca_files = [\"ca.pem\"]\nsystem_roots = false\n\
             [providers.file]\npath = \"t\"\n",
        );
        let web = &l.config.entrypoints["web"];
        assert_eq!(web.max_connections, 25_000);
        assert_eq!(web.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(web.http2.max_concurrent_streams, 250);
        assert!(web.tls.is_none());
        let edge = &l.config.entrypoints["edge"];
        assert_eq!(edge.max_connections, 3);
        assert_eq!(edge.max_header_bytes, 8192);
        assert_eq!(edge.http2.max_concurrent_streams, 7);
        assert_eq!(edge.http2.max_reset_burst, 9);
        assert_eq!(edge.http2.max_resets_per_second, 100);
        let tls = edge.tls.as_ref().expect("tls");
        assert_eq!(tls.min_version, "1.3");
        assert_eq!(tls.reload_seconds, 5);
        assert_eq!(
            l.resolve(&tls.certificates[0].cert),
            PathBuf::from("/etc/gantry/a.pem")
        );
        assert_eq!(l.config.upstream.tls.ca_files, [PathBuf::from("ca.pem")]);
        assert!(!l.config.upstream.tls.system_roots);
    }

    #[test]
    fn ecs_credentials_are_never_printed() {
        let l = parse_ok(
            "[entrypoints.web]\naddress = \"127.0.0.1:1\"\n[providers.ecs]\nclusters = [\"a\"]\ncredentials = { access_key_id = \"AKIDEXAMPLE\", secret_access_key = \"very-secret\" }\n",
        );
        let shown = format!("{:?}", l.config);
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("very-secret"), "{shown}");
        let ecs = l
            .config
            .providers
            .ecs
            .as_ref()
            .map(|e| e.max_backoff_seconds);
        assert_eq!(ecs, Some(120));
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[entrypoints.web]\naddress = \"127.0.0.1:8000\"\nadress = \"x\"\n[providers.file]\npath = \"t\"\n",
                &["line 3", "adress"],
            ),
            (
                "[entrypoints.web]\naddress = \"localhost:80x\"\n[providers.file]\npath = \"t\"\n",
                &["line 2", "address"],
            ),
            (
                "[entrypoints.web]\naddress = \"127.0.0.1:1\"\n[providers]\nexposed_by_default = \"yes\"\n[providers.file]\npath = \"t\"\n",
                &["line 4"],
            ),
            (
                "[entrypoints.web]\naddress = \"127.0.0.1:1\"\n[providers.ecs]\nclusters = [\"a\"]\nrefresh_second = 5\n",
                &["line 5", "refresh_second"],
            ),
            ("[providers.file]\npath = \"t\"\n", &["no [entrypoints"]),
            ("[entrypoints.web]\naddress = \"127.0.0.1:1\"\n", &["no provider"]),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.b]\naddress = \"127.0.0.1:1\"\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.b.address", "already used"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.ecs]\nrefresh_seconds = 5\n",
                &["providers.ecs", "clusters"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.ecs]\nclusters=[\"x\"]\nendpoint_url = \"127.0.0.1:5555\"\n",
                &["endpoint_url"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.ecs]\nclusters=[\"x\"]\nrefresh_seconds = 30\nmax_backoff_seconds = 10\n",
                &["max_backoff_seconds", "shorter"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.ecs]\nclusters=[\"x\"]\ncredentials = { access_key_id = \"a\" }\n",
                &["line 5", "secret_access_key"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.file]\npath = \"t\"\n[runtime]\nworker_threads = 0\n",
                &["runtime.worker_threads", "1 to 1024"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.file]\npath = \"t\"\n[node]\ndrain_seconds = 7200\n",
                &["node.drain_seconds"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[providers.file]\npath = \"t\"\n[node]\nzone = \"us east\"\n",
                &["node.zone"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\nidle_timeout = 5\n[providers.file]\npath = \"t\"\n",
                &["line 3", "idle_timeout"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\nheader_read_timeout_seconds = 0\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.header_read_timeout_seconds", "between 1 and 3600"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\nmax_header_bytes = 10\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.max_header_bytes"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.http2]\nmax_concurrent_streams = 0\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.http2.max_concurrent_streams"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.http2]\nstream_window = 100\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.http2.stream_window", "65535"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.http2]\nmax_frame_size = 1000\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.http2.max_frame_size"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.http2]\nmax_reset_burst = 0\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.http2.max_reset_burst"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.http2]\nmax_streams = 5\n[providers.file]\npath = \"t\"\n",
                &["line 4", "max_streams"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.tls]\ncertificates = []\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.tls.certificates", "at least one"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.tls]\ncertificates = [{ cert = \"c\", key = \"k\" }]\nmin_version = \"1.1\"\n[providers.file]\npath = \"t\"\n",
                &["entrypoints.a.tls.min_version", "1.1"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[entrypoints.a.tls]\ncertificates = [{ cert = \"c\" }]\n[providers.file]\npath = \"t\"\n",
                &["line 4", "key"],
            ),
            (
                "[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[upstream.tls]\nca_file = \"x\"\n[providers.file]\npath = \"t\"\n",
                &["line 4", "ca_file"],
            ),
        ];
        for (text, needles) in cases {
            let err = parse_err(text);
            for needle in *needles {
                assert!(
                    err.contains(needle),
                    "error {err:?} should mention {needle:?}"
                );
            }
        }
    }

    #[test]
    fn api_credentials_are_checked_and_never_printed() {
        let base = "[entrypoints.web]\naddress = \"127.0.0.1:1\"\n[providers.file]\npath = \"t.toml\"\n[api]\n[api.auth]\n";
        let l = parse_ok(&format!(
            "{base}token = \"t0ken\"\nuser = \"oncall\"\npassword = \"pw\"\n"
        ));
        let creds = l.api_auth.clone().expect("credentials");
        assert_eq!(creds.token.as_deref(), Some("t0ken"));
        assert_eq!(creds.basic, Some(("oncall".into(), "pw".into())));
        let shown = format!("{:?} {:?}", l.config, creds);
        assert!(
            !shown.contains("t0ken") && !shown.contains("\"pw\""),
            "{shown}"
        );
        for (body, needle) in [
            ("", "api.auth: set token"),
            ("token = \"\"\n", "api.auth.token: empty"),
            ("token = \"a\"\ntoken_env = \"B\"\n", "not both"),
            (
                "token_env = \"GANTRY_TEST_SURELY_UNSET_VAR\"\n",
                "api.auth.token_env",
            ),
            ("user = \"oncall\"\n", "api.auth.user: needs password"),
            ("password = \"pw\"\n", "api.auth.password: needs user"),
            ("user = \"a:b\"\npassword = \"pw\"\n", "without ':'"),
            ("tokn = \"x\"\n", "tokn"),
        ] {
            let err = parse_err(&format!("{base}{body}"));
            assert!(err.contains(needle), "{body:?}: {err}");
        }
    }
}
