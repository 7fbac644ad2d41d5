//! The Python (grpcio) and Node (@grpc/grpc-js) interop programs, run as processes:
//! servers started once on an explicit port and awaited by polling until they
//! accept connections, clients run once per server with every case and read back
//! as JSON lines.
//!
//! Python is `GANTRY_PYTHON` if set, else `.venv/bin/python` at the crate root;
//! Node is `node` on the `PATH` with `tests/interop/node/node_modules`. Both are
//! set up by `scripts/test.sh`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::{CaseResult, Impl};

/// How long a server may take to accept connections after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a client process may take to start before its first case.
const CLIENT_START: Duration = Duration::from_secs(20);

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The program and script that run `implementation`'s `role` ("server" or
/// "client"); panics, saying how to set it up, if it is not installed.
fn command(implementation: Impl, role: &str) -> Command {
    let root = crate_root();
    let (program, script) = match implementation {
        Impl::Grpcio => {
            let python = std::env::var_os("GANTRY_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join(".venv/bin/python"));
            assert!(
                python.exists(),
                "grpcio is not installed: {} is missing (run ./scripts/test.sh, which \
                 installs tests/interop/python/requirements.txt into .venv)",
                python.display()
            );
            let script = root.join(format!("tests/interop/python/interop_{role}.py"));
            (python, script)
        }
        Impl::GrpcJs => {
            let modules = root.join("tests/interop/node/node_modules/@grpc/grpc-js");
            assert!(
                modules.is_dir(),
                "@grpc/grpc-js is not installed: {} is missing (run ./scripts/test.sh, \
                 which runs npm ci in tests/interop/node)",
                modules.display()
            );
            let script = root.join(format!("tests/interop/node/{role}.js"));
            (PathBuf::from("node"), script)
        }
        Impl::Tonic => unreachable!("tonic runs in the test's process"),
    };
    let mut command = Command::new(program);
    command
        .arg(script)
        .current_dir(root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // Calls go to 127.0.0.1 as given, never through a proxy from the environment.
    for var in [
        "http_proxy",
        "https_proxy",
        "grpc_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    ] {
        command.env_remove(var);
    }
    command
}

/// A free port on 127.0.0.1 (free when this returns; the server binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server process; killed when dropped.
pub struct ProcessServer {
    pub addr: SocketAddr,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl ProcessServer {
    /// Spawns `implementation`'s server on a free port and polls it until it accepts
    /// a connection; panics with its output if it exits or takes longer than 30 s.
    pub async fn start(implementation: Impl) -> ProcessServer {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("server log");
        let err = out.try_clone().expect("server log");
        let mut child = command(implementation, "server")
            .arg(format!("--port={port}"))
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run the {implementation} interop server: {e}"));
        let give_up = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the {implementation} interop server exited ({status}) before it \
                     listened on {addr}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < give_up,
                "the {implementation} interop server did not listen on {addr} within \
                 {START_DEADLINE:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ProcessServer {
            addr,
            _child: child,
            _dir: dir,
        }
    }
}

/// Runs `implementation`'s client once with `cases` against `addr`, each case
/// within `timeout`; a case the process gave no result for failed, with the
/// process's standard error as the reason.
pub async fn run_client(
    implementation: Impl,
    addr: SocketAddr,
    cases: &[&str],
    timeout: Duration,
) -> Vec<CaseResult> {
    let mut command = command(implementation, "client");
    command
        .arg(format!("--server_host={}", addr.ip()))
        .arg(format!("--server_port={}", addr.port()))
        .arg(format!("--test_cases={}", cases.join(",")))
        .arg(format!("--case_timeout_ms={}", timeout.as_millis()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Each case bounds itself; this bounds a client that does not.
    let budget = CLIENT_START + (timeout + Duration::from_secs(1)) * cases.len() as u32;
    let ended = tokio::time::timeout(budget, command.output()).await;
    let (stdout, why_missing) = match ended {
        Ok(Ok(output)) => (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            format!(
                "the {implementation} client exited ({}) without a result for it; stderr: {}",
                output.status,
                tail(&String::from_utf8_lossy(&output.stderr))
            ),
        ),
        Ok(Err(e)) => (
            String::new(),
            format!("cannot run the {implementation} client: {e}"),
        ),
        Err(_) => (
            String::new(),
            format!("the {implementation} client did not finish within {budget:?} (killed)"),
        ),
    };
    let mut reported: HashMap<String, Result<(), String>> = HashMap::new();
    for line in stdout.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(case) = value["case"].as_str() else {
            continue;
        };
        let outcome = if value["ok"].as_bool() == Some(true) {
            Ok(())
        } else {
            Err(value["error"].as_str().unwrap_or("failed").to_string())
        };
        reported.insert(case.to_string(), outcome);
    }
    cases
        .iter()
        .map(|&case| CaseResult {
            case: case.to_string(),
            outcome: reported
                .remove(case)
                .unwrap_or_else(|| Err(why_missing.clone())),
        })
        .collect()
}

/// The last lines of a process's output, for a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
