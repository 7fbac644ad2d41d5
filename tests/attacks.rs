//! HTTP/2 and HTTP/1.1 attacks, with a raw client: rapid reset (CVE-2023-44487),
//! CONTINUATION floods, SETTINGS, PING, WINDOW_UPDATE and empty-frame floods and
//! slowloris.
//! Each must get the abuser's connection closed (GOAWAY ENHANCE_YOUR_CALM where
//! HTTP/2 has a way to say so) while a well-behaved client on another connection
//! of the same entrypoint keeps its calls under 10 ms at p99.
//!
//! A test binary of its own (Cargo.toml), its tests one at a time: latency is
//! measured, and nothing else may share the machine meanwhile.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use gantry::http2::frame::{self, flag, kind, Head, Reason, HEAD_LEN};
use gantry::http2::hpack::{Encoder, Pseudo};
use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::proto::echo::EchoRequest;
use crate::support::{api, backend, echo_task, Backend, Gateway, DEADLINE};

/// The edge entrypoint's count of connections closed for `reason` (API).
async fn closed(t: &Target, reason: &str) -> u64 {
    let eps = api::json(&t.gw.api_url(), "/api/entrypoints").await;
    eps.as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "edge"))
        .and_then(|e| e["closedConnections"][reason].as_u64())
        .unwrap_or_else(|| panic!("no closedConnections.{reason} for edge in {eps}"))
}

/// One attack at a time: each measures latency, which other attacks would skew.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The entrypoint under attack: a 1 s header read timeout keeps slowloris tests
/// short; every other limit is gantry's default.
const EDGE: &str =
    "[entrypoints.edge]\naddress = \"127.0.0.1:0\"\nheader_read_timeout_seconds = 1\n";
const FILE: &str = "[providers.file]\npath = \"tasks.toml\"\n";

struct Target {
    gw: Gateway,
    edge: SocketAddr,
    _backend: Backend,
}

async fn target() -> Target {
    let backend = Backend::start("a").await;
    let gw = Gateway::start_custom(&echo_task("a", &backend, "", &[], &[]), EDGE, FILE).await;
    let edge = gw.gantry.entrypoint("edge").expect("edge entrypoint");
    Target {
        gw,
        edge,
        _backend: backend,
    }
}

/// How an abuser's connection ended.
#[derive(Debug)]
struct Ended {
    /// The GOAWAY gantry sent, if any.
    goaway: Option<(Reason, String)>,
    /// The connection was closed (EOF or reset) within the deadline.
    closed: bool,
    /// From the first attack byte to the close.
    took: Duration,
    /// RST_STREAM frames gantry sent before it closed.
    resets: usize,
}

/// Runs `attack` (which writes until it fails or is told to stop) against `addr`
/// while reading what gantry sends, until gantry closes the connection.
async fn abuse<F, Fut>(addr: SocketAddr, attack: F) -> Ended
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, wr) = stream.into_split();
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writer = tokio::spawn(attack(wr, done.clone()));
    let mut buf = BytesMut::new();
    let mut goaway = None;
    let mut resets = 0;
    let closed = loop {
        let read = tokio::time::timeout(DEADLINE, rd.read_buf(&mut buf)).await;
        match read {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
        }
        while buf.len() >= HEAD_LEN {
            let mut h = [0u8; HEAD_LEN];
            h.copy_from_slice(&buf[..HEAD_LEN]);
            let head = Head::parse(&h);
            if buf.len() < HEAD_LEN + head.len {
                break;
            }
            buf.advance(HEAD_LEN);
            let payload = buf.split_to(head.len);
            if head.kind == kind::RST_STREAM {
                resets += 1;
            }
            if head.kind == kind::GOAWAY && payload.len() >= 8 {
                goaway = Some((
                    Reason(frame::read_u32(&payload[4..])),
                    String::from_utf8_lossy(&payload[8..]).into_owned(),
                ));
            }
        }
    };
    let took = started.elapsed();
    done.store(true, Ordering::Release);
    let _ = writer.await;
    Ended {
        goaway,
        closed,
        took,
        resets,
    }
}

