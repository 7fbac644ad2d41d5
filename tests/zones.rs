//! Zone affinity end to end: gantry in us-east-1a keeps calls on the servers of its
//! zone while they are UP, keeps them local while half of them are, and fails over
//! to the other zone when they are not, without failing calls once the dead server
//! is DOWN.

use crate::support;

use std::collections::HashMap;

use support::proto::echo::EchoRequest;
use support::{api, wait_until, Backend, Gateway, DEADLINE};

fn task(id: &str, backend: &Backend, zone: &str, health: &str, lb: &[(&str, &str)]) -> String {
    let extra = format!("zone = \"{zone}\"\nhealth = \"{health}\"");
    support::echo_task(id, backend, &extra, lb, &[])
}

/// `n` unary calls on one connection, all expected to succeed: calls per backend.
async fn calls(gw: &Gateway, n: usize) -> HashMap<String, usize> {
    let mut client = gw.echo().await;
    let mut by = HashMap::new();
    for i in 0..n {
        let reply = client
            .unary(EchoRequest::default())
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e:?}"));
        *by.entry(reply.into_inner().backend).or_default() += 1;
    }
    by
}

fn local_share(by: &HashMap<String, usize>) -> f64 {
    let total: usize = by.values().sum();
    let local: usize = by
        .iter()
        .filter(|(k, _)| k.starts_with("a"))
        .map(|(_, v)| v)
        .sum();
    local as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_stay_in_the_zone_while_it_is_healthy_and_fail_over_when_not() {
    let a1 = Backend::start("a1").await;
    let a2 = Backend::start("a2").await;
    let b1 = Backend::start("b1").await;
    let b2 = Backend::start("b2").await;
    let affinity = [("zone.affinity", "true")];
    let tasks = |a1_health: &str| {
        task("a1", &a1, "us-east-1a", a1_health, &affinity)
            + &task("a2", &a2, "us-east-1a", "HEALTHY", &affinity)
            + &task("b1", &b1, "us-east-1b", "HEALTHY", &affinity)
            + &task("b2", &b2, "us-east-1b", "HEALTHY", &affinity)
    };
    let gw = Gateway::start_custom(
        &tasks("HEALTHY"),
        "[node]\nzone = \"us-east-1a\"",
        "[providers.file]\npath = \"tasks.toml\"\n",
    )
    .await;
    let overview = api::json(&gw.api_url(), "/api/overview").await;
    assert_eq!(overview["zone"], "us-east-1a");

    // Healthy zone: every call local, spread over both local servers.
    let by = calls(&gw, 1_000).await;
    eprintln!("zone healthy: {by:?}");
    assert!(local_share(&by) >= 0.95, "{by:?}");
    assert!(by.get("a1").copied().unwrap_or(0) > 400 && by.get("a2").copied().unwrap_or(0) > 400);

    // Half the zone UP (the default minimum): still local, all on a2.
    gw.set_tasks(&tasks("UNHEALTHY")).await;
    let by = calls(&gw, 200).await;
    eprintln!("a1 unhealthy: {by:?}");
    assert_eq!(by.get("a2").copied(), Some(200), "{by:?}");

    // a2 dies too: once it is DOWN, calls go to the other zone and none fails.
    a2.kill();
    let table = gw.gantry.table();
    wait_until("a2 DOWN", DEADLINE, || {
        table
            .endpoints()
            .values()
            .any(|e| e.key().task == "a2" && !e.is_available())
    })
    .await;
    let by = calls(&gw, 200).await;
    eprintln!("zone down: {by:?}");
    assert_eq!(local_share(&by), 0.0, "{by:?}");
    assert!(by.get("b1").copied().unwrap_or(0) > 50 && by.get("b2").copied().unwrap_or(0) > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_keeps_part_of_the_calls_local_and_no_zone_means_no_affinity() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let labels = [("zone.share", "80")];
    let tasks = task("a", &a, "us-east-1a", "HEALTHY", &labels)
        + &task("b", &b, "us-east-1b", "HEALTHY", &labels);
    let gw = Gateway::start_custom(
        &tasks,
        "[node]\nzone = \"us-east-1a\"",
        "[providers.file]\npath = \"tasks.toml\"\n",
    )
    .await;
    // 80% local, and half of the other 20% (balanced over both zones) local too.
    let by = calls(&gw, 1_000).await;
    eprintln!("share 80: {by:?}");
    assert!((0.88..=0.92).contains(&local_share(&by)), "{by:?}");

    // Without a zone for gantry (no [node] zone, no ECS metadata), plain balancing.
    let gw = Gateway::start(&tasks).await;
    let overview = api::json(&gw.api_url(), "/api/overview").await;
    assert!(overview["zone"].is_null(), "{overview}");
    let by = calls(&gw, 200).await;
    assert_eq!(
        (by.get("a"), by.get("b")),
        (Some(&100), Some(&100)),
        "{by:?}"
    );
}
