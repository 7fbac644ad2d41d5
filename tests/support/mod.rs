//! Shared helpers for the end-to-end tests: real gantry instances on 127.0.0.1 with
//! a tasks file in a temporary directory, real tonic backends, and waiting on
//! conditions with deadlines (never sleeping as synchronisation).
#![allow(dead_code, unused_imports)] // not every helper is used by a test yet

pub mod api;
pub mod backend;
pub mod interop;
pub mod moto;
pub mod pki;
pub mod proto;
pub mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gantry::app::Gantry;

pub use backend::{wait_until, Backend};

/// How long any condition in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running gantry reading a tasks file the test controls.
pub struct Gateway {
    pub gantry: Gantry,
    pub addr: SocketAddr,
    tasks: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts gantry on an ephemeral port with `tasks` as its tasks file, and waits
    /// for its first routing table.
    pub async fn start(tasks: &str) -> Gateway {
        Gateway::start_with(tasks, "").await
    }

    /// Like [`Gateway::start`], with extra lines appended to `[providers]`.
    pub async fn start_with(tasks: &str, providers_extra: &str) -> Gateway {
        Gateway::start_config(
            tasks,
            &format!("{providers_extra}\n[providers.file]\npath = \"tasks.toml\"\n"),
        )
        .await
    }

    /// Gantry reading ECS (an emulator at `endpoint`) every second.
    pub async fn start_ecs(endpoint: &str, clusters: &[&str]) -> Gateway {
        let clusters: Vec<String> = clusters.iter().map(|c| format!("{c:?}")).collect();
        Gateway::start_config(
            "",
            &format!(
                r#"
[providers.ecs]
clusters = [{}]
region = "us-east-1"
endpoint_url = "{endpoint}"
refresh_seconds = 1
max_backoff_seconds = 2
credentials = {{ access_key_id = "test", secret_access_key = "test" }}
"#,
                clusters.join(", ")
            ),
        )
        .await
    }

    /// Gantry with `providers` as everything after the `[providers]` header (the
    /// tasks file, `tasks.toml` beside the config, holds `tasks`).
    pub async fn start_config(tasks: &str, providers: &str) -> Gateway {
        Gateway::start_custom(tasks, "", providers).await
    }

