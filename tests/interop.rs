//! The gRPC interop test cases (grpc's `doc/interop-test-descriptions.md`) through
//! gantry, as a matrix: tonic, grpcio (gRPC's C core) and @grpc/grpc-js (Node's
//! HTTP/2), each as client against each as server, 14 cases per pair.
//!
//! Every server is started once and serves every client. Gantry has one h2c
//! entrypoint per server (named after it), routing `grpc.testing.*` there, so
//! UNIMPLEMENTED for an unknown method or service comes from the server, not from
//! gantry's own no-route answer. The same matrix runs direct first: a case that
//! fails only through gantry is gantry's. Each client implementation runs against
//! the three servers at once; each case has a deadline of a few seconds, so a hang
//! fails fast. The tables are
//! printed (`--nocapture` shows them on success too); a failure lists each failing
//! (client, server, case) with what went wrong.

use crate::support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use support::interop::{run_client, CaseResult, Impl, Server, CASES};
use support::{routed_task, Gateway};

/// What every router sends on: both test services of `grpc.testing`.
const INTEROP_RULE: &str = "PathPrefix(`/grpc.testing.`)";

/// A gantry entrypoint name for the server of `implementation`.
fn entrypoint(implementation: Impl) -> String {
    implementation.name().replace('-', "")
}

/// Results of every (client, server) pair.
struct Matrix {
    title: String,
    results: BTreeMap<(Impl, Impl), Vec<CaseResult>>,
}

impl Matrix {
    /// Runs every client against every server at `addr_of(server)`: one client
    /// implementation at a time, against the three servers at once (at most three
    /// client processes, so the timing tests beside this one keep their CPU).
    async fn run(title: &str, addr_of: impl Fn(Impl) -> SocketAddr) -> Matrix {
        let started = Instant::now();
        let mut results = BTreeMap::new();
        for client in Impl::ALL {
            let mut pairs = tokio::task::JoinSet::new();
            for server in Impl::ALL {
                let addr = addr_of(server);
                pairs.spawn(async move { (server, run_client(client, addr, &CASES).await) });
            }
            while let Some(pair) = pairs.join_next().await {
                let (server, cases) = pair.expect("an interop client task");
                results.insert((client, server), cases);
            }
        }
        Matrix {
            title: format!("{title} ({:.1} s)", started.elapsed().as_secs_f64()),
            results,
        }
    }

    fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for ((client, server), cases) in &self.results {
            for result in cases {
                if let Err(why) = &result.outcome {
                    failures.push(format!("{client} → {server}: {}: {why}", result.case));
                }
            }
        }
        failures
    }

    /// Passed cases per pair, clients down, servers across; then each failure.
    fn report(&self) -> String {
        let failures = self.failures();
        let total: usize = self.results.values().map(Vec::len).sum();
        let mut out = format!(
            "gRPC interop, {}: {} of {total} cases passed\n",
            self.title,
            total - failures.len()
        );
        let _ = write!(out, "  {:<16}", "client \\ server");
        for server in Impl::ALL {
            let _ = write!(out, "{server:>9}");
        }
        out.push('\n');
        for client in Impl::ALL {
            let _ = write!(out, "  {client:<16}");
            for server in Impl::ALL {
                let cases = &self.results[&(client, server)];
                let passed = cases.iter().filter(|r| r.outcome.is_ok()).count();
                let _ = write!(out, "{:>9}", format!("{passed}/{}", cases.len()));
            }
            out.push('\n');
        }
        for failure in failures {
            let _ = writeln!(out, "  FAILED {failure}");
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_matrix_through_gantry() {
    let mut servers = BTreeMap::new();
    for implementation in Impl::ALL {
        servers.insert(implementation, Server::start(implementation).await);
    }

    let mut tasks = String::new();
    let mut entrypoints = String::new();
    for (implementation, server) in &servers {
        let name = entrypoint(*implementation);
        let service = format!("interop-{name}");
        tasks += &routed_task(
            &format!("interop-{name}"),
            server.addr().port(),
            "",
            &service,
            INTEROP_RULE,
            "h2c",
        );
        tasks += &format!("\"traefik.http.routers.{service}.entrypoints\" = \"{name}\"\n");
        entrypoints += &format!("[entrypoints.{name}]\naddress = \"127.0.0.1:0\"\n");
    }
    let gw = Gateway::start_custom(
        &tasks,
        &entrypoints,
        "[providers.file]\npath = \"tasks.toml\"\n",
    )
    .await;

    let direct = Matrix::run("direct", |server| servers[&server].addr()).await;
    println!("{}", direct.report());
    let through = Matrix::run("through gantry", |server| {
        gw.gantry
            .entrypoint(&entrypoint(server))
            .expect("an entrypoint per server")
    })
    .await;
    println!("{}", through.report());

    assert!(
        direct.failures().is_empty(),
        "the interop matrix fails without gantry (the test or an implementation is \
         broken, not gantry):\n{}",
        direct.report()
    );
    assert!(
        through.failures().is_empty(),
        "interop cases fail through gantry that pass direct:\n{}",
        through.report()
    );
}
