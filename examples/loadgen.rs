//! A small gRPC load generator for `bench/compare.sh`, for what h2load cannot do:
//! streams, and unary calls paced evenly at a fixed rate.
//!
//! ```text
//! # unary Echo calls at 2,000 calls/s for 10 s over 4 connections
//! loadgen --url http://127.0.0.1:8000 --mode rate --rate 2000 --seconds 10
//! # 64 bidi streams over one connection, each with one message in flight
//! loadgen --url http://127.0.0.1:8000 --mode bidi --streams 64 --seconds 10
//! # one bidi stream with 32 messages in flight
//! loadgen --url http://127.0.0.1:8000 --mode bidi --streams 1 --window 32 --seconds 10
//! # unary calls at 200 calls/s on the one connection a 64 MiB download shares
//! loadgen --url http://127.0.0.1:8000 --mode shared --conns 1 --rate 200 --download-mib 64
//! # 10,000 idle HTTP/2 connections, and what they cost process 1234 in memory
//! loadgen --url http://127.0.0.1:8000 --mode idle --conns 10000 --rss-pid 1234
//! ```
//!
//! Prints one line, `messages=N failed=F seconds=S per_second=X p50_us=A p99_us=B`:
//! messages are answered unary calls or echoed stream messages; latency is from
//! sending a call (or a stream message) to its answer. Exits non-zero when nothing
//! succeeded. Mode idle prints `connections=N rss_before_kib=A rss_after_kib=B
//! kib_per_connection=C`.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

mod common;

use common::echo::echo_client::EchoClient;
use common::echo::EchoRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Unary calls at `--rate` calls/s, spread evenly, whatever the answers take.
    Rate,
    /// `--streams` bidi streams, each keeping `--window` messages in flight.
    Bidi,
    /// Unary calls at `--rate` calls/s on the connection a server-streaming
    /// download of `--download-mib` MiB shares, until the download ends: whether
    /// small answers wait behind a bulk one.
    Shared,
    /// `--conns` HTTP/2 connections that make no call, held open while the
    /// resident memory of `--rss-pid` is read before and after.
    Idle,
}

#[derive(Debug, Parser)]
struct Args {
    /// Where to send (a router, or a backend for the direct baseline).
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// HTTP/2 connections (calls and streams are spread over them).
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Unary calls per second (mode rate).
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Concurrent bidi streams (mode bidi).
    #[arg(long, default_value_t = 64)]
    streams: usize,
    /// Messages in flight per stream (mode bidi).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// MiB the download of mode shared fetches.
    #[arg(long, default_value_t = 64)]
    download_mib: u32,
    /// The process whose memory the idle connections are charged to (mode idle).
    #[arg(long)]
    rss_pid: Option<u32>,
}

/// What one worker saw: latencies in microseconds, and failures.
#[derive(Default)]
struct Tally {
    latencies: Vec<u32>,
    failed: u64,
}

impl Tally {
    /// Counts every call's answer (latency, or a failure) until all are in.
    async fn collect(&mut self, done: &mut mpsc::UnboundedReceiver<Result<u32, ()>>) {
        while let Some(result) = done.recv().await {
            match result {
                Ok(us) => self.latencies.push(us),
                Err(()) => self.failed += 1,
            }
        }
    }

    fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.failed += other.failed;
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One thread: the generator shares a core with the backends in the bench.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let conns = if args.mode == Mode::Idle {
        0
    } else {
        args.conns.max(1)
    };
    let mut channels = Vec::with_capacity(conns);
    for _ in 0..conns {
        // One channel per connection: tonic opens one HTTP/2 connection per `connect`.
        let channel = Endpoint::from_shared(args.url.clone())?
            .tcp_nodelay(true)
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(8 << 20)
            .connect()
            .await?;
        channels.push(channel);
    }
    let payload = bytes::Bytes::from(vec![b'x'; args.size]);
    let length = Duration::from_secs(args.seconds.max(1));
    let started = Instant::now();
    let tally = match args.mode {
        Mode::Idle => return idle::run(&args.url, args.conns, args.rss_pid).await,
        Mode::Rate => rate(&channels, args.rate.max(1), length, payload).await,
        Mode::Shared => shared(&channels[0], args.rate.max(1), args.download_mib, payload).await,
        Mode::Bidi => {
            bidi(
                &channels,
                args.streams.max(1),
                args.window.max(1),
                length,
                payload,
            )
            .await
        }
    };
    let seconds = started.elapsed().as_secs_f64().min(length.as_secs_f64());
    let mut latencies = tally.latencies;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "messages={} failed={} seconds={seconds:.2} per_second={:.0} p50_us={} p99_us={}",
        latencies.len(),
        tally.failed,
        latencies.len() as f64 / seconds,
        pick(0.50),
        pick(0.99)
    );
    Ok(if latencies.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Unary calls started on a fixed schedule, each on its own task, so a slow answer
/// never delays the next call (an open loop).
async fn rate(channels: &[Channel], rate: u32, length: Duration, payload: bytes::Bytes) -> Tally {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<u32, ()>>();
    let period = Duration::from_secs(1) / rate;
    let total = u64::from(rate) * length.as_secs();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        // The timer is coarser than the period: calls due by now all go now.
        let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let mut client = EchoClient::new(channels[i as usize % channels.len()].clone());
        let request = EchoRequest {
            payload: payload.to_vec(),
            ..Default::default()
        };
        let done = done_tx.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let answered = client.unary(request).await;
            let _ = done.send(answered.map(|_| micros(sent.elapsed())).map_err(drop));
        });
    }
    drop(done_tx);
    let mut tally = Tally::default();
    tally.collect(&mut done_rx).await;
    tally
}

/// A download of `mib` MiB (64 KiB messages, read as fast as they come) and, on
/// the same connection, unary calls at `rate` calls/s until it ends.
async fn shared(channel: &Channel, rate: u32, mib: u32, payload: bytes::Bytes) -> Tally {
    use common::echo::StreamRequest;
    let mut bulk = EchoClient::new(channel.clone()).max_decoding_message_size(1 << 20);
    let request = StreamRequest {
        count: mib.saturating_mul(16).max(1),
        payload_size: 64 << 10,
        ..Default::default()
    };
    let started = Instant::now();
    let download = tokio::spawn(async move {
        let mut got = 0u64;
        let mut replies = bulk.server_stream(request).await.ok()?.into_inner();
        while let Ok(Some(r)) = replies.message().await {
            got += r.payload.len() as u64;
        }
        Some(got)
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<u32, ()>>();
    let period = Duration::from_secs(1) / rate;
    let mut next = tokio::time::Instant::now();
    while !download.is_finished() {
        tokio::time::sleep_until(next).await;
        next += period;
        let mut client = EchoClient::new(channel.clone());
        let request = EchoRequest {
            payload: payload.to_vec(),
            ..Default::default()
        };
        let done = done_tx.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let answered = client.unary(request).await;
            let _ = done.send(answered.map(|_| micros(sent.elapsed())).map_err(drop));
        });
    }
    drop(done_tx);
    let got = download.await.ok().flatten().unwrap_or(0);
    eprintln!(
        "download: {} MiB in {:.2} s",
        got >> 20,
        started.elapsed().as_secs_f64()
    );
    let mut tally = Tally::default();
    if got < u64::from(mib) << 20 {
        tally.failed += 1;
    }
    tally.collect(&mut done_rx).await;
    tally
}

/// Streams that echo messages for `length`, each keeping `window` in flight.
async fn bidi(
    channels: &[Channel],
    streams: usize,
    window: usize,
    length: Duration,
    payload: bytes::Bytes,
) -> Tally {
    let until = Instant::now() + length;
    let payload = Arc::new(payload);
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let client = EchoClient::new(channels[i % channels.len()].clone());
        tasks.push(tokio::spawn(one_stream(
            client,
            window,
            until,
            payload.clone(),
        )));
    }
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => tally.add(t),
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

