//! Losing a server under load: calls that never reached it are retried elsewhere,
//! only the calls already on it fail, and it stops getting calls within a second.

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::proto::echo::EchoRequest;
use support::{h2c_task, wait_until, Backend, Gateway, ECHO_RULE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_servers_fails_only_its_calls_in_flight() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let tasks = h2c_task("a", &a, "echo", ECHO_RULE, 1) + &h2c_task("b", &b, "echo", ECHO_RULE, 1);
    let gw = Gateway::start(&tasks).await;
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();

    // 16 clients, each on its own connection, calling without pause. Each call is a
    // few milliseconds long on the server, so some are always in flight on b.
    let mut clients = Vec::new();
    for _ in 0..16 {
        let mut c = gw.echo().await;
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = epoch.elapsed();
                let res = c
                    .unary(EchoRequest {
                        delay_ms: 3,
                        ..Default::default()
                    })
                    .await;
                done.push((
                    started,
                    epoch.elapsed(),
                    res.map(|r| r.into_inner().backend),
                ));
            }
            done
        }));
    }
    wait_until("calls on both servers", Duration::from_secs(10), || {
        a.stats().calls() > 50 && b.stats().calls() > 50
    })
    .await;
    let b_endpoint = gw
        .gantry
        .table()
        .endpoints()
        .values()
        .find(|e| e.address() == b.addr)
        .cloned()
        .expect("b's endpoint");
    let in_flight_on_b = b_endpoint.in_flight();
    let killed_at = epoch.elapsed();
    b.kill();
    wait_until("b ejected", Duration::from_secs(1), || {
        !b_endpoint.is_available()
    })
    .await;
    let ejected_after = epoch.elapsed() - killed_at;
    // The clients keep calling for a while after the ejection (load, not waiting).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut calls = 0;
    let mut failed = Vec::new();
    let mut after_kill_on_a = 0;
    for c in clients {
        for (started, ended, res) in c.await.expect("client") {
            calls += 1;
            match res {
                Ok(backend) if started > killed_at => {
                    assert_eq!(backend, "a", "a call started after the kill reached b");
                    after_kill_on_a += 1;
                }
                Ok(_) => {}
                Err(status) => failed.push((started, ended, status)),
            }
        }
    }
    eprintln!(
        "{calls} calls; {} failed (in flight on b at the kill: {in_flight_on_b}); b ejected {ejected_after:?} after the kill; {after_kill_on_a} later calls all on a",
        failed.len()
    );
    for (started, ended, status) in &failed {
        // Only calls that were already under way when b died.
        assert!(
            *started <= killed_at,
            "a call started {:?} after the kill failed: {status:?}",
            *started - killed_at
        );
        assert!(*ended >= killed_at, "{status:?}");
    }
    assert!(failed.len() <= 16, "{} failed", failed.len());
    assert!(after_kill_on_a > 100, "{after_kill_on_a}");
}
