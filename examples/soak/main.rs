//! The soak test's driver (`scripts/soak.sh` starts gantry and runs it): a million
//! gRPC calls of all four kinds through gantry while the tasks file its file
//! provider watches is rewritten every 100 ms and backends are killed and
//! restarted, then a report.
//!
//! - **Backends**: `--backends` Echo servers (`examples/common`'s service), each on
//!   its own thread and tokio runtime. Killing one drops that runtime: its
//!   listener and every connection close at once, as when a process dies, and the
//!   calls on them end. It comes back on the same port after `--down-ms`.
//! - **Table swaps**: every `--swap-ms` the tasks file is rewritten (by rename and
//!   in place, alternately) so the configuration changes every time: server
//!   weights, which of two routers (two services) wins by priority, the p2c/wrr
//!   strategy of one service, a server left out now and then, and a router whose
//!   rule names the rewrite, which tells from the API how far behind gantry is.
//! - **Attribution**: every call carries `x-soak-id`; a backend notes which ids
//!   reached it. A failed call is explained only if it was in flight on a backend
//!   while that backend was killed (the backend saw it, or gantry's message names
//!   that backend's address), or started within `--kill-grace-ms` after the kill,
//!   before gantry could have read the connection's end. Every other failure, and
//!   any answer with the wrong content, is unexplained.
//! - **Memory**: gantry's VmRSS is read every second; the end (after the last call)
//!   must stay under `warm-up × --rss-factor + --rss-slack-mib`, warm-up being the
//!   sample when `--warmup-percent` of the calls are done.
//!
//! Exit status: 0 pass, 1 fail (the report's last line says why), 2 setup error.
//! Loopback only: every address it binds or dials is 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use parking_lot::Mutex;
use tokio::sync::watch;

#[path = "../common/mod.rs"]
mod common;

mod calls;
mod fleet;
mod probe;
mod report;
mod tables;

use calls::{call, connect, worker, Kind, Load};
use fleet::{Fleet, Seen};
use probe::{api, proc, sample};
use report::{After, Report};
use tables::{restart_backends, swap_tables, tasks_text, write_tasks};