async fn one_stream(
    mut client: EchoClient<Channel>,
    window: usize,
    until: Instant,
    payload: Arc<bytes::Bytes>,
) -> Tally {
    let mut tally = Tally::default();
    let (tx, rx) = mpsc::channel::<EchoRequest>(window);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let message = || EchoRequest {
        payload: payload.to_vec(),
        ..Default::default()
    };
    // Send the first window before the call: tonic waits for the response headers,
    // which the echo server sends with its first reply.
    let mut in_flight = VecDeque::with_capacity(window);
    for _ in 0..window {
        if tx.send(message()).await.is_err() {
            tally.failed += 1;
            return tally;
        }
        in_flight.push_back(Instant::now());
    }
    let mut replies = match client.bidi(outbound).await {
        Ok(r) => r.into_inner(),
        Err(_) => {
            tally.failed += 1;
            return tally;
        }
    };
    let mut tx = Some(tx);
    loop {
        match replies.message().await {
            Ok(Some(_)) => {
                if let Some(sent) = in_flight.pop_front() {
                    tally.latencies.push(micros(sent.elapsed()));
                }
                if Instant::now() < until {
                    if let Some(sender) = &tx {
                        if sender.send(message()).await.is_err() {
                            tally.failed += 1;
                            break;
                        }
                        in_flight.push_back(Instant::now());
                    }
                } else {
                    // Time is up: half-close, and count the replies still coming.
                    tx = None;
                }
                if tx.is_none() && in_flight.is_empty() {
                    break;
                }
            }
            Ok(None) => break,
            Err(_) => {
                tally.failed += 1;
                break;
            }
        }
    }
    drop(tx);
    // Let the stream end cleanly (the server's trailers).
    while let Ok(Some(_)) = replies.message().await {}
    tally
}

/// Idle HTTP/2 connections, spoken by hand: the preface, SETTINGS both ways, and one
/// PING answered, so the server has set each one up completely before memory is read.
mod idle {
    use std::net::SocketAddr;
    use std::process::ExitCode;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Semaphore;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const ACK: u8 = 1;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            0,
        ];
        out.extend_from_slice(payload);
        out
    }

    /// Resident memory of a process, from /proc, in KiB.
    fn rss_kib(pid: u32) -> std::io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
    }

    /// Reads frames until one of `kind` with exactly `flags` arrives.
    async fn read_until(
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        kind: u8,
        flags: u8,
    ) -> std::io::Result<()> {
        loop {
            while buf.len() >= 9 {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let (k, f) = (buf[3], buf[4]);
                buf.drain(..9 + len);
                if k == kind && f & ACK == flags {
                    return Ok(());
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("the server closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn open(addr: SocketAddr) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(addr).await?;
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, &[]));
        stream.write_all(&hello).await?;
        let mut buf = Vec::new();
        read_until(&mut stream, &mut buf, SETTINGS, 0).await?;
        stream.write_all(&frame(SETTINGS, ACK, &[])).await?;
        stream.write_all(&frame(PING, 0, b"gantry!!")).await?;
        read_until(&mut stream, &mut buf, PING, ACK).await?;
        Ok(stream)
    }

    pub async fn run(
        url: &str,
        conns: usize,
        pid: Option<u32>,
    ) -> Result<ExitCode, Box<dyn std::error::Error>> {
        let authority = url
            .strip_prefix("http://")
            .ok_or("--url must be http://host:port")?
            .trim_end_matches('/');
        let addr: SocketAddr = authority.parse()?;
        let before = pid.map(rss_kib).transpose()?;
        // A few hundred handshakes at a time: more would only overflow the backlog.
        let gate = Arc::new(Semaphore::new(256));
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(std::io::Error::other)?;
                open(addr).await
            }));
        }
        let mut held = Vec::with_capacity(conns);
        let mut failed = 0usize;
        let mut first_error = None;
        for task in tasks {
            match task.await {
                Ok(Ok(s)) => held.push(s),
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        let after = pid.map(rss_kib).transpose()?;
        let (b, a) = (before.unwrap_or(0), after.unwrap_or(0));
        let per = if held.is_empty() {
            0.0
        } else {
            a.saturating_sub(b) as f64 / held.len() as f64
        };
        println!(
            "connections={} failed={failed} rss_before_kib={b} rss_after_kib={a} kib_per_connection={per:.1}",
            held.len()
        );
        if let Some(e) = first_error {
            eprintln!("loadgen: {failed} connection(s) failed, the first: {e}");
        }
        drop(held);
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
