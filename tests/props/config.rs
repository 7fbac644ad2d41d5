//! config.toml: any text, every key given odd values, and edits of valid files get a
//! result, never a panic, and an error says where (a line or a key); generated valid
//! configs are accepted and read back as written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::select;
use serde::Serialize;

use super::config;
use super::edits::{mutate, says_where, toml_noise, with_value, ODD_VALUES};

#[derive(Debug, Clone, Serialize)]
struct ConfigFile {
    entrypoints: BTreeMap<String, Entrypoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<Api>,
    providers: Providers,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<Node>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<Runtime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<Log>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_log: Option<AccessLog>,
}

#[derive(Debug, Clone, Serialize)]
struct Entrypoint {
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_read_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_header_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http2: Option<Http2>,
}

#[derive(Debug, Clone, Serialize)]
struct Http2 {
    max_concurrent_streams: u32,
    stream_window: u32,
    max_frame_size: u32,
    max_reset_burst: u32,
}

/// Entrypoint limits, each within its range.
fn limits() -> impl Strategy<Value = (Option<u64>, Option<usize>, Option<u32>, Option<Http2>)> {
    let http2 = (
        1u32..=1000,
        65_535u32..=(1 << 31) - 1,
        16_384u32..=16_777_215,
        1u32..=1000,
    )
        .prop_map(|(streams, window, frame, burst)| Http2 {
            max_concurrent_streams: streams,
            stream_window: window,
            max_frame_size: frame,
            max_reset_burst: burst,
        });
    (
        proptest::option::of(1u64..=3600),
        proptest::option::of(0usize..100_000),
        proptest::option::of(1024u32..=16 << 20),
        proptest::option::of(http2),
    )
}

#[derive(Debug, Clone, Serialize)]
struct Api {
    address: String,
}

#[derive(Debug, Clone, Serialize)]
struct Providers {
    #[serde(skip_serializing_if = "Option::is_none")]
    label_prefix: Option<String>,
    exposed_by_default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    constraints: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileProvider>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ecs: Option<Ecs>,
}

