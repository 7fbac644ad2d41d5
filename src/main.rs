//! The `gantry` command: run the router, or check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gantry::dynamic::{DynamicConfig, Status};

/// Every call allocates a few small, short-lived objects (h2 frames, header maps,
/// futures) across threads; mimalloc's per-thread free lists serve that pattern at
/// a fraction of glibc malloc's cost (measured with bench/compare.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gantry",
    version,
    about = "A gRPC-aware router for AWS ECS, configured by Docker labels"
)]
struct Cli {
    /// The static configuration file.
    #[arg(long, short, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Build the routing configuration once from every provider, print routers,
    /// services, servers, every error and every warning (ignored labels). Exit 0:
    /// no error (warnings allowed); 1: label or provider errors; 2: the config file
    /// itself is unusable.
    Check {
        /// Print the configuration as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Fail (exit 1) on warnings too: labels that were ignored.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gantry: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let loaded = gantry::config::load(&cli.config)?;
    match cli.command {
        Some(Command::Check { json, strict }) => {
            gantry::app::check_files(&loaded).map_err(|e| anyhow::anyhow!(e))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let config = runtime.block_on(gantry::app::check(&loaded));
            if json {
                println!("{}", serde_json::to_string_pretty(&config)?);
            } else {
                print!("{}", render(&config));
            }
            let failing = config.error_count() + if strict { config.warning_count() } else { 0 };
            Ok(if failing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        None => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .or_else(|_| tracing_subscriber::EnvFilter::try_new(&loaded.config.log.level))
                .context("log.level")?;
            tracing_subscriber::fmt().with_env_filter(filter).init();
            let threads = loaded
                .config
                .runtime
                .worker_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            // One thread: tokio's current-thread scheduler, which wakes tasks without
            // the cross-thread queues and notifications a one-worker pool still pays.
            let runtime = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            }
            .context("starting the runtime")?;
            runtime.block_on(gantry::app::run(loaded))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The human-readable form of `gantry check`.
fn render(config: &DynamicConfig) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let status = |s: Status| match s {
        Status::Enabled => "enabled",
        Status::Disabled => "DISABLED",
    };
    let _ = writeln!(out, "routers ({}):", config.routers.len());
    for (name, r) in &config.routers {
        let eps = if r.entry_points.is_empty() {
            "all".to_string()
        } else {
            r.entry_points.join(",")
        };
        let _ = writeln!(
            out,
            "  {name} [{}] rule={} priority={} service={} entrypoints={eps}",
            status(r.status),
            r.rule,
            r.priority,
            r.service
        );
        if !r.middlewares.is_empty() {
            let _ = writeln!(out, "    middlewares: {}", r.middlewares.join(" -> "));
        }
    }
    if !config.middlewares.is_empty() {
        let _ = writeln!(out, "middlewares ({}):", config.middlewares.len());
        for (name, m) in &config.middlewares {
            let kind = if m.kind.is_empty() { "?" } else { &m.kind };
            let _ = writeln!(
                out,
                "  {name} [{}] type={kind} options={} used by: {}",
                status(m.status),
                m.options.len(),
                if m.used_by.is_empty() {
                    "-".to_string()
                } else {
                    m.used_by.join(", ")
                }
            );
        }
    }
    let _ = writeln!(out, "services ({}):", config.services.len());
    for (name, s) in &config.services {
        let _ = writeln!(
            out,
            "  {name} [{}] {} server(s)",
            status(s.status),
            s.servers.len()
        );
        for srv in &s.servers {
            let _ = writeln!(
                out,
                "    {} weight={} task={} zone={} health={:?}",
                srv.url,
                srv.weight,
                srv.task,
                srv.zone.as_deref().unwrap_or("-"),
                srv.health
            );
        }
    }
    let _ = writeln!(out, "errors ({}):", config.error_count());
    for e in config.errors.iter().filter(|e| e.is_error()) {
        let _ = writeln!(out, "  {e}");
    }
    let _ = writeln!(
        out,
        "warnings ({}): labels ignored, nothing disabled",
        config.warning_count()
    );
    for e in config.errors.iter().filter(|e| !e.is_error()) {
        let _ = writeln!(out, "  {e}");
    }
    out
}