/// A soak test of gantry: calls of every kind through it while its table swaps
/// and its backends restart.
#[derive(Debug, Parser)]
struct Args {
    /// gantry's h2c entrypoint, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// gantry's API address (`[api] address`).
    #[arg(long)]
    api: SocketAddr,
    /// The tasks file gantry's file provider watches (rewritten every --swap-ms).
    #[arg(long)]
    tasks: PathBuf,
    /// gantry's process id: its memory is read from /proc.
    #[arg(long)]
    gantry_pid: u32,
    /// Calls to make in all.
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Stop making calls after this long, done or not.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// Echo backends.
    #[arg(long, default_value_t = 4)]
    backends: usize,
    /// Calls in flight at any time.
    #[arg(long, default_value_t = 48)]
    concurrency: usize,
    /// HTTP/2 connections to gantry.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Rewrite the tasks file this often (milliseconds).
    #[arg(long, default_value_t = 100)]
    swap_ms: u64,
    /// Kill a backend this often (milliseconds; the next one in turn).
    #[arg(long, default_value_t = 3000)]
    restart_ms: u64,
    /// How long a killed backend stays down (milliseconds).
    #[arg(long, default_value_t = 500)]
    down_ms: u64,
    /// Calls after which the warm-up is over (percent of --calls).
    #[arg(long, default_value_t = 10)]
    warmup_percent: u64,
    /// Resident memory at the end may be at most warm-up × this + --rss-slack-mib.
    #[arg(long, default_value_t = 1.2)]
    rss_factor: f64,
    #[arg(long, default_value_t = 8)]
    rss_slack_mib: u64,
    /// How long after a kill a call may still start and fail on the killed
    /// backend (gantry has not read the connection's end yet), milliseconds.
    #[arg(long, default_value_t = 100)]
    kill_grace_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the soak and prints the report; true if it passed.
async fn run(args: Args) -> Result<bool, String> {
    let loopback = |ip: IpAddr| ip == IpAddr::V4(Ipv4Addr::LOCALHOST);
    if !loopback(args.api.ip()) || !args.url.starts_with("http://127.0.0.1:") {
        return Err("gantry must be on 127.0.0.1 (loopback only)".into());
    }
    if args.backends == 0 || args.backends > 200 || args.conns == 0 || args.concurrency == 0 {
        return Err("--backends (1–200), --conns and --concurrency must be positive".into());
    }
    let t0 = Instant::now();
    let seen = Arc::new(Seen::new(args.calls));
    let fleet = Fleet::start(args.backends, seen.clone(), t0)
        .map_err(|e| format!("cannot start the backends: {e}"))?;
    let ports: Vec<u16> = (0..args.backends).map(|i| fleet.port_of(i)).collect();
    let names: Vec<String> = fleet.backends.iter().map(|b| b.name.clone()).collect();

    // First table, and a first call through it.
    let gen_before = api::generation(args.api).await?;
    write_tasks(&args.tasks, &tasks_text(0, &ports), true)
        .await
        .map_err(|e| format!("cannot write {}: {e}", args.tasks.display()))?;
    let clients = connect(&args.url, args.conns).await?;
    let ready = Instant::now() + Duration::from_secs(20);
    loop {
        match call(Kind::Unary, clients[0].clone(), u64::MAX).await {
            Ok(_) => break,
            Err(e) if Instant::now() > ready => {
                return Err(format!("no call through gantry succeeds: {e:?}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let errors = api::get(args.api, "/api/errors").await?;
    if errors.as_array().is_some_and(|e| !e.is_empty()) {
        return Err(format!(
            "gantry reports errors in the soak's tasks file: {errors}"
        ));
    }

    let load = Arc::new(Load {
        t0,
        total: args.calls,
        stop_at: Instant::now() + Duration::from_secs(args.max_seconds),
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        ok: Default::default(),
        failed: Default::default(),
        failures: Mutex::new(Vec::new()),
        names,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let latest = Arc::new(AtomicU64::new(0));
    let gen_start = api::generation(args.api).await?;
    let swapper = tokio::spawn(swap_tables(
        args.tasks.clone(),
        ports.clone(),
        Duration::from_millis(args.swap_ms.max(1)),
        latest.clone(),
        stop_rx.clone(),
    ));
    let restarter = tokio::spawn(restart_backends(
        fleet,
        Duration::from_millis(args.restart_ms.max(1)),
        Duration::from_millis(args.down_ms),
        stop_rx.clone(),
    ));
    let sampler = tokio::spawn(sample(
        load.clone(),
        args.gantry_pid,
        args.api,
        latest.clone(),
        stop_rx.clone(),
    ));
    let load_started = Instant::now();
    let clients = Arc::new(clients);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(load.clone(), clients.clone())))
        .collect();
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let all_done = futures_util::future::join_all(workers);
    tokio::pin!(all_done);
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            _ = progress.tick() => eprintln!(
                "soak: {:>4.0} s  {} calls done, {} failed, gantry RSS {:.1} MiB",
                load_started.elapsed().as_secs_f64(),
                load.done.load(Ordering::Relaxed),
                load.failed.iter().map(|f| f.load(Ordering::Relaxed)).sum::<u64>(),
                proc::rss_kib(args.gantry_pid).unwrap_or(0) as f64 / 1024.0,
            ),
        }
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    let end_rss = proc::rss_kib(args.gantry_pid);
    let end_fds = proc::fds(args.gantry_pid);
    let _ = stop_tx.send(true);
    let last_rewrite = swapper
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot rewrite the tasks file: {e}"))?;
    let fleet = restarter.await.map_err(|e| e.to_string())?;
    let samples = sampler.await.map_err(|e| e.to_string())?;

    // Let gantry take the last rewrite and see the restarted backends again.
    let settle = Instant::now() + Duration::from_secs(10);
    let after = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = After::read(args.api, last_rewrite).await;
        if after.settled(args.backends) || Instant::now() > settle {
            break after;
        }
    };
    let gen_end = api::generation(args.api).await?;

    let report = Report {
        args: &args,
        load: &load,
        load_seconds,
        seen: &seen,
        fleet: &fleet,
        samples: &samples,
        end_rss,
        end_fds,
        rewrites: last_rewrite,
        generations: (gen_before, gen_start, gen_end),
        after: &after,
    };
    Ok(report.print())
}
