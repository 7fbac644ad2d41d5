//! The embedded demo: two route-guide backends and gantry in front of them, on the
//! file provider, with no AWS anywhere.
//!
//! `cargo run --release --example demo` starts backends `a` (127.0.0.1:50061) and `b`
//! (127.0.0.1:50062), and gantry with the repository's `config.toml` (entrypoint
//! 127.0.0.1:8000, API 127.0.0.1:8080, tasks from `examples/tasks.toml`). It makes a
//! few calls through gantry to show them balanced per call over one connection,
//! prints how to call it yourself, and runs until Ctrl-C.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::routeguide::route_guide_client::RouteGuideClient;
use common::routeguide::Point;
use tokio::net::TcpListener;

const BACKENDS: [(&str, u16); 2] = [("a", 50061), ("b", 50062)];

#[tokio::main]
async fn main() -> Result<(), common::BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config_path = root.join("config.toml");

    for (name, port) in BACKENDS {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            format!("demo backend {name}: cannot listen on {addr}: {e} (is another demo running?)")
        })?;
        tokio::spawn(common::serve_routeguide_on(listener, name.to_string()));
    }

    let loaded = gantry::config::load(&config_path)?;
    let gantry = gantry::app::start(loaded).await?;
    // The first table is published as soon as the tasks file is read.
    tokio::time::timeout(Duration::from_secs(5), gantry.wait_generation(1))
        .await
        .map_err(|_| "gantry did not load examples/tasks.toml within 5 s")?;
    let entry = gantry
        .entrypoint("web")
        .ok_or("config.toml has no entrypoint \"web\"")?;

    // A few calls through gantry, on one HTTP/2 connection: each call is balanced.
    let mut client = RouteGuideClient::connect(format!("http://{entry}")).await?;
    let mut answered = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..10 {
        let feature = client
            .get_feature(Point {
                latitude: 409_146_138 + i,
                longitude: -746_188_906,
            })
            .await?
            .into_inner();
        *answered.entry(feature.backend).or_default() += 1;
    }
    let split: Vec<String> = answered.iter().map(|(b, n)| format!("{b}={n}")).collect();

    println!();
    println!("gantry demo is running");
    println!("  entrypoint   http://{entry}  (h2c and HTTP/1.1)");
    if let Some(api) = gantry.api_addr() {
        println!("  dashboard    http://{api}/");
        println!("  api          http://{api}/api/overview   metrics http://{api}/metrics");
    }
    println!("  backends     a=127.0.0.1:50061 b=127.0.0.1:50062, tasks from examples/tasks.toml");
    println!(
        "  10 calls over one connection were answered by: {}",
        split.join(" ")
    );
    println!();
    println!("Call through gantry yourself (in another terminal):");
    println!("  cargo run --release --example client -- --addr http://{entry} --calls 100");
    println!("Edit examples/tasks.toml (weights, rules) and gantry picks it up within a second.");
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c().await?;
    gantry.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
