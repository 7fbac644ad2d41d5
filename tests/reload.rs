//! Live reconfiguration: the tasks file rewritten under load loses no call, the
//! final table matches the final file, and an unchanged configuration causes no
//! rebuild.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gantry::dynamic::Status;
use support::proto::echo::EchoRequest;
use support::{h2c_task, within, Backend, Gateway, ECHO_RULE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_rewrites_under_load_lose_no_call() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    // Version i of the file: a always, b and c in turn, weights changing too.
    let version = |i: usize| -> String {
        let mut tasks = h2c_task(
            "task-a",
            &backends[0],
            "echo",
            ECHO_RULE,
            1 + (i % 3) as u32,
        );
        if i % 2 == 0 {
            tasks += &h2c_task("task-b", &backends[1], "echo", ECHO_RULE, 2);
        }
        if i % 3 != 0 {
            tasks += &h2c_task(
                "task-c",
                &backends[2],
                "echo",
                ECHO_RULE,
                1 + (i % 4) as u32,
            );
        }
        tasks
    };
    let gw = Gateway::start(&version(0)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut echo = gw.echo().await;
        let (stop, ok) = (stop.clone(), ok.clone());
        clients.spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match echo.unary(EchoRequest::default()).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => failures.push(status),
                }
            }
            failures
        });
    }

    for i in 1..=50 {
        let before = gw.gantry.generation();
        if i % 2 == 0 {
            gw.write_tasks(&version(i));
        } else {
            // In place (truncate, then write), as a careless editor or script would.
            gw.write_tasks_in_place(&version(i));
        }
        // Each version differs from the one before, so each makes a new table.
        within(
            "the rewrite to be applied",
            gw.gantry.wait_generation(before + 1),
        )
        .await;
        // Let calls run on this table before the next rewrite.
        let seen = ok.load(Ordering::Relaxed);
        support::wait_until("calls on the new table", Duration::from_secs(5), || {
            ok.load(Ordering::Relaxed) >= seen + 20
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    while let Some(res) = clients.join_next().await {
        failed.extend(res.expect("client task"));
    }
    println!(
        "50 rewrites under load: {} calls succeeded, {} failed",
        ok.load(Ordering::Relaxed),
        failed.len()
    );
    assert!(failed.is_empty(), "failed calls: {failed:?}");

    // The final table is exactly the final file: version 50 has a (weight 3) and b,
    // c (weight 3).
    let config = gw.gantry.config();
    let service = &config.services["echo"];
    assert_eq!(service.status, Status::Enabled);
    let mut servers: Vec<(String, u16, u32)> = service
        .servers
        .iter()
        .map(|s| (s.task.clone(), s.address.port(), s.weight))
        .collect();
    servers.sort();
    assert_eq!(
        servers,
        vec![
            ("task-a".to_string(), backends[0].addr.port(), 3),
            ("task-b".to_string(), backends[1].addr.port(), 2),
            ("task-c".to_string(), backends[2].addr.port(), 3),
        ]
    );
    let table = gw.gantry.table();
    assert_eq!(table.services().len(), 1);
    assert_eq!(table.services()[0].balancer.endpoints().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_configuration_is_not_rebuilt_and_state_survives_rebuilds() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1);
    let gw = Gateway::start(&tasks).await;
    let mut echo = gw.echo().await;
    for _ in 0..10 {
        echo.unary(EchoRequest::default()).await.expect("call");
    }
    let endpoint_a = gw
        .gantry
        .table()
        .endpoints()
        .values()
        .next()
        .expect("endpoint")
        .clone();
    assert_eq!(endpoint_a.requests(), 10);

    // Same configuration, different text: the provider reads it, nothing is rebuilt.
    let progress = gw.gantry.progress();
    gw.write_tasks(&format!(
        "# a comment changes the file, not the configuration\n{tasks}"
    ));
    within(
        "the watcher to read the rewritten file",
        gw.gantry.wait_progress(|p| p.updates > progress.updates),
    )
    .await;
    assert_eq!(
        gw.gantry.progress().tables,
        progress.tables,
        "no rebuild for an equal configuration"
    );

    // A real change rebuilds, and task-a's endpoint (its counters and its
    // connection) is the same object as before.
    gw.set_tasks(&(tasks + &h2c_task("task-b", &b, "echo", ECHO_RULE, 1)))
        .await;
    let table = gw.gantry.table();
    let carried = table
        .endpoints()
        .values()
        .find(|e| e.key().task == "task-a")
        .expect("task-a still there");
    assert!(
        Arc::ptr_eq(carried, &endpoint_a),
        "endpoint state was rebuilt"
    );
    assert_eq!(carried.requests(), 10);
    for _ in 0..10 {
        echo.unary(EchoRequest::default()).await.expect("call");
    }
    assert_eq!(
        a.stats().connections(),
        1,
        "the upstream connection survived the rebuild"
    );
}
