//! A server that stops answering but keeps its connections open: a task paused
//! (SIGSTOP) or deadlocked. The kernel still accepts and ACKs, so no dial fails and
//! no connection closes; only silence tells. Under load (8 clients, 1 s deadlines)
//! gantry must mark it DOWN within 2 s, and no more calls may fail than were sent
//! to it in that time.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry::balance::Health;

use crate::support::proto::echo::EchoRequest;
use crate::support::{backend, Gateway, DEADLINE};

/// The demo backend (`examples/backend.rs`) as a process of its own, so it can be
/// paused; cargo builds the examples beside the test binaries.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    fn start(name: &str) -> Process {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir");
        let path = dir.join("examples").join("backend");
        let mut child = Command::new(&path)
            .args(["--name", name, "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e} (cargo builds it with the tests)",
                    path.display()
                )
            });
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the backend's first line");
        let addr = line
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Process { child, addr }
    }

    fn signal(&self, sig: &str) {
        // The shell's own `kill`: no procps needed.
        let ok = Command::new("sh")
            .args(["-c", &format!("kill {sig} {}", self.child.id())])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -CONT {}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn task(id: &str, addr: SocketAddr) -> String {
    format!(
        "[[task]]\nid = \"{id}\"\nip = \"127.0.0.1\"\nports = [{}]\n[task.labels]\n\
         \"traefik.enable\" = \"true\"\n\
         \"traefik.http.routers.echo.rule\" = \"GRPCService(`gantry.test.Echo`)\"\n\
         \"traefik.http.services.echo.loadbalancer.server.scheme\" = \"h2c\"\n",
        addr.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_is_down_within_two_seconds_and_costs_only_its_own_calls() {
    let a = Process::start("paused");
    let b = Process::start("alive");
    let gw = Gateway::start(&(task("paused", a.addr) + &task("alive", b.addr))).await;
    let table = gw.gantry.table();
    let paused = table
        .endpoints()
        .values()
        .find(|e| e.key().task == "paused")
        .expect("endpoint")
        .clone();

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let failed_after_down = Arc::new(AtomicU64::new(0));
    let down_at: Arc<arc_swap::ArcSwapOption<Instant>> = Arc::default();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut c = backend::echo_client(&gw.url()).await.expect("client");
        let (stop, failed, failed_after_down, down_at) = (
            stop.clone(),
            failed.clone(),
            failed_after_down.clone(),
            down_at.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut ok = 0u64;
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                let mut req = tonic::Request::new(EchoRequest::default());
                req.set_timeout(Duration::from_secs(1));
                match c.unary(req).await {
                    Ok(_) => ok += 1,
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if down_at.load().as_ref().is_some_and(|d| started > **d) {
                            failed_after_down.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            ok
        }));
    }
    // Both serve first.
    backend::wait_until("calls on both servers", DEADLINE, || {
        paused.requests() > 50 && table.endpoints().values().all(|e| e.requests() > 50)
    })
    .await;

    a.signal("-STOP");
    let pause = Instant::now();
    // `kill` has returned, so the server is stopped. Every call it had not
    // finished by now, and every call sent to it from now on, is one the pause
    // may cost: count from the calls it finished.
    let sent_before = paused.requests();
    backend::wait_until("the paused server DOWN", DEADLINE, || {
        paused.health().0 == Health::Down
    })
    .await;
    let took = pause.elapsed();
    down_at.store(Some(Arc::new(Instant::now())));
    let sent_to_it = paused.requests() + paused.in_flight() - sent_before;
    let reason = paused.health().1.unwrap_or_default();
    eprintln!("paused server DOWN after {took:?} ({reason}); {sent_to_it} calls were sent to it meanwhile");

    // Calls go on against the live server for a while: none of them fails.
    let more = b_requests(&table) + 200;
    backend::wait_until("200 more calls", DEADLINE, || b_requests(&table) >= more).await;
    stop.store(true, Ordering::Release);
    let mut ok = 0;
    for c in clients {
        ok += c.await.expect("client");
    }
    let failed = failed.load(Ordering::Relaxed);
    eprintln!("{ok} calls succeeded, {failed} failed");
    assert!(
        took <= Duration::from_secs(2),
        "the paused server was marked DOWN only after {took:?}"
    );
    assert!(
        failed <= sent_to_it,
        "{failed} calls failed, more than the {sent_to_it} sent to the paused server"
    );
    assert_eq!(
        failed_after_down.load(Ordering::Relaxed),
        0,
        "calls started after the server was DOWN failed"
    );
    drop(b);
}

fn b_requests(table: &gantry::table::RoutingTable) -> u64 {
    table
        .endpoints()
        .values()
        .filter(|e| e.key().task == "alive")
        .map(|e| e.requests())
        .sum()
}
