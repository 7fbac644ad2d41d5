//! A demo gRPC client for gantry: calls the RouteGuide service through the
//! router over ONE HTTP/2 connection and reports which backend answered.
//!
//! ```text
//! cargo run --release --example client -- --addr http://127.0.0.1:8000 --calls 100
//! ```
//!
//! Prints e.g. `unary: 100 calls, 0 failed: a=50 b=50`, then (mode `all`)
//! one line each for ListFeatures, RecordRoute and RouteChat. Exits non-zero
//! if any call failed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

mod common;

use common::route_svc::LANDMARKS;
use common::routeguide::route_guide_client::RouteGuideClient;
use common::routeguide::{Point, Rectangle, RouteNote};

/// Which calls to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `--calls` GetFeature calls.
    Unary,
    /// One ListFeatures (server streaming).
    Server,
    /// One RecordRoute (client streaming).
    Client,
    /// One RouteChat (bidirectional streaming).
    Bidi,
    /// All of the above.
    All,
}

/// Demo RouteGuide client: one HTTP/2 connection, reports who answered.
#[derive(Debug, Parser)]
struct Args {
    /// The router (or a backend) to call.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    addr: String,
    /// Number of unary GetFeature calls.
    #[arg(long, default_value_t = 100)]
    calls: u32,
    /// Unary calls in flight at once (all on the same connection).
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// Which calls to make.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Deadline of each call, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

type Client = RouteGuideClient<Channel>;

/// An error with its causes: `transport error: tcp connect error: ...`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Code: message`, the way errors are shown.
fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn landmark(i: usize) -> Point {
    let (_, latitude, longitude) = LANDMARKS[i % LANDMARKS.len()];
    Point {
        latitude,
        longitude,
    }
}

/// `a=50 b=50`.
fn tally(counts: &BTreeMap<String, u32>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(name, n)| {
            let name = if name.is_empty() { "?" } else { name };
            format!("{name}={n}")
        })
        .collect();
    parts.join(" ")
}

/// `--calls` GetFeature calls, `--concurrency` at a time. True if all passed.
async fn unary(client: &Client, args: &Args) -> bool {
    let next = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.clamp(1, args.calls.max(1)) {
        let mut client = client.clone();
        let next = next.clone();
        let calls = args.calls;
        workers.push(tokio::spawn(async move {
            let mut served: BTreeMap<String, u32> = BTreeMap::new();
            let mut errors: BTreeMap<String, u32> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    break;
                }
                match client.get_feature(landmark(i as usize)).await {
                    Ok(reply) => *served.entry(reply.into_inner().backend).or_default() += 1,
                    Err(status) => *errors.entry(describe(&status)).or_default() += 1,
                }
            }
            (served, errors)
        }));
    }
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    for worker in workers {
        let (s, e) = worker.await.expect("unary worker panicked");
        for (k, n) in s {
            *served.entry(k).or_default() += n;
        }
        for (k, n) in e {
            *errors.entry(k).or_default() += n;
        }
    }
    let failed: u32 = errors.values().sum();
    println!(
        "unary: {} calls, {failed} failed: {}",
        args.calls,
        tally(&served)
    );
    println!(
        "unary: took {} ms at concurrency {}",
        started.elapsed().as_millis(),
        args.concurrency.max(1)
    );
    for (error, n) in &errors {
        println!("unary: {n} x {error}");
    }
    failed == 0
}

/// One ListFeatures over the whole map.
async fn server_streaming(mut client: Client) -> Result<(), Status> {
    let everything = Rectangle {
        lo: Some(Point {
            latitude: -900_000_000,
            longitude: -1_800_000_000,
        }),
        hi: Some(Point {
            latitude: 900_000_000,
            longitude: 1_800_000_000,
        }),
    };
    let mut features = client.list_features(everything).await?.into_inner();
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    while let Some(feature) = features.message().await? {
        *served.entry(feature.backend).or_default() += 1;
    }
    let total: u32 = served.values().sum();
    println!(
        "server: ListFeatures streamed {total} features: {}",
        tally(&served)
    );
    Ok(())
}

/// One RecordRoute along ten landmarks.
async fn client_streaming(mut client: Client) -> Result<(), Status> {
    let route: Vec<Point> = (0..10).map(landmark).collect();
    let sent = route.len();
    let summary = client
        .record_route(tokio_stream::iter(route))
        .await?
        .into_inner();
    println!(
        "client: RecordRoute sent {sent} points: {} points, {} features, {} m, served by {}",
        summary.point_count, summary.feature_count, summary.distance, summary.backend
    );
    Ok(())
}

/// One RouteChat of five notes.
async fn bidi_streaming(mut client: Client) -> Result<(), Status> {
    let notes: Vec<RouteNote> = (0..5)
        .map(|i| RouteNote {
            location: Some(landmark(i)),
            message: format!("note {i}"),
            backend: String::new(),
        })
        .collect();
    let sent = notes.len();
    let mut replies = client
        .route_chat(tokio_stream::iter(notes))
        .await?
        .into_inner();
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    while let Some(note) = replies.message().await? {
        *served.entry(note.backend).or_default() += 1;
    }
    let total: u32 = served.values().sum();
    println!(
        "bidi: RouteChat sent {sent} notes, received {total}: {}",
        tally(&served)
    );
    Ok(())
}

/// Runs a streaming call and reports its error; true if it passed.
async fn report(kind: &str, call: impl std::future::Future<Output = Result<(), Status>>) -> bool {
    match call.await {
        Ok(()) => true,
        Err(status) => {
            println!("{kind}: failed: {}", describe(&status));
            false
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let endpoint = match Endpoint::from_shared(args.addr.clone()) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("client: bad --addr {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let channel = match endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(args.timeout_secs))
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("client: cannot connect to {}: {}", args.addr, chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let client = RouteGuideClient::new(channel)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);

    let mut ok = true;
    let all = args.mode == Mode::All;
    if all || args.mode == Mode::Unary {
        ok &= unary(&client, &args).await;
    }
    if all || args.mode == Mode::Server {
        ok &= report("server", server_streaming(client.clone())).await;
    }
    if all || args.mode == Mode::Client {
        ok &= report("client", client_streaming(client.clone())).await;
    }
    if all || args.mode == Mode::Bidi {
        ok &= report("bidi", bidi_streaming(client.clone())).await;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