#[derive(Debug, Clone, Serialize)]
struct FileProvider {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
struct Ecs {
    clusters: Vec<String>,
    auto_discover_clusters: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    refresh_seconds: u64,
    max_backoff_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Node {
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    drain_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Runtime {
    worker_threads: usize,
}

#[derive(Debug, Clone, Serialize)]
struct Log {
    level: String,
}

#[derive(Debug, Clone, Serialize)]
struct AccessLog {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

const CONSTRAINTS: &[&str] = &[
    "Label(`team`, `payments`)",
    "Label(`team`, `payments`) && !LabelRegex(`env`, `dev.*`)",
    "(Label(`a`, `1`) || Label(`b`, \"2\"))",
];

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,8}"
}

fn valid_config() -> impl Strategy<Value = ConfigFile> {
    let entrypoints = proptest::collection::btree_map(
        name(),
        (any::<bool>(), proptest::option::of(0u64..1000), limits()),
        1..4,
    );
    let api = proptest::option::of(any::<bool>());
    let file = proptest::option::of(("[a-z/._-]{0,12}[a-z]", proptest::option::of(any::<bool>())));
    let ecs = proptest::option::of((
        proptest::collection::vec(name(), 0..3),
        1u64..100,
        0u64..100,
        proptest::option::of("[a-z]{2}-[a-z]{4}-[1-3]"),
        proptest::option::of(1u16..65535),
    ));
    let providers = (
        proptest::option::of("[a-z][a-z0-9.]{0,6}[a-z0-9]"),
        any::<bool>(),
        proptest::option::of(select(CONSTRAINTS)),
        proptest::option::of(0u64..10_000),
        file,
        ecs,
    );
    let rest = (
        proptest::option::of((
            proptest::option::of("[a-z]{2}-[a-z]{4}-[1-3][a-c]"),
            0u64..=3600,
        )),
        proptest::option::of(1usize..=1024),
        proptest::option::of(select(&["info", "debug", "gantry=trace,warn"][..])),
        proptest::option::of(proptest::option::of("[a-z]{1,8}\\.log")),
    );
    (entrypoints, api, providers, rest).prop_map(|(eps, api, providers, rest)| {
        // Ports 8000, 8001, … (or 0), so that no two listeners clash.
        let entrypoints = eps
            .into_iter()
            .enumerate()
            .map(
                |(i, (name, (any_port, idle, (header, conns, bytes, http2))))| {
                    let port = if any_port { 0 } else { 8000 + i };
                    let ep = Entrypoint {
                        address: format!("127.0.0.1:{port}"),
                        idle_timeout_seconds: idle,
                        header_read_timeout_seconds: header,
                        max_connections: conns,
                        max_header_bytes: bytes,
                        http2,
                    };
                    (name, ep)
                },
            )
            .collect();
        let api = api.map(|any_port| Api {
            address: if any_port {
                "127.0.0.1:0"
            } else {
                "[::1]:9090"
            }
            .to_string(),
        });
        let (label_prefix, exposed_by_default, constraints, throttle_ms, file, ecs) = providers;
        let mut file = file.map(|(path, watch)| FileProvider { path, watch });
        let ecs = ecs.map(|(clusters, refresh, extra, region, port)| Ecs {
            auto_discover_clusters: clusters.is_empty(),
            clusters,
            region,
            refresh_seconds: refresh,
            max_backoff_seconds: refresh + extra,
            endpoint_url: port.map(|p| format!("http://127.0.0.1:{p}")),
        });
        if file.is_none() && ecs.is_none() {
            file = Some(FileProvider {
                path: "tasks.toml".to_string(),
                watch: None,
            });
        }
        let (node, threads, level, access_log) = rest;
        ConfigFile {
            entrypoints,
            api,
            providers: Providers {
                label_prefix,
                exposed_by_default,
                constraints: constraints.map(str::to_string),
                throttle_ms,
                file,
                ecs,
            },
            node: node.map(|(zone, drain_seconds)| Node {
                zone,
                drain_seconds,
            }),
            runtime: threads.map(|worker_threads| Runtime { worker_threads }),
            log: level.map(|l| Log {
                level: l.to_string(),
            }),
            access_log: access_log.map(|path| AccessLog { path }),
        }
    })
}

fn render_config(c: &ConfigFile) -> Result<String, TestCaseError> {
    toml::to_string(c).map_err(|e| TestCaseError::fail(format!("cannot write {c:?}: {e}")))
}

fn parse_config(text: &str) -> Result<gantry::config::Loaded, String> {
    gantry::config::parse(text, PathBuf::from("/etc/gantry"))
}

/// Every section and key config.toml knows, with a value each.
const FULL_CONFIG: &str = r#"[entrypoints.web]
address = "127.0.0.1:8000"
idle_timeout_seconds = 180
header_read_timeout_seconds = 10
max_connections = 100
max_header_bytes = 65536
[entrypoints.web.http2]
max_concurrent_streams = 100
stream_window = 1048576
connection_window = 8388608
max_frame_size = 16384
max_resets_per_second = 100
max_reset_burst = 400
max_control_frames_per_second = 100
max_control_frame_burst = 400
[entrypoints.secure]
address = "0.0.0.0:8443"
[entrypoints.secure.tls]
certificates = [{ cert = "a.pem", key = "a.key" }]
min_version = "1.3"
reload_seconds = 5
[api]
address = "127.0.0.1:8081"
[api.auth]
token = "t"
user = "u"
password = "p"
[access_log]
path = "access.log"
[upstream.tls]
ca_files = ["ca.pem"]
system_roots = false
[providers]
label_prefix = "gantry"
exposed_by_default = true
constraints = "Label(`team`, `payments`) && !LabelRegex(`env`, `dev.*`)"
throttle_ms = 100
[providers.file]
path = "/abs/tasks.toml"
watch = false
[providers.ecs]
clusters = ["default", "prod"]
auto_discover_clusters = false
region = "eu-west-1"
refresh_seconds = 30
max_backoff_seconds = 120
endpoint_url = "http://127.0.0.1:5555"
healthy_tasks_only = true
credentials = { access_key_id = "a", secret_access_key = "b" }
[log]
level = "debug"
[runtime]
worker_threads = 1
[node]
zone = "eu-west-1b"
drain_seconds = 5
"#;

/// The full config is valid, so that its edits below test more than error paths.
#[test]
fn the_full_config_parses() {
    if let Err(e) = parse_config(FULL_CONFIG) {
        panic!("{e}");
    }
}

/// Every key of the full config given every odd value, one at a time: an answer,
/// and an error that says where.
#[test]
fn every_config_key_takes_any_value() {
    for i in 0..FULL_CONFIG.lines().count() {
        for value in ODD_VALUES {
            let Some(text) = with_value(FULL_CONFIG, i, value) else {
                continue;
            };
            if let Err(e) = parse_config(&text) {
                assert!(
                    says_where(&e),
                    "error does not say where: {e:?}\nfor {text}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text as config.toml: an answer, and an error that says where.
    #[test]
    fn any_config_text_gets_an_answer(text in prop_oneof![toml_noise(), any::<String>()]) {
        if let Err(e) = parse_config(&text) {
            prop_assert!(says_where(&e), "error does not say where: {:?}\nfor {:?}", e, text);
        }
    }

    /// A generated valid config is accepted and reads back as written.
    #[test]
    fn a_valid_config_reads_back(c in valid_config()) {
        let text = render_config(&c)?;
        let loaded = parse_config(&text)
            .map_err(|e| TestCaseError::fail(format!("refused: {e}\n{text}")))?;
        let got = &loaded.config;
        prop_assert_eq!(got.entrypoints.len(), c.entrypoints.len());
        for (name, ep) in &c.entrypoints {
            let g = &got.entrypoints[name];
            prop_assert_eq!(g.address, ep.address.parse::<SocketAddr>().expect("generated"));
            prop_assert_eq!(g.idle_timeout_seconds, ep.idle_timeout_seconds.unwrap_or(180));
            prop_assert_eq!(g.header_read_timeout_seconds, ep.header_read_timeout_seconds.unwrap_or(10));
            prop_assert_eq!(g.max_connections, ep.max_connections.unwrap_or(25_000));
            prop_assert_eq!(g.max_header_bytes, ep.max_header_bytes.unwrap_or(64 << 10));
            if let Some(h) = &ep.http2 {
                prop_assert_eq!(g.http2.max_concurrent_streams, h.max_concurrent_streams);
                prop_assert_eq!(g.http2.stream_window, h.stream_window);
                prop_assert_eq!(g.http2.max_frame_size, h.max_frame_size);
                prop_assert_eq!(g.http2.max_reset_burst, h.max_reset_burst);
            }
        }
        prop_assert_eq!(
            got.api.as_ref().map(|a| a.address.to_string()),
            c.api.as_ref().map(|a| a.address.parse::<SocketAddr>().expect("generated").to_string())
        );
        let p = &c.providers;
        prop_assert_eq!(&got.providers.label_prefix, p.label_prefix.as_deref().unwrap_or("traefik"));
        prop_assert_eq!(got.providers.exposed_by_default, p.exposed_by_default);
        prop_assert_eq!(&got.providers.constraints, &p.constraints);
        prop_assert_eq!(loaded.constraints.is_some(), p.constraints.is_some());
        prop_assert_eq!(got.providers.throttle_ms, p.throttle_ms.unwrap_or(100));
        match (&got.providers.file, &p.file) {
            (Some(g), Some(f)) => {
                prop_assert_eq!(&g.path, &PathBuf::from(&f.path));
                prop_assert_eq!(g.watch, f.watch.unwrap_or(true));
                let want = PathBuf::from("/etc/gantry").join(&f.path);
                prop_assert_eq!(loaded.file_provider_path(), Some(want));
            }
            (None, None) => {}
            (g, f) => prop_assert!(false, "file provider {:?} read as {:?}", f, g),
        }
        match (&got.providers.ecs, &p.ecs) {
            (Some(g), Some(e)) => {
                prop_assert_eq!(&g.clusters, &e.clusters);
                prop_assert_eq!(g.auto_discover_clusters, e.auto_discover_clusters);
                prop_assert_eq!(&g.region, &e.region);
                prop_assert_eq!(g.refresh_seconds, e.refresh_seconds);
                prop_assert_eq!(g.max_backoff_seconds, e.max_backoff_seconds);
                prop_assert_eq!(&g.endpoint_url, &e.endpoint_url);
            }
            (None, None) => {}
            (g, e) => prop_assert!(false, "ecs provider {:?} read as {:?}", e, g),
        }
        prop_assert_eq!(&got.node.zone, &c.node.as_ref().and_then(|n| n.zone.clone()));
        prop_assert_eq!(got.node.drain_seconds, c.node.as_ref().map_or(30, |n| n.drain_seconds));
        prop_assert_eq!(got.runtime.worker_threads, c.runtime.as_ref().map(|r| r.worker_threads));
        prop_assert_eq!(&got.log.level, c.log.as_ref().map_or("info", |l| l.level.as_str()));
        prop_assert_eq!(got.access_log.is_some(), c.access_log.is_some());
    }

    /// A valid config broken the usual ways: an answer, and an error that says where.
    #[test]
    fn a_broken_config_says_where(
        c in valid_config(),
        edit in any::<u8>(),
        at in any::<prop::sample::Index>(),
        fragment in toml_noise(),
    ) {
        let text = mutate(&render_config(&c)?, edit, at, &fragment);
        if let Err(e) = parse_config(&text) {
            prop_assert!(says_where(&e), "error does not say where: {:?}\nfor {:?}", e, text);
        }
    }
}