/// Latencies of unary calls a well-behaved client makes on its own connection
/// while `attack` runs (and at least `min_calls` of them).
async fn good_client_during<Fut>(addr: SocketAddr, attack: Fut) -> (Ended, Vec<Duration>)
where
    Fut: std::future::Future<Output = Ended>,
{
    let mut client = backend::echo_client(&format!("http://{addr}"))
        .await
        .expect("good client connects");
    for _ in 0..20 {
        client
            .unary(EchoRequest::default())
            .await
            .expect("warm-up call");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_calls = stop.clone();
    let calls = tokio::spawn(async move {
        let mut lat = Vec::new();
        while !stop_calls.load(Ordering::Acquire) || lat.len() < 200 {
            let t = Instant::now();
            client
                .unary(EchoRequest::default())
                .await
                .expect("the good client's call succeeds during the attack");
            lat.push(t.elapsed());
        }
        lat
    });
    let ended = attack.await;
    stop.store(true, Ordering::Release);
    let lat = calls.await.expect("good client");
    (ended, lat)
}

fn p99(lat: &mut [Duration]) -> Duration {
    lat.sort();
    lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
}

/// The abuser was cut off with ENHANCE_YOUR_CALM, the good client's p99 < 10 ms.
fn check(name: &str, ended: &Ended, lat: &mut [Duration], reason: Option<Reason>) {
    let n = lat.len();
    let p = p99(lat);
    eprintln!(
        "{name}: abuser closed={} after {:?} goaway={:?}; good client {n} calls, p50 {:?} p99 {p:?} max {:?}",
        ended.closed,
        ended.took,
        ended.goaway,
        lat[n / 2],
        lat[n - 1]
    );
    assert!(
        ended.closed,
        "{name}: the abuser was not disconnected: {ended:?}"
    );
    if let Some(reason) = reason {
        assert_eq!(
            ended.goaway.as_ref().map(|g| g.0),
            Some(reason),
            "{name}: {ended:?}"
        );
    }
    assert!(
        p < Duration::from_millis(10),
        "{name}: good client's p99 was {p:?}"
    );
}

fn preface() -> Vec<u8> {
    let mut out = frame::PREFACE.to_vec();
    frame::put_settings(&mut out, &[]);
    out
}

fn request_block(enc: &mut Encoder) -> Vec<u8> {
    let mut b = Vec::new();
    enc.start_block(&mut b);
    enc.encode_pseudo(Pseudo::Method, b"POST", &mut b);
    enc.encode_pseudo(Pseudo::Scheme, b"http", &mut b);
    enc.encode_pseudo(Pseudo::Authority, b"gantry.test", &mut b);
    enc.encode_pseudo(Pseudo::Path, b"/gantry.test.Echo/Unary", &mut b);
    enc.encode_field(
        &http::header::CONTENT_TYPE,
        &HeaderValue::from_static("application/grpc"),
        &mut b,
    );
    b
}

/// Writes `batch()` over and over until gantry closes or the test says stop.
async fn flood(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    done: Arc<AtomicBool>,
    first: Vec<u8>,
    mut batch: impl FnMut() -> Vec<u8> + Send,
) {
    if wr.write_all(&first).await.is_err() {
        return;
    }
    let until = Instant::now() + DEADLINE;
    while !done.load(Ordering::Acquire) && Instant::now() < until {
        if wr.write_all(&batch()).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Floods the edge with `first`, then `batch()` over and over, while a good client
/// calls on another connection; checks the abuser got ENHANCE_YOUR_CALM and the
/// good client's p99.
async fn flood_attack<B>(t: &Target, name: &str, first: Vec<u8>, batch: B) -> Ended
where
    B: FnMut() -> Vec<u8> + Send + 'static,
{
    let attack = abuse(t.edge, move |wr, done| flood(wr, done, first, batch));
    let (ended, mut lat) = good_client_during(t.edge, attack).await;
    check(name, &ended, &mut lat, Some(Reason::ENHANCE_YOUR_CALM));
    ended
}

/// The preface, then a request's HEADERS on stream 1 (with `flags`).
fn preface_and_headers(flags: u8) -> Vec<u8> {
    let mut out = preface();
    let block = request_block(&mut Encoder::new());
    frame::put_head(&mut out, block.len(), kind::HEADERS, flags, 1);
    out.extend_from_slice(&block);
    out
}

/// `n` frames that `put` writes, as one batch.
fn frames(n: usize, mut put: impl FnMut(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        put(&mut out);
    }
    out
}

/// A whole request on `id` (HEADERS, then its one message with END_STREAM),
/// routed to the abused server.
fn whole_request(out: &mut Vec<u8>, enc: &mut Encoder, id: u32) {
    let mut block = request_block(enc);
    enc.encode_field(
        &http::HeaderName::from_static("x-abuser"),
        &HeaderValue::from_static("yes"),
        &mut block,
    );
    frame::put_head(out, block.len(), kind::HEADERS, flag::END_HEADERS, id);
    out.extend_from_slice(&block);
    let msg = crate::support::raw::echo_message(b"made you reset", 0);
    frame::put_data(out, id, &msg, true);
}

/// MadeYouReset (CVE-2025-8671): whole requests, each followed by a frame that
/// makes *gantry* reset its stream. Those resets count against the abuser like
/// the ones it sends: GOAWAY ENHANCE_YOUR_CALM after at most 1,000 of them, and
/// no more calls than that reach the server.
async fn made_you_reset(name: &str, provoke: fn(&mut Vec<u8>, u32)) {
    let _one = ONE_AT_A_TIME.lock().await;
    // The abuser's calls go to a server of their own, so what reaches it is theirs.
    let good = Backend::start("a").await;
    let abused = Backend::start("abused").await;
    let tasks = echo_task("a", &good, "", &[], &[])
        + &crate::support::h2c_task(
            "abused",
            &abused,
            "abused",
            &format!("{} && Header(`x-abuser`, `yes`)", crate::support::ECHO_RULE),
            1,
        );
    let gw = Gateway::start_custom(&tasks, EDGE, FILE).await;
    let edge = gw.gantry.entrypoint("edge").expect("edge entrypoint");
    let t = Target {
        gw,
        edge,
        _backend: good,
    };
    let mut enc = Encoder::new();
    let mut id = 1u32;
    let ended = flood_attack(&t, name, preface(), move || {
        frames(50, |out| {
            whole_request(out, &mut enc, id);
            provoke(out, id);
            id += 2;
        })
    })
    .await;
    let debug = ended
        .goaway
        .as_ref()
        .map(|g| g.1.clone())
        .unwrap_or_default();
    assert!(debug.contains("rapid reset"), "{name}: {debug}");
    assert!(
        ended.resets <= 1000,
        "{name}: gantry reset {} streams before it closed the connection",
        ended.resets
    );
    assert!(ended.resets > 0, "{name}: the frames provoked no reset");
    let reached = abused.stats().calls();
    eprintln!(
        "{name}: gantry reset {} streams, {reached} calls reached the server",
        ended.resets
    );
    assert!(
        reached <= 1000,
        "{name}: {reached} calls reached the server"
    );
    assert_eq!(closed(&t, "flood").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_you_reset_by_window_overflow_gets_the_abuser_cut_off() {
    // A WINDOW_UPDATE taking the stream's send window past 2^31-1: gantry must
    // reset the stream with FLOW_CONTROL_ERROR (RFC 9113 §6.9.1).
    made_you_reset("MadeYouReset (window overflow)", |out, id| {
        frame::put_window_update(out, id, frame::MAX_WINDOW);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_you_reset_by_data_after_end_stream_gets_the_abuser_cut_off() {
    // DATA on a half-closed (remote) stream: a stream error STREAM_CLOSED (§5.1).
    made_you_reset("MadeYouReset (DATA after END_STREAM)", |out, id| {
        frame::put_data(out, id, b"more", false);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_the_abuser_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = target().await;
    let mut enc = Encoder::new();
    let mut id = 1u32;
    // HEADERS then RST_STREAM(CANCEL) at once, 50 streams a write.
    let ended = flood_attack(&t, "rapid reset", preface(), move || {
        frames(50, |out| {
            let block = request_block(&mut enc);
            frame::put_head(out, block.len(), kind::HEADERS, flag::END_HEADERS, id);
            out.extend_from_slice(&block);
            frame::put_rst(out, id, Reason::CANCEL);
            id += 2;
        })
    })
    .await;
    let debug = ended.goaway.map(|g| g.1).unwrap_or_default();
    assert!(debug.contains("rapid reset"), "{debug}");
    assert_eq!(closed(&t, "flood").await, 1);
    let metrics = api::get(&t.gw.api_url(), "/metrics", None).await.2;
    assert!(
        metrics.contains(
            "gantry_entrypoint_connections_closed_total{entrypoint=\"edge\",reason=\"flood\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_gets_the_abuser_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = target().await;
    // A header block that never ends: HEADERS without END_HEADERS, then
    // CONTINUATION frames of a few bytes each, forever.
    flood_attack(&t, "CONTINUATION flood", preface_and_headers(0), || {
        frames(16, |out| {
            frame::put_head(out, 4, kind::CONTINUATION, 0, 1);
            out.extend_from_slice(&[0x40, 0x01, b'x', 0x00]);
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_gets_the_abuser_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = target().await;
    flood_attack(&t, "SETTINGS flood", preface(), || {
        frames(100, |out| {
            frame::put_settings(out, &[(frame::setting::INITIAL_WINDOW_SIZE, 65_535)])
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_empty_data_and_window_update_floods_get_the_abuser_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = target().await;
    let mut i = 0u8;
    flood_attack(&t, "PING flood", preface(), move || {
        frames(100, |out| {
            i = i.wrapping_add(1);
            frame::put_ping(out, false, [i; 8]);
        })
    })
    .await;
    // Empty DATA frames on an open stream: nothing to forward, work all the same.
    flood_attack(
        &t,
        "empty DATA flood",
        preface_and_headers(flag::END_HEADERS),
        || frames(100, |out| frame::put_head(out, 0, kind::DATA, 0, 1)),
    )
    .await;
    // WINDOW_UPDATEs with no data flowing to pay for them.
    flood_attack(&t, "WINDOW_UPDATE flood", preface(), || {
        frames(100, |out| frame::put_window_update(out, 0, 1))
    })
    .await;
}

/// Sends `bytes` one at a time, `every` apart, until gantry closes or they run out.
async fn trickle(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    done: Arc<AtomicBool>,
    first: Vec<u8>,
    bytes: Vec<u8>,
    every: Duration,
) {
    if wr.write_all(&first).await.is_err() {
        return;
    }
    for b in bytes {
        if done.load(Ordering::Acquire) || wr.write_all(&[b]).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
    // Out of bytes: hold the connection open until gantry closes it.
    while !done.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_in_every_form_is_cut_off_at_the_header_read_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t = target().await;
    let every = Duration::from_millis(100);

    // HTTP/2: a header block sent a byte every 100 ms, so the connection is never
    // idle and the block never completes.
    let (ended, mut lat) = good_client_during(
        t.edge,
        abuse(t.edge, move |wr, done| async move {
            let mut enc = Encoder::new();
            let block = request_block(&mut enc);
            let mut first = preface();
            frame::put_head(&mut first, block.len(), kind::HEADERS, 0, 1);
            first.extend_from_slice(&block);
            let mut rest = Vec::new();
            frame::put_head(&mut rest, 200, kind::CONTINUATION, flag::END_HEADERS, 1);
            rest.extend(std::iter::repeat_n(b'a', 200));
            trickle(wr, done, first, rest, every).await
        }),
    )
    .await;
    check(
        "HTTP/2 slowloris",
        &ended,
        &mut lat,
        Some(Reason::ENHANCE_YOUR_CALM),
    );
    assert!(ended.took < Duration::from_secs(3), "{ended:?}");

    // The connection preface itself, a byte at a time.
    let (ended, mut lat) = good_client_during(
        t.edge,
        abuse(t.edge, move |wr, done| async move {
            trickle(wr, done, Vec::new(), frame::PREFACE.to_vec(), every).await
        }),
    )
    .await;
    check("slow preface", &ended, &mut lat, None);
    assert!(ended.took < Duration::from_secs(3), "{ended:?}");

    // HTTP/1.1: a request head whose headers never end.
    let (ended, mut lat) = good_client_during(
        t.edge,
        abuse(t.edge, move |wr, done| async move {
            let first = b"GET / HTTP/1.1\r\nHost: gantry.test\r\n".to_vec();
            let rest = b"X-a: b\r\n".repeat(100);
            trickle(wr, done, first, rest, every).await
        }),
    )
    .await;
    check("HTTP/1.1 slowloris", &ended, &mut lat, None);
    assert!(ended.took < Duration::from_secs(3), "{ended:?}");
    assert_eq!(closed(&t, "header_timeout").await, 3);
    assert_eq!(closed(&t, "flood").await, 0);
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_at_once() {
    let backend = Backend::start("a").await;
    let extra = "[entrypoints.small]\naddress = \"127.0.0.1:0\"\nmax_connections = 2\n";
    let gw = Gateway::start_custom(&echo_task("a", &backend, "", &[], &[]), extra, FILE).await;
    let small = gw.gantry.entrypoint("small").expect("small");
    let url = format!("http://{small}");
    let mut a = backend::echo_client(&url).await.expect("first");
    let mut b = backend::echo_client(&url).await.expect("second");
    a.unary(EchoRequest::default()).await.expect("first works");
    b.unary(EchoRequest::default()).await.expect("second works");
    // A third is accepted and closed before a byte is read.
    let mut third = TcpStream::connect(small).await.expect("tcp");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, third.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the third connection got bytes instead of a close");
    let eps = api::json(&gw.api_url(), "/api/entrypoints").await;
    let refused = eps
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "small"))
        .map(|e| e["closedConnections"]["max_connections"].clone());
    assert_eq!(refused, Some(serde_json::json!(1)), "{eps}");
    // Once one closes, a new one is served.
    drop(a);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(mut c) = backend::echo_client(&url).await {
            if c.unary(EchoRequest::default()).await.is_ok() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no slot freed within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.unary(EchoRequest::default())
        .await
        .expect("second still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_client_cancelling_half_its_calls_is_not_cut_off() {
    use crate::support::raw::{echo_message, Got, Raw};
    let _one = ONE_AT_A_TIME.lock().await;
    let t = target().await;
    let mut raw = Raw::connect(t.edge, &[]).await;
    // The answers' bytes are never given back otherwise.
    raw.window_update(0, 1 << 30).await;
    // Twice the reset budget, each reset after a completed call: a client that
    // cancels half its calls (hedging, deadlines) is busy, not abusive.
    let resets = 2 * 400;
    let mut id = 1;
    for _ in 0..resets {
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(id, &block, false).await;
        raw.data(id, &echo_message(b"hi", 0), true).await;
        let done = id;
        raw.until(
            "the call's trailers",
            |g| matches!(g, Got::Headers { stream, end: true, .. } if *stream == done),
        )
        .await;
        id += 2;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(id, &block, false).await;
        let mut rst = Vec::new();
        frame::put_rst(&mut rst, id, Reason::CANCEL);
        raw.send(&rst).await;
        id += 2;
    }
    // Still served.
    let block = raw.grpc_block("Unary", &[]);
    raw.headers(id, &block, false).await;
    raw.data(id, &echo_message(b"hi", 0), true).await;
    let last = id;
    raw.until(
        "the last call's trailers",
        |g| matches!(g, Got::Headers { stream, end: true, .. } if *stream == last),
    )
    .await;
}
