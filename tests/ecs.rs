//! The ECS provider end to end: the real `aws-sdk-ecs`/`aws-sdk-ec2` clients against
//! moto's server (tests/moto/gantry_moto.py), tasks on loopback addresses, real gRPC
//! backends on those addresses, and real calls routed through gantry.
//!
//! The tests share loopback addresses (each emulator hands out the same pool), so they
//! take turns.

use crate::support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use gantry::dynamic::{ObjectRef, Status};
use support::moto::{ContainerSpec, Moto};
use support::proto::echo::{EchoRequest, StreamRequest};
use support::{wait_until, Backend, Gateway};
use tokio_stream::StreamExt;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLUSTER: &str = "grpc";
/// gantry refreshes every second in these tests.
const REFRESH: Duration = Duration::from_secs(1);

fn echo_container(port: u16, extra: &[(&str, &str)]) -> ContainerSpec {
    let mut labels: Vec<(String, String)> = [
        ("traefik.enable", "true"),
        (
            "traefik.http.routers.echo.rule",
            "GRPCService(`gantry.test.Echo`)",
        ),
        (
            "traefik.http.services.echo.loadbalancer.server.scheme",
            "h2c",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ContainerSpec {
        name: "echo".into(),
        container_port: port,
        host_port: None,
        labels,
    }
}

/// The address ECS reports for an awsvpc task (its ENI IP and the container port).
async fn awsvpc_addr(moto: &Moto, task: &str, port: u16) -> SocketAddr {
    let described = moto.describe(CLUSTER, task).await;
    let ip: IpAddr = described
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .and_then(|v| v.parse().ok())
        .expect("the task has an ENI address");
    assert!(
        ip.is_loopback(),
        "the emulator must hand out loopback addresses, got {ip}"
    );
    SocketAddr::new(ip, port)
}

/// Who answers `n` unary calls through gantry.
async fn answered_by(gw: &Gateway, n: usize) -> BTreeMap<String, usize> {
    let mut echo = gw.echo().await;
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let name = match echo.unary(EchoRequest::default()).await {
            Ok(r) => r.into_inner().backend,
            Err(s) => format!("error {:?}", s.code()),
        };
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

/// Waits until a call reaches each of `names` (and only them), returning how long it took.
async fn until_served_by(gw: &Gateway, names: &[&str], deadline: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let counts = answered_by(gw, 20).await;
        let got: Vec<&str> = counts.keys().map(String::as_str).collect();
        if got == names {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < deadline,
            "calls still answered by {counts:?} after {deadline:?}, want only {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_come_and_go_within_a_refresh_and_streams_finish() {
    let _turn = TURN.lock().await;
    let moto = Moto::start().await;
    moto.create_cluster(CLUSTER).await;
    let port = 50_071;
    let td = moto
        .register_task_definition("echo", "awsvpc", &[echo_container(port, &[])])
        .await;
    let task_a = moto.run_task(CLUSTER, &td, Some("service:echo")).await;
    let a = Backend::start_on("a", awsvpc_addr(&moto, &task_a, port).await)
        .await
        .expect("backend a on the task's address");

    let gw = Gateway::start_ecs(&moto.endpoint(), &[CLUSTER]).await;
    until_served_by(&gw, &["a"], REFRESH * 5).await;
    let config = gw.gantry.config();
    let server = &config.services["echo"].servers[0];
    assert_eq!(
        server.task,
        format!("{}/echo", task_a.rsplit('/').next().unwrap_or_default())
    );
    assert_eq!(server.address, a.addr);

    // A new task gets calls within one refresh (plus the time to publish).
    let task_b = moto.run_task(CLUSTER, &td, Some("service:echo")).await;
    let b = Backend::start_on("b", awsvpc_addr(&moto, &task_b, port).await)
        .await
        .expect("backend b");
    let took = until_served_by(&gw, &["a", "b"], REFRESH * 3).await;
    println!("a new task got calls {took:?} after it started (refresh every {REFRESH:?})");

    // A long stream on b, then b stops: it gets no new calls within a refresh, and
    // the stream it is serving runs to its end.
    let mut stream = loop {
        let mut echo = gw.echo().await;
        let mut s = echo
            .server_stream(StreamRequest {
                count: 40,
                interval_ms: 50,
                ..Default::default()
            })
            .await
            .expect("stream")
            .into_inner();
        let first = s.next().await.expect("first message").expect("ok");
        if first.backend == "b" {
            break s;
        }
    };
    moto.stop_task(CLUSTER, &task_b).await;
    let took = until_served_by(&gw, &["a"], REFRESH * 3).await;
    println!("a stopped task stopped getting calls {took:?} after StopTask");
    let mut received = 1;
    while let Some(msg) = stream.next().await {
        let msg = msg.expect("the stream on the stopped task completes without error");
        assert_eq!(msg.backend, "b");
        received += 1;
    }
    assert_eq!(received, 40, "every message of the stream arrived");
    assert_eq!(b.stats().cancelled_streams(), 0);

    // A task that starts stopping (DEACTIVATING, still listed) gets no new calls either.
    let task_c = moto.run_task(CLUSTER, &td, Some("service:echo")).await;
    let _c = Backend::start_on("c", awsvpc_addr(&moto, &task_c, port).await)
        .await
        .expect("backend c");
    until_served_by(&gw, &["a", "c"], REFRESH * 3).await;
    moto.set_task(&task_c, serde_json::json!({"lastStatus": "DEACTIVATING"}))
        .await;
    until_served_by(&gw, &["a"], REFRESH * 3).await;

    // Unhealthy tasks get no calls; healthy again, they do.
    moto.set_task(&task_a, serde_json::json!({"health": "UNHEALTHY"}))
        .await;
    moto.set_task(&task_c, serde_json::json!({"lastStatus": "RUNNING"}))
        .await;
    until_served_by(&gw, &["c"], REFRESH * 3).await;
    moto.set_task(&task_a, serde_json::json!({"health": "HEALTHY"}))
        .await;
    until_served_by(&gw, &["a", "c"], REFRESH * 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_labels_are_reported_and_the_task_skipped() {
    let _turn = TURN.lock().await;
    let moto = Moto::start().await;
    moto.create_cluster(CLUSTER).await;
    let port = 50_072;
    let good = moto
        .register_task_definition("echo", "awsvpc", &[echo_container(port, &[])])
        .await;
    let bad = moto
        .register_task_definition(
            "broken",
            "awsvpc",
            &[ContainerSpec {
                name: "broken".into(),
                container_port: port,
                host_port: None,
                labels: vec![
                    ("traefik.enable".into(), "true".into()),
                    (
                        "traefik.http.routers.broken.rule".into(),
                        "PathPrefix(`/x`".into(),
                    ),
                    (
                        "traefik.http.services.broken.loadbalancer.server.port".into(),
                        "http".into(),
                    ),
                ],
            }],
        )
        .await;
    let task = moto.run_task(CLUSTER, &good, None).await;
    let broken_task = moto.run_task(CLUSTER, &bad, None).await;
    let _a = Backend::start_on("a", awsvpc_addr(&moto, &task, port).await)
        .await
        .expect("backend");
    let _x = Backend::start_on("x", awsvpc_addr(&moto, &broken_task, port).await)
        .await
        .expect("backend");
    let gw = Gateway::start_ecs(&moto.endpoint(), &[CLUSTER]).await;
    until_served_by(&gw, &["a"], REFRESH * 5).await;

    let config = gw.gantry.config();
    let broken_id = format!(
        "{}/broken",
        broken_task.rsplit('/').next().unwrap_or_default()
    );
    let rule_error = config
        .errors
        .iter()
        .find(|e| {
            e.object == ObjectRef::Router("broken".into())
                && e.label.as_deref() == Some("traefik.http.routers.broken.rule")
        })
        .unwrap_or_else(|| panic!("no rule error on router broken: {:#?}", config.errors));
    assert_eq!(rule_error.task.as_deref(), Some(broken_id.as_str()));
    assert!(
        rule_error.message.contains("column"),
        "{}",
        rule_error.message
    );
    assert!(config
        .errors
        .iter()
        .any(|e| e.object == ObjectRef::Service("broken".into())
            && e.label.as_deref()
                == Some("traefik.http.services.broken.loadbalancer.server.port")));
    assert_eq!(config.routers["broken"].status, Status::Disabled);
    assert_eq!(config.routers["echo"].status, Status::Enabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_outage_keeps_routing_and_the_provider_recovers() {
    let _turn = TURN.lock().await;
    let mut moto = Moto::start().await;
    let port = 50_073;
    async fn setup(moto: &Moto, port: u16) -> String {
        moto.create_cluster(CLUSTER).await;
        let td = moto
            .register_task_definition("echo", "awsvpc", &[echo_container(port, &[])])
            .await;
        moto.run_task(CLUSTER, &td, None).await
    }
    let task = setup(&moto, port).await;
    let addr = awsvpc_addr(&moto, &task, port).await;
    let _a = Backend::start_on("a", addr).await.expect("backend");
    let gw = Gateway::start_ecs(&moto.endpoint(), &[CLUSTER]).await;
    until_served_by(&gw, &["a"], REFRESH * 5).await;
    let status = gw.gantry.providers()[0].clone();
    let failures_before = status.failures();

    moto.kill();
    wait_until("a refresh to fail", Duration::from_secs(15), || {
        status.failures() > failures_before
    })
    .await;
    assert!(status.last().error.is_some());
    // Several refresh intervals into the outage, routing is intact.
    let outage = Instant::now();
    while outage.elapsed() < REFRESH * 3 {
        assert_eq!(
            answered_by(&gw, 10).await.get("a"),
            Some(&10),
            "routing broke during the outage"
        );
    }
    let config = gw.gantry.config();
    assert!(
        config
            .errors
            .iter()
            .any(|e| e.object == ObjectRef::Provider("ecs".into())),
        "the outage is shown: {:?}",
        config.errors
    );

    // The emulator returns (empty: it keeps no state). Hold its answers back while the
    // cluster is recreated, so gantry sees the cluster whole or not at all.
    moto.restart().await;
    moto.fault("ListTasks", 1_000_000, "500").await;
    let again = setup(&moto, port).await;
    assert_eq!(
        awsvpc_addr(&moto, &again, port).await,
        addr,
        "same address after restart"
    );
    moto.fault("ListTasks", 0, "500").await;
    wait_until("the provider to recover", Duration::from_secs(15), || {
        status.last().error.is_none()
    })
    .await;
    wait_until("the outage error to clear", Duration::from_secs(5), || {
        !gw.gantry
            .config()
            .errors
            .iter()
            .any(|e| e.object == ObjectRef::Provider("ecs".into()))
    })
    .await;
    assert_eq!(answered_by(&gw, 10).await.get("a"), Some(&10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_host_and_awsvpc_tasks_all_route() {
    let _turn = TURN.lock().await;
    let moto = Moto::start().await;
    moto.create_cluster(CLUSTER).await;
    let instance_ip = moto.add_container_instance(CLUSTER).await;
    assert!(
        instance_ip.is_loopback(),
        "instance IP {instance_ip} must be loopback"
    );

    // awsvpc: the ENI address.
    let vpc_port = 50_074;
    let td_vpc = moto
        .register_task_definition("echo-vpc", "awsvpc", &[echo_container(vpc_port, &[])])
        .await;
    let task_vpc = moto.run_task(CLUSTER, &td_vpc, None).await;
    let _vpc = Backend::start_on("vpc", awsvpc_addr(&moto, &task_vpc, vpc_port).await)
        .await
        .expect("awsvpc backend");

    // bridge: the instance's address and the host port Docker published (dynamic).
    let mut bridge = echo_container(
        8080,
        &[(
            "traefik.http.services.echo.loadbalancer.server.port",
            "8080",
        )],
    );
    bridge.host_port = None;
    let td_bridge = moto
        .register_task_definition("echo-bridge", "bridge", &[bridge])
        .await;
    let task_bridge = moto.run_task(CLUSTER, &td_bridge, None).await;
    let described = moto.describe(CLUSTER, &task_bridge).await;
    let host_port = described.containers()[0].network_bindings()[0]
        .host_port()
        .and_then(|p| u16::try_from(p).ok())
        .expect("a published host port");
    assert_ne!(
        host_port, 8080,
        "bridge mode publishes on a dynamic host port"
    );
    let _bridge = Backend::start_on("bridge", SocketAddr::new(instance_ip, host_port))
        .await
        .expect("bridge backend");

    // host: the instance's address and the container port.
    let host_mode_port = 50_075;
    let td_host = moto
        .register_task_definition("echo-host", "host", &[echo_container(host_mode_port, &[])])
        .await;
    moto.run_task(CLUSTER, &td_host, None).await;
    let _host = Backend::start_on("host", SocketAddr::new(instance_ip, host_mode_port))
        .await
        .expect("host-mode backend");

    let gw = Gateway::start_ecs(&moto.endpoint(), &[CLUSTER]).await;
    until_served_by(&gw, &["bridge", "host", "vpc"], REFRESH * 5).await;
    let counts = answered_by(&gw, 300).await;
    assert_eq!(counts.values().sum::<usize>(), 300);
    assert!(
        counts.values().all(|n| *n == 100),
        "smooth round robin: {counts:?}"
    );

    // Steady state: no task definition or container instance is described again.
    moto.reset_calls().await;
    let progress = gw.gantry.providers()[0].refreshes();
    let status = gw.gantry.providers()[0].clone();
    wait_until("two more refreshes", Duration::from_secs(10), || {
        status.refreshes() >= progress + 2
    })
    .await;
    let calls = moto.calls().await;
    println!("steady-state API calls over 2+ refreshes: {calls:?}");
    assert_eq!(
        calls.get("DescribeTaskDefinition").copied().unwrap_or(0),
        0,
        "{calls:?}"
    );
    assert_eq!(
        calls
            .get("DescribeContainerInstances")
            .copied()
            .unwrap_or(0),
        0,
        "{calls:?}"
    );
    assert_eq!(
        calls.get("DescribeInstances").copied().unwrap_or(0),
        0,
        "{calls:?}"
    );
    assert!(
        calls.get("ListTasks").copied().unwrap_or(0) >= 2,
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gantry_check_reads_ecs_and_reports_its_errors() {
    let _turn = TURN.lock().await;
    let moto = Moto::start().await;
    moto.create_cluster(CLUSTER).await;
    let td = moto
        .register_task_definition("echo", "awsvpc", &[echo_container(50_076, &[])])
        .await;
    moto.run_task(CLUSTER, &td, Some("service:echo")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |endpoint: &str| {
        format!(
            "[entrypoints.web]\naddress = \"127.0.0.1:0\"\n[providers.ecs]\nclusters = [\"{CLUSTER}\"]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\ncredentials = {{ access_key_id = \"test\", secret_access_key = \"test\" }}\n"
        )
    };
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config(&moto.endpoint())).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run gantry check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("echo [enabled] rule=GRPCService(`gantry.test.Echo`)"),
        "{stdout}"
    );
    assert!(stdout.contains("h2c://127.0.2.1:50076"), "{stdout}");

    // The emulator gone: the error is reported, naming the call, and the exit code is 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(&path, config(&format!("http://127.0.0.1:{closed}"))).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run gantry check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("provider \"ecs\"") && stdout.contains("ListTasks failed"),
        "{stdout}"
    );
}
