//! Passive outlier detection end to end: a server answering a fifth of its calls
//! UNAVAILABLE is ejected (failure percentage), comes back and is ejected again for
//! longer; servers failing every call are ejected on consecutive failures, never more
//! than the allowed share of the service.

use crate::support;

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use support::proto::echo::EchoRequest;
use support::{api, wait_until, Backend, Gateway, DEADLINE};

/// An h2c task of service `echo` with extra load-balancer labels.
fn task(id: &str, backend: &Backend, extra: &[(&str, &str)]) -> String {
    support::echo_task(id, backend, "", extra, &[])
}

/// The API's view of each server of `echo`, by task id.
async fn servers(gw: &Gateway) -> HashMap<String, Value> {
    let svc = api::json(&gw.api_url(), "/api/http/services/echo").await;
    svc["loadBalancer"]["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| (s["taskId"].as_str().unwrap_or("").to_string(), s.clone()))
        .collect()
}

/// Makes unary calls on one connection until `done` says stop (checked every 20
/// calls) or the deadline passes; returns calls answered by each backend and failures.
async fn call_until(
    gw: &Gateway,
    what: &str,
    mut done: impl FnMut(&HashMap<String, u32>, u32) -> bool,
) -> (HashMap<String, u32>, u32) {
    let mut client = gw.echo().await;
    let (mut by, mut failed) = (HashMap::<String, u32>::new(), 0u32);
    let until = Instant::now() + DEADLINE;
    loop {
        for _ in 0..20 {
            match client.unary(EchoRequest::default()).await {
                Ok(r) => *by.entry(r.into_inner().backend).or_default() += 1,
                Err(_) => failed += 1,
            }
        }
        if done(&by, failed) {
            return (by, failed);
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}: {by:?}, {failed} failed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_failing_a_fifth_of_its_calls_is_ejected_and_stays_out_longer_next_time() {
    let good = Backend::start("good").await;
    let sick = Backend::start("sick").await;
    // Every fifth call: never two in a row, so only the failure percentage sees it.
    sick.stats().set_fail_every(5);
    let labels = [
        ("outlier.interval", "500ms"),
        ("outlier.ejection", "1s"),
        ("outlier.slowstart", "0"),
    ];
    let gw = Gateway::start(&(task("good", &good, &labels) + &task("sick", &sick, &labels))).await;
    let table = gw.gantry.table();
    let sick_ep = table
        .endpoints()
        .values()
        .find(|e| e.key().task == "sick")
        .expect("sick endpoint")
        .clone();

    let (before, failed) = call_until(&gw, "the sick server's ejection", |_, _| {
        sick_ep.outlier().is_ejected()
    })
    .await;
    eprintln!("before the ejection: {before:?}, {failed} failed");
    assert!(failed > 0, "the sick server never failed a call");

    let view = servers(&gw).await;
    let sick_view = &view["sick"];
    assert_eq!(sick_view["health"], "DOWN", "{sick_view}");
    let reason = sick_view["healthReason"].as_str().unwrap_or("");
    assert!(reason.starts_with("ejected for 1s:"), "{reason}");
    assert!(reason.contains("calls failed"), "{reason}");
    assert_eq!(sick_view["ejections"], 1);
    assert_eq!(view["good"]["health"], "UP");

    // While it is out, every call lands on the good server and none fails.
    let mut client = gw.echo().await;
    for _ in 0..100 {
        if !sick_ep.outlier().is_ejected() {
            break; // back already (1 s): the rest of the test covers that
        }
        let r = client.unary(EchoRequest::default()).await.expect("call");
        assert_eq!(r.into_inner().backend, "good");
    }

    // It comes back, fails again, and is ejected for twice as long.
    let (_, _) = call_until(&gw, "a second ejection", |_, _| {
        sick_ep.outlier().ejections() >= 2 && sick_ep.outlier().is_ejected()
    })
    .await;
    let reason = servers(&gw).await["sick"]["healthReason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(reason.starts_with("ejected for 2s:"), "{reason}");

    let metrics = api::get(&gw.api_url(), "/metrics", None).await.2;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("gantry_outlier_ejections_total") && l.contains("task=\"sick\""))
        .unwrap_or_else(|| panic!("no ejection counter for sick in\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_failures_eject_but_never_more_than_half_the_service() {
    let backends = [
        Backend::start("b0").await,
        Backend::start("b1").await,
        Backend::start("b2").await,
        Backend::start("b3").await,
    ];
    // b0, b1 and b2 fail every call; b3 is fine. At most 50% (2 of 4) may be out.
    for b in &backends[..3] {
        b.stats().set_fail_every(1);
    }
    let labels = [("outlier.failurepercent", "0")];
    let tasks: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| task(&format!("b{i}"), b, &labels))
        .collect();
    let gw = Gateway::start(&tasks).await;
    let table = gw.gantry.table();
    let ejected = || {
        table
            .endpoints()
            .values()
            .filter(|e| e.outlier().is_ejected())
            .count()
    };
    call_until(&gw, "two ejections", |_, _| ejected() == 2).await;
    // Many more failures: still two out, and the healthy server is never one of them.
    let (_, failed) = call_until(&gw, "200 more calls", |by, failed| {
        by.values().sum::<u32>() + failed >= 200
    })
    .await;
    assert!(failed > 0);
    assert_eq!(ejected(), 2);
    let view = servers(&gw).await;
    assert_eq!(view["b3"]["health"], "UP", "{view:?}");
    let down: Vec<&String> = view
        .iter()
        .filter(|(_, s)| s["health"] == "DOWN")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(down.len(), 2, "{view:?}");
    for k in down {
        let reason = view[k]["healthReason"].as_str().unwrap_or("");
        assert!(reason.contains("5 failed calls in a row"), "{reason}");
    }
    // Turning detection off (new labels) ends the ejections at once.
    let off = [("outlier", "false")];
    let tasks: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| task(&format!("b{i}"), b, &off))
        .collect();
    gw.set_tasks(&tasks).await;
    wait_until("ejections lifted", DEADLINE, || {
        gw.gantry
            .table()
            .endpoints()
            .values()
            .all(|e| !e.outlier().is_ejected())
    })
    .await;
}
