//! Lifecycle: the `gantry` binary drains on SIGTERM (100 open bidi streams all
//! complete, new connections are refused, exit code 0) and reads its zone from the
//! ECS task metadata endpoint; a server removed from the configuration is DRAINING
//! while its streams finish, and cut at the drain timeout; idle client connections
//! are closed.

use crate::support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::proto::echo::EchoRequest;
use support::{api, h2c_task, wait_until, within, Backend, Gateway, DEADLINE, ECHO_RULE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The gantry binary on its own ports, with a tasks file; killed on drop.
struct Process {
    child: Child,
    web: SocketAddr,
    api: String,
    _dir: tempfile::TempDir,
}

impl Process {
    fn start(tasks: &str, env: &[(&str, String)]) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        let (web, api) = (free_port(), free_port());
        std::fs::write(dir.path().join("tasks.toml"), tasks).expect("tasks");
        let config = format!(
            "[entrypoints.web]\naddress = \"127.0.0.1:{web}\"\n[api]\naddress = \"127.0.0.1:{api}\"\n\
             [node]\ndrain_seconds = 20\n[providers]\nthrottle_ms = 10\n[providers.file]\npath = \"tasks.toml\"\n"
        );
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .env_remove(gantry::node::METADATA_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start gantry");
        Process {
            child,
            web: SocketAddr::from(([127, 0, 0, 1], web)),
            api: format!("http://127.0.0.1:{api}"),
            _dir: dir,
        }
    }

    /// Waits until the API answers and the echo router is in the table.
    async fn ready(&self) {
        let until = Instant::now() + DEADLINE;
        let api_addr: SocketAddr = self
            .api
            .trim_start_matches("http://")
            .parse()
            .expect("addr");
        loop {
            // Not listening yet: try again (the process is starting).
            if tokio::net::TcpStream::connect(api_addr).await.is_ok() {
                let (status, _, body) = api::get(&self.api, "/api/http/routers", None).await;
                if status.is_success() && body.contains("\"echo@file\"") {
                    return;
                }
            }
            assert!(Instant::now() < until, "gantry never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits for the process to exit; its exit code.
    async fn exit_code(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "gantry did not exit within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An open bidi stream: its sender and its replies.
struct Open {
    tx: mpsc::Sender<EchoRequest>,
    rx: tonic::Streaming<support::proto::echo::EchoReply>,
}

/// Opens a bidi stream and waits for its first reply.
async fn open(
    client: &mut support::proto::echo::echo_client::EchoClient<tonic::transport::Channel>,
) -> (Open, String) {
    let (tx, rx) = mpsc::channel::<EchoRequest>(4);
    tx.send(EchoRequest::default()).await.expect("send");
    let mut rx = client
        .bidi(ReceiverStream::new(rx))
        .await
        .expect("bidi")
        .into_inner();
    let first = within("a first reply", rx.next())
        .await
        .expect("stream open")
        .expect("reply");
    (Open { tx, rx }, first.backend)
}

/// Sends `n` more messages on the stream, each answered, then ends it cleanly.
async fn finish(mut s: Open, n: u32) -> Result<(), String> {
    for i in 0..n {
        s.tx.send(EchoRequest {
            payload: i.to_le_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("send: {e}"))?;
        match s.rx.next().await {
            Some(Ok(r)) if r.payload == i.to_le_bytes().to_vec() => {}
            other => return Err(format!("message {i}: {other:?}")),
        }
    }
    drop(s.tx);
    match s.rx.next().await {
        None => Ok(()),
        other => Err(format!("end: {other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_100_open_streams_finish_then_exits_0() {
    let backend = Backend::start("a").await;
    let mut gantry = Process::start(&h2c_task("a", &backend, "echo", ECHO_RULE, 1), &[]);
    gantry.ready().await;
    let url = format!("http://{}", gantry.web);

    // 100 streams over 4 client connections, each answered once already.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut client = support::backend::echo_client(&url).await.expect("connect");
        for _ in 0..25 {
            streams.push(open(&mut client).await.0);
        }
    }
    wait_until("100 streams open on the backend", DEADLINE, || {
        backend.stats().active_streams() == 100
    })
    .await;

    let signalled = Instant::now();
    gantry.signal("-TERM");
    // It stops accepting at once...
    let until = Instant::now() + DEADLINE;
    while tokio::net::TcpStream::connect(gantry.web).await.is_ok() {
        assert!(
            Instant::now() < until,
            "gantry still accepts connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...while every open stream goes on and ends cleanly.
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(finish(s, 5)))
        .collect();
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("stream task") {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} streams failed: {failed:?}",
        failed.len()
    );
    let code = gantry.exit_code(DEADLINE).await;
    eprintln!(
        "100 streams finished after SIGTERM; gantry exited {:?} after {:?}",
        code,
        signalled.elapsed()
    );
    assert_eq!(code, Some(0));
    assert_eq!(backend.stats().cancelled_streams(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_comes_from_the_ecs_task_metadata_endpoint() {
    // A stand-in for the endpoint ECS injects into every container.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/v4/abc-123/task",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({
                "Cluster": "default",
                "TaskARN": "arn:aws:ecs:us-east-1:111122223333:task/default/abc",
                "AvailabilityZone": "us-east-1c",
                "LaunchType": "FARGATE"
            }))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let backend = Backend::start("a").await;
    let gantry = Process::start(
        &h2c_task("a", &backend, "echo", ECHO_RULE, 1),
        &[(
            gantry::node::METADATA_ENV,
            format!("http://{addr}/v4/abc-123"),
        )],
    );
    gantry.ready().await;
    let overview = api::json(&gantry.api, "/api/overview").await;
    assert_eq!(overview["zone"], "us-east-1c", "{overview}");
}

/// Opens streams until one lands on `backend`.
async fn stream_on(gw: &Gateway, backend: &str) -> Open {
    let mut client = gw.echo().await;
    for _ in 0..20 {
        let (s, on) = open(&mut client).await;
        if on == backend {
            return s;
        }
    }
    panic!("no stream landed on {backend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_server_drains_its_streams_and_is_cut_at_the_timeout() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let both = h2c_task("a", &a, "echo", ECHO_RULE, 1) + &h2c_task("b", &b, "echo", ECHO_RULE, 1);
    let gw = Gateway::start_custom(
        &both,
        "[node]\ndrain_seconds = 2",
        "[providers.file]\npath = \"tasks.toml\"\n",
    )
    .await;

    // A stream that finishes within the drain time.
    let finishing = stream_on(&gw, "a").await;
    // A stream that outlives it.
    let mut lingering = stream_on(&gw, "a").await;

    gw.set_tasks(&h2c_task("b", &b, "echo", ECHO_RULE, 1)).await;
    let svc = api::json(&gw.api_url(), "/api/http/services/echo").await;
    let a_view = svc["loadBalancer"]["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["taskId"] == "a"))
        .unwrap_or_else(|| panic!("a not shown while draining: {svc}"))
        .clone();
    assert_eq!(a_view["health"], "DRAINING", "{a_view}");
    assert!(
        a_view["healthReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("removed from the configuration: 2 call(s)")),
        "{a_view}"
    );
    // New calls avoid it.
    let mut client = gw.echo().await;
    for _ in 0..20 {
        let r = client.unary(EchoRequest::default()).await.expect("call");
        assert_eq!(r.into_inner().backend, "b");
    }
    finish(finishing, 3)
        .await
        .expect("the stream within the drain time");

    // The other is cut at the drain timeout (2 s after the removal).
    let removed = Instant::now();
    let cut = within("the lingering stream cut", async {
        loop {
            if lingering.tx.send(EchoRequest::default()).await.is_err() {
                break lingering.rx.next().await.map(|r| r.map(drop));
            }
            match lingering.rx.next().await {
                Some(Ok(_)) => {}
                other => break other.map(|r| r.map(drop)),
            }
            // A message every 50 ms: pacing, not waiting for anything.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    eprintln!(
        "lingering stream ended after {:?}: {cut:?}",
        removed.elapsed()
    );
    assert!(
        matches!(cut, Some(Err(_))),
        "the stream should end with an error: {cut:?}"
    );
    wait_until("a gone from the API once cut", DEADLINE, || {
        gw.gantry
            .table()
            .draining()
            .iter()
            .all(|d| d.endpoint.in_flight() == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_connection_gets_goaway_and_is_closed() {
    let a = Backend::start("a").await;
    let tasks = h2c_task("a", &a, "echo", ECHO_RULE, 1);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("tasks.toml"), &tasks).expect("tasks");
    let config = "[entrypoints.web]\naddress = \"127.0.0.1:0\"\nidle_timeout_seconds = 1\n\
                  [providers]\nthrottle_ms = 10\n[providers.file]\npath = \"tasks.toml\"\n";
    std::fs::write(dir.path().join("config.toml"), config).expect("config");
    let loaded = gantry::config::load(&dir.path().join("config.toml")).expect("config");
    let g = gantry::app::start(loaded).await.expect("start");
    within("the first table", g.wait_generation(1)).await;
    let addr = g.entrypoint("web").expect("web");

    // A bare HTTP/2 connection that never makes a call.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface");
    let opened = Instant::now();
    // Frames as they come: 3 bytes length, 1 byte type (7 = GOAWAY), flags, stream.
    let goaway = within("a GOAWAY on the idle connection", async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let mut at = 0;
            while at + 9 <= seen.len() {
                if seen[at + 3] == 7 {
                    return true;
                }
                let len = (usize::from(seen[at]) << 16)
                    | (usize::from(seen[at + 1]) << 8)
                    | usize::from(seen[at + 2]);
                at += 9 + len;
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let took = opened.elapsed();
    eprintln!("GOAWAY on the idle connection after {took:?}");
    assert!(goaway, "the connection closed without a GOAWAY");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );

    // A connection with a call in flight longer than the timeout is not closed.
    let mut client = support::backend::echo_client(&format!("http://{addr}"))
        .await
        .expect("client");
    let reply = client
        .unary(EchoRequest {
            delay_ms: 1_500,
            ..Default::default()
        })
        .await;
    assert!(reply.is_ok(), "{reply:?}");
}
