//! The churn: the tasks file rewritten every `--swap-ms` (so gantry swaps its
//! routing table) and the backends killed and restarted in turn.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::fleet::Fleet;

/// The tasks file of rewrite `n`: every rewrite differs from the one before.
pub(crate) fn tasks_text(n: u64, ports: &[u16]) -> String {
    // One server in turn is left out for one rewrite in seven.
    let left_out = (n % 7 == 6).then(|| (n / 7) as usize % ports.len());
    let (echo, alt) = if n % 2 == 0 { (200, 100) } else { (100, 200) };
    let strategy = if (n / 4) % 2 == 0 { "wrr" } else { "p2c" };
    let mut out = format!("# soak rewrite {n}\n");
    for (i, port) in ports.iter().enumerate() {
        if left_out == Some(i) {
            continue;
        }
        let weight = 1 + (n + i as u64) % 3;
        let _ = write!(
            out,
            r#"
[[task]]
id = "soak-b{i}"
ip = "127.0.0.1"
health = "HEALTHY"
ports = [{port}]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.echo.rule" = "GRPCService(`gantry.test.Echo`)"
"traefik.http.routers.echo.service" = "echo"
"traefik.http.routers.echo.priority" = "{echo}"
"traefik.http.routers.echo-alt.rule" = "PathPrefix(`/gantry.test.Echo/`)"
"traefik.http.routers.echo-alt.service" = "echo-alt"
"traefik.http.routers.echo-alt.priority" = "{alt}"
"traefik.http.routers.generation.rule" = "Path(`/soak.Generation/{n}`)"
"traefik.http.routers.generation.service" = "echo"
"traefik.http.services.echo.loadbalancer.server.scheme" = "h2c"
"traefik.http.services.echo.loadbalancer.server.weight" = "{weight}"
"traefik.http.services.echo-alt.loadbalancer.server.scheme" = "h2c"
"traefik.http.services.echo-alt.loadbalancer.strategy" = "{strategy}"
"#
        );
    }
    out
}

/// Writes the tasks file: by rename (as editors and deploy tools do) or in place.
pub(crate) async fn write_tasks(path: &Path, text: &str, by_rename: bool) -> std::io::Result<()> {
    if by_rename {
        let tmp = path.with_extension("toml.soak-tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, path).await
    } else {
        tokio::fs::write(path, text).await
    }
}

/// Rewrites the tasks file every `every` until told to stop; returns the last
/// rewrite's number.
pub(crate) async fn swap_tables(
    path: PathBuf,
    ports: Vec<u16>,
    every: Duration,
    latest: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<u64> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut n = latest.load(Ordering::SeqCst);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        n += 1;
        if stopping && n % 7 == 6 {
            // The last rewrite has every server: the end state is complete.
            n += 1;
        }
        write_tasks(&path, &tasks_text(n, &ports), n % 2 == 0).await?;
        latest.store(n, Ordering::SeqCst);
        if stopping {
            return Ok(n);
        }
    }
}

/// Kills the backends in turn, one every `every`, each down for `down`; when told
/// to stop, brings back any that is down and hands the fleet back.
pub(crate) async fn restart_backends(
    mut fleet: Fleet,
    every: Duration,
    down: Duration,
    mut stop: watch::Receiver<bool>,
) -> Fleet {
    let mut turn = 0usize;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        let i = turn % fleet.backends.len();
        turn += 1;
        fleet.kill(i).await;
        tokio::select! {
            () = tokio::time::sleep(down) => {}
            _ = stop.changed() => {}
        }
        // Binding may wait for the port a few seconds: not on a runtime thread.
        if let Err(e) = tokio::task::block_in_place(|| fleet.restart(i)) {
            eprintln!("soak: cannot restart backend b{i}: {e}");
        }
        if *stop.borrow() {
            break;
        }
    }
    for i in 0..fleet.backends.len() {
        if let Err(e) = tokio::task::block_in_place(|| fleet.restart(i)) {
            eprintln!("soak: cannot restart backend b{i}: {e}");
        }
    }
    fleet
}
