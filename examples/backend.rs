//! A demo gRPC backend for gantry: serves `routeguide.RouteGuide` and
//! `gantry.test.Echo` over h2c, every answer tagged with the backend's name.
//!
//! ```text
//! cargo run --example backend -- --name a --addr 127.0.0.1:50061
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;

mod common;

/// Demo gRPC backend (RouteGuide + Echo over h2c).
#[derive(Debug, Parser)]
struct Args {
    /// Name put in every answer, so clients can see who served them.
    #[arg(long, default_value = "backend")]
    name: String,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:50061")]
    addr: SocketAddr,
    /// Serve on one thread (the benchmark's backends).
    #[arg(long)]
    single_thread: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.single_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match runtime {
        Ok(rt) => rt.block_on(serve(args)),
        Err(e) => {
            eprintln!("backend: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> ExitCode {
    let listener = match TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("backend {}: cannot listen on {}: {e}", args.name, args.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(args.addr);
    println!(
        "backend {}: serving routeguide.RouteGuide and gantry.test.Echo on {local} (h2c)",
        args.name
    );
    match common::serve_routeguide_on(listener, args.name.clone()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backend {}: {e}", args.name);
            ExitCode::FAILURE
        }
    }
}