    /// Gantry with `extra` after the `[api]` address (e.g. `[api.auth]` or
    /// `[access_log]` sections; relative paths are beside the config) and
    /// `providers` as in [`Gateway::start_config`].
    pub async fn start_custom(tasks: &str, extra: &str, providers: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let tasks_path = dir.path().join("tasks.toml");
        std::fs::write(&tasks_path, tasks).expect("write tasks");
        let config = format!(
            r#"
[entrypoints.web]
address = "127.0.0.1:0"
[api]
address = "127.0.0.1:0"
{extra}
[providers]
throttle_ms = 10
{providers}
"#
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let loaded = gantry::config::load(&config_path).expect("config loads");
        let gantry = gantry::app::start(loaded).await.expect("gantry starts");
        within("the first routing table", gantry.wait_generation(1)).await;
        let addr = gantry.entrypoint("web").expect("entrypoint web");
        Gateway {
            gantry,
            addr,
            tasks: tasks_path,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<api address>`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.gantry.api_addr().expect("api enabled"))
    }

    /// The directory holding the config and tasks files.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Replaces the tasks file atomically (write + rename), as deploy tools do.
    pub fn write_tasks(&self, tasks: &str) {
        let tmp = self.tasks.with_extension("tmp");
        std::fs::write(&tmp, tasks).expect("write tasks");
        std::fs::rename(&tmp, &self.tasks).expect("rename tasks");
    }

    /// Rewrites the tasks file in place: truncated, then written.
    pub fn write_tasks_in_place(&self, tasks: &str) {
        std::fs::write(&self.tasks, tasks).expect("write tasks");
    }

    /// Replaces the tasks file and waits until a new routing table is in place.
    pub async fn set_tasks(&self, tasks: &str) {
        let before = self.gantry.generation();
        self.write_tasks(tasks);
        within(
            "a new routing table",
            self.gantry.wait_generation(before + 1),
        )
        .await;
    }

    /// An Echo client on a fresh connection to the entrypoint (16 MiB messages).
    pub async fn echo(&self) -> proto::echo::echo_client::EchoClient<tonic::transport::Channel> {
        backend::echo_client(&self.url())
            .await
            .expect("connect to gantry")
    }

    /// A RouteGuide client on a fresh connection to the entrypoint.
    pub async fn route_guide(
        &self,
    ) -> proto::routeguide::route_guide_client::RouteGuideClient<tonic::transport::Channel> {
        backend::route_client(&self.url())
            .await
            .expect("connect to gantry")
    }
}

/// A tasks-file entry for one task on 127.0.0.1:`port`, routed by `rule` to service
/// `service` spoken to with `scheme`; `extra` goes into the task before its labels
/// (`zone = …`), and label lines may be appended to the result.
pub fn routed_task(
    id: &str,
    port: u16,
    extra: &str,
    service: &str,
    rule: &str,
    scheme: &str,
) -> String {
    format!(
        r#"
[[task]]
id = "{id}"
ip = "127.0.0.1"
ports = [{port}]
{extra}
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.{service}.rule" = "{rule}"
"traefik.http.services.{service}.loadbalancer.server.scheme" = "{scheme}"
"#,
        rule = rule.replace('"', "\\\""),
    )
}

/// A tasks-file entry for one h2c backend of service `service`, routed by `rule`.
pub fn h2c_task(id: &str, backend: &Backend, service: &str, rule: &str, weight: u32) -> String {
    routed_task(id, backend.addr.port(), "", service, rule, "h2c")
        + &format!(
            "\"traefik.http.routers.{service}.service\" = \"{service}\"\n\
             \"traefik.http.services.{service}.loadbalancer.server.weight\" = \"{weight}\"\n"
        )
}

/// A tasks-file entry for one h2c backend of service `echo`, routed by
/// [`ECHO_RULE`]: `extra` goes into the task before its labels (`zone = …`), `lb`
/// are load-balancer labels (`strategy`, `outlier.interval`…) and `router` router
/// labels (`retry.attempts`…).
pub fn echo_task(
    id: &str,
    backend: &Backend,
    extra: &str,
    lb: &[(&str, &str)],
    router: &[(&str, &str)],
) -> String {
    let mut t = routed_task(id, backend.addr.port(), extra, "echo", ECHO_RULE, "h2c");
    for (k, v) in lb {
        t.push_str(&format!(
            "\"traefik.http.services.echo.loadbalancer.{k}\" = \"{v}\"\n"
        ));
    }
    for (k, v) in router {
        t.push_str(&format!("\"traefik.http.routers.echo.{k}\" = \"{v}\"\n"));
    }
    t
}

/// Unary Echo calls from `clients` concurrent clients (each on its own connection),
/// `per_client` each, all expected to succeed: how many each backend answered.
pub async fn calls_by_backend(
    gw: &Gateway,
    clients: usize,
    per_client: usize,
) -> std::collections::HashMap<String, u32> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut c = gw.echo().await;
        tasks.push(tokio::spawn(async move {
            let mut by = std::collections::HashMap::<String, u32>::new();
            for _ in 0..per_client {
                let reply = c
                    .unary(proto::echo::EchoRequest::default())
                    .await
                    .expect("call")
                    .into_inner();
                *by.entry(reply.backend).or_default() += 1;
            }
            by
        }));
    }
    let mut total = std::collections::HashMap::new();
    for t in tasks {
        for (k, v) in t.await.expect("client") {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

/// A tasks-file entry for one plain HTTP/1.1 backend of service `service`, routed by
/// `rule`; `extra` goes into the task (before its labels), and label lines may be
/// appended to the result.
pub fn http_task(id: &str, port: u16, service: &str, rule: &str, extra: &str) -> String {
    routed_task(id, port, extra, service, rule, "http")
}

/// The rule routing the Echo test service.
pub const ECHO_RULE: &str = "GRPCService(`gantry.test.Echo`)";

/// Awaits `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}
