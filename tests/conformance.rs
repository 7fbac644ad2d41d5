//! RFC 9113 conformance, frame by frame, on the h2c entrypoint and on the TLS one
//! (h2 by ALPN): a raw client breaks one rule at a time and checks the exact error
//! that comes back. The cases follow h2spec's list (its ids are in each test's
//! name: `s5_1_3` is h2spec's http2/5.1/3), which mirrors the RFC's sections; the
//! ones here are those gantry once failed, the rules its stream state machine
//! (`src/http2/stream.rs`) decides, and the four ways real clients end a request.

use std::net::SocketAddr;
use std::time::Duration;

use gantry::http2::frame::{self, flag, kind, setting, Reason};

use crate::support::pki::{self, TestCa};
use crate::support::raw::{echo_message, field, Got, Raw};
use crate::support::{echo_task, Backend, Gateway};

/// A gateway with an h2c and a TLS entrypoint, both routing Echo to one backend.
struct Suite {
    backend: Backend,
    gw: Gateway,
    tls: SocketAddr,
    ca: TestCa,
    _certs: tempfile::TempDir,
}

impl Suite {
    async fn start() -> Suite {
        let certs = tempfile::tempdir().expect("dir");
        let ca = TestCa::new("gantry conformance CA");
        let (cert, key) = ca.write_leaf(certs.path(), "site", &["localhost"]);
        let backend = Backend::start("a").await;
        let extra = format!(
            "[entrypoints.websecure]\naddress = \"127.0.0.1:0\"\n\
             [entrypoints.websecure.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        let gw = Gateway::start_custom(
            &echo_task("a", &backend, "", &[], &[]),
            &extra,
            "[providers.file]\npath = \"tasks.toml\"\n",
        )
        .await;
        let tls = gw.gantry.entrypoint("websecure").expect("websecure");
        Suite {
            backend,
            gw,
            tls,
            ca,
            _certs: certs,
        }
    }

    /// A connection with nothing sent, on the h2c (`tls` false) or TLS entrypoint.
    async fn bare(&self, tls: bool) -> Raw {
        if !tls {
            return Raw::bare(self.gw.addr).await;
        }
        let config = pki::client_config(&self.ca, &[b"h2"]);
        let stream = pki::connect(self.tls, "localhost", config)
            .await
            .expect("TLS to gantry");
        assert_eq!(pki::alpn(&stream).as_deref(), Some("h2"));
        Raw::over(Box::new(stream))
    }

    /// A connection past the preface, our SETTINGS (`settings`) sent and the
    /// router's acknowledged.
    async fn connect(&self, tls: bool, settings: &[(u16, u32)]) -> Raw {
        let mut raw = self.bare(tls).await;
        raw.preface(settings).await;
        raw.until("the router's SETTINGS", |g| {
            matches!(g, Got::Settings { ack: false })
        })
        .await;
        raw.settings_ack().await;
        raw
    }
}

/// Both entrypoints, named for messages.
const BOTH: [(bool, &str); 2] = [(false, "h2c"), (true, "TLS")];

/// Reads until a GOAWAY and returns its code (the router must send one: a bare
/// close is not enough, as h2spec's strict mode says).
async fn goaway(raw: &mut Raw, what: &str) -> Reason {
    match raw.until(what, |g| matches!(g, Got::GoAway { .. })).await {
        Got::GoAway { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Reads until RST_STREAM on `stream` or a GOAWAY, and returns the code: the RFC
/// lets some errors be either.
async fn stream_or_connection_error(raw: &mut Raw, stream: u32, what: &str) -> Reason {
    match raw
        .until(what, |g| {
            matches!(g, Got::GoAway { .. })
                || matches!(g, Got::Reset { stream: s, .. } if *s == stream)
        })
        .await
    {
        Got::GoAway { reason, .. } | Got::Reset { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// A whole unary call on `stream`, answered OK.
async fn call_ok(raw: &mut Raw, stream: u32) {
    let block = raw.grpc_block("Unary", &[]);
    raw.headers(stream, &block, false).await;
    raw.data(stream, &echo_message(b"ping", 0), true).await;
    let (head, _, trailers) = raw.answer(stream).await;
    assert_eq!(field(&head, ":status"), Some("200"));
    assert_eq!(field(&trailers, "grpc-status"), Some("0"), "{trailers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_5_2_a_bad_preface_gets_goaway_protocol_error() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.bare(tls).await;
        raw.send(b"INVALID CONNECTION PREFACE\r\n\r\n").await;
        assert_eq!(
            goaway(&mut raw, "the GOAWAY").await,
            Reason::PROTOCOL_ERROR,
            "{name}"
        );
    }
    // HTTP/1.1 on the h2c entrypoint is still HTTP/1.1.
    let res = reqwest_like_get(s.gw.addr).await;
    assert!(res.starts_with("HTTP/1.1 "), "{res}");
}

/// A bare HTTP/1.1 GET, and the first line of what came back.
async fn reqwest_like_get(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.write_all(b"GET /nothing HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_1_3_window_update_on_an_idle_stream_is_a_connection_error() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        raw.window_update(1, 100).await;
        assert_eq!(
            goaway(&mut raw, "GOAWAY").await,
            Reason::PROTOCOL_ERROR,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_1_6_headers_on_a_half_closed_remote_stream_is_stream_closed() {
    let s = Suite::start().await;
    // The answer waits, so the stream is still half-closed (remote) here.
    s.backend.stats().set_unary_delay(500);
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(1, &block, false).await;
        raw.data(1, &echo_message(b"x", 0), true).await;
        // As h2spec does: a request head again, without END_STREAM. The stream's
        // state decides, before anything about the block.
        let more = raw.grpc_block("Unary", &[]);
        raw.headers(1, &more, false).await;
        assert_eq!(
            stream_or_connection_error(&mut raw, 1, "the error").await,
            Reason::STREAM_CLOSED,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_1_8_and_9_frames_after_the_clients_reset_are_stream_closed() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(1, &block, false).await;
        raw.rst(1, Reason::CANCEL).await;
        raw.data(1, b"late", false).await;
        assert_eq!(
            stream_or_connection_error(&mut raw, 1, "the error for DATA").await,
            Reason::STREAM_CLOSED,
            "{name}: DATA"
        );
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(3, &block, false).await;
        raw.rst(3, Reason::CANCEL).await;
        let late = raw.trailers_block(&[("x-late", "1")]);
        raw.headers(3, &late, true).await;
        assert_eq!(
            stream_or_connection_error(&mut raw, 3, "the error for HEADERS").await,
            Reason::STREAM_CLOSED,
            "{name}: HEADERS"
        );
        // Stream errors: the connection goes on.
        call_ok(&mut raw, 5).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_1_11_and_12_frames_on_a_stream_both_sides_ended_are_stream_closed() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        for headers in [false, true] {
            let mut raw = s.connect(tls, &[]).await;
            call_ok(&mut raw, 1).await;
            if headers {
                let late = raw.trailers_block(&[("x-late", "1")]);
                raw.headers(1, &late, true).await;
            } else {
                raw.data(1, b"late", true).await;
            }
            assert_eq!(
                goaway(&mut raw, "GOAWAY").await,
                Reason::STREAM_CLOSED,
                "{name}, headers: {headers}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_1_1_2_a_stream_id_lower_than_one_opened_is_a_connection_error() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        call_ok(&mut raw, 5).await;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(3, &block, true).await;
        assert_eq!(
            goaway(&mut raw, "GOAWAY").await,
            Reason::PROTOCOL_ERROR,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_9_2_1_a_lowered_initial_window_binds_a_stream_already_open() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
        // One write: a request ended on its HEADERS (a client stream of no
        // messages), the new SETTINGS right behind it in the same read.
        let block = raw.grpc_block("ClientStream", &[]);
        let mut out = Vec::new();
        let flags = flag::END_HEADERS | flag::END_STREAM;
        frame::put_head(&mut out, block.len(), kind::HEADERS, flags, 1);
        out.extend_from_slice(&block);
        frame::put_settings(&mut out, &[(setting::INITIAL_WINDOW_SIZE, 1)]);
        raw.send(&out).await;
        let got = raw
            .until("the first DATA", |g| {
                matches!(g, Got::Data { stream: 1, .. })
            })
            .await;
        let Got::Data { len, .. } = got else {
            unreachable!()
        };
        assert_eq!(len, 1, "{name}: one byte of window, one byte of DATA");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_9_2_3_initial_window_past_2_31_on_an_open_stream_is_flow_control_error() {
    let s = Suite::start().await;
    s.backend.stats().set_unary_delay(500);
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(1, &block, false).await;
        raw.data(1, &echo_message(b"x", 0), true).await;
        // The stream's window reaches 2^31-1; a bigger initial window passes it.
        raw.window_update(1, frame::MAX_WINDOW - frame::DEFAULT_WINDOW)
            .await;
        raw.settings(&[(setting::INITIAL_WINDOW_SIZE, frame::DEFAULT_WINDOW + 1)])
            .await;
        assert_eq!(
            goaway(&mut raw, "GOAWAY").await,
            Reason::FLOW_CONTROL_ERROR,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_9_1_a_stream_window_update_past_2_31_resets_the_stream() {
    let s = Suite::start().await;
    s.backend.stats().set_unary_delay(300);
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(1, &block, false).await;
        raw.data(1, &echo_message(b"x", 0), true).await;
        raw.window_update(1, frame::MAX_WINDOW).await;
        assert_eq!(
            stream_or_connection_error(&mut raw, 1, "the reset").await,
            Reason::FLOW_CONTROL_ERROR,
            "{name}"
        );
        call_ok(&mut raw, 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_1_2_6_content_length_must_match_the_data() {
    let s = Suite::start().await;
    let before = s.backend.stats().calls();
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let msg = echo_message(b"hello", 0);
        // One DATA frame, shorter than declared.
        let declared = (msg.len() + 3).to_string();
        let block = raw.grpc_block("Unary", &[("content-length", &declared)]);
        raw.headers(1, &block, false).await;
        raw.data(1, &msg, true).await;
        assert_eq!(
            stream_or_connection_error(&mut raw, 1, "the reset").await,
            Reason::PROTOCOL_ERROR,
            "{name}: one frame"
        );
        // Several DATA frames adding up to more than declared.
        let declared = (msg.len() - 1).to_string();
        let block = raw.grpc_block("Unary", &[("content-length", &declared)]);
        raw.headers(3, &block, false).await;
        raw.data(3, &msg[..2], false).await;
        raw.data(3, &msg[2..], true).await;
        assert_eq!(
            stream_or_connection_error(&mut raw, 3, "the reset").await,
            Reason::PROTOCOL_ERROR,
            "{name}: several frames"
        );
        // A content-length that matches is fine.
        let declared = msg.len().to_string();
        let block = raw.grpc_block("Unary", &[("content-length", &declared)]);
        raw.headers(5, &block, false).await;
        raw.data(5, &msg, true).await;
        let (_, _, trailers) = raw.answer(5).await;
        assert_eq!(field(&trailers, "grpc-status"), Some("0"), "{name}");
    }
    // Only the matching calls reached the server: the one whose length was short
    // was held until its next frame, which broke it; the long one's message was
    // never whole.
    assert_eq!(
        s.backend.stats().calls() - before,
        2,
        "calls that reached it"
    );
}

/// The ways real clients end a request: END_STREAM on the HEADERS (a call with
/// no message), on the last DATA (most), on an empty DATA after it (grpc-go's
/// CloseSend), on trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_to_end_a_request_is_answered() {
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let msg = echo_message(b"end", 0);

        // A client stream of no messages, ended on its HEADERS.
        let block = raw.grpc_block("ClientStream", &[]);
        raw.headers(1, &block, true).await;
        let (head, _, trailers) = raw.answer(1).await;
        assert_eq!(field(&head, ":status"), Some("200"), "{name}: on HEADERS");
        assert!(
            field(&trailers, "grpc-status").is_some(),
            "{name}: {trailers:?}"
        );

        let block = raw.grpc_block("Unary", &[]);
        raw.headers(3, &block, false).await;
        raw.data(3, &msg, true).await;
        let (_, _, trailers) = raw.answer(3).await;
        assert_eq!(
            field(&trailers, "grpc-status"),
            Some("0"),
            "{name}: on DATA"
        );

        let block = raw.grpc_block("Unary", &[]);
        raw.headers(5, &block, false).await;
        raw.data(5, &msg, false).await;
        raw.data(5, &[], true).await;
        let (_, _, trailers) = raw.answer(5).await;
        assert_eq!(
            field(&trailers, "grpc-status"),
            Some("0"),
            "{name}: empty DATA"
        );

        // HEADERS, then the empty DATA ending it in its own packet, later.
        let block = raw.grpc_block("ClientStream", &[]);
        raw.headers(7, &block, false).await;
        tokio::task::yield_now().await;
        raw.data(7, &[], true).await;
        let (_, _, trailers) = raw.answer(7).await;
        assert!(
            field(&trailers, "grpc-status").is_some(),
            "{name}: HEADERS then an empty DATA: {trailers:?}"
        );

        let block = raw.grpc_block("Unary", &[]);
        raw.headers(9, &block, false).await;
        raw.data(9, &msg, false).await;
        let t = raw.trailers_block(&[("x-client-trailer", "1")]);
        raw.headers(9, &t, true).await;
        let (_, _, trailers) = raw.answer(9).await;
        assert_eq!(
            field(&trailers, "grpc-status"),
            Some("0"),
            "{name}: trailers"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_sends_goaway_twice_and_serves_streams_in_between() {
    let s = Suite::start().await;
    let mut raw = s.connect(false, &[]).await;
    call_ok(&mut raw, 1).await;
    let Suite { gw, backend, .. } = s;
    let shutdown = tokio::spawn(gw.gantry.shutdown(Duration::from_secs(5)));
    let first = raw
        .until("the first GOAWAY", |g| matches!(g, Got::GoAway { .. }))
        .await;
    let Got::GoAway {
        last_stream,
        reason,
        ..
    } = first
    else {
        unreachable!()
    };
    assert_eq!((last_stream, reason), (frame::MAX_WINDOW, Reason::NO_ERROR));
    let ping = raw
        .until("the shutdown's PING", |g| {
            matches!(g, Got::Ping { ack: false, .. })
        })
        .await;
    let Got::Ping { payload, .. } = ping else {
        unreachable!()
    };
    // A stream opened before the client saw the GOAWAY is still served...
    let block = raw.grpc_block("Unary", &[]);
    raw.headers(3, &block, false).await;
    raw.data(3, &echo_message(b"late", 0), true).await;
    raw.ping_ack(payload).await;
    // ...and the final GOAWAY names it.
    let mut served = false;
    let mut last = None;
    while last.is_none() || !served {
        match raw.next().await {
            Some(Got::GoAway { last_stream, .. }) => last = Some(last_stream),
            Some(Got::Headers {
                stream: 3,
                end: true,
                fields,
            }) => {
                assert_eq!(field(&fields, "grpc-status"), Some("0"));
                served = true;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(served, "stream 3 was answered");
    assert_eq!(last, Some(3), "the final GOAWAY's last-stream-id");
    shutdown.await.expect("shutdown");
    drop(backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_break_nothing_are_accepted() {
    // PRIORITY on an idle stream, unknown frame types, and padding are all fine.
    let s = Suite::start().await;
    for (tls, name) in BOTH {
        let mut raw = s.connect(tls, &[]).await;
        let mut out = Vec::new();
        frame::put_head(&mut out, 5, kind::PRIORITY, 0, 9);
        out.extend_from_slice(&[0, 0, 0, 0, 16]);
        frame::put_head(&mut out, 3, 0xfa, 0, 0);
        out.extend_from_slice(b"xyz");
        raw.send(&out).await;
        let block = raw.grpc_block("Unary", &[]);
        raw.headers(1, &block, false).await;
        let msg = echo_message(b"padded", 0);
        let mut out = Vec::new();
        frame::put_head(
            &mut out,
            1 + msg.len() + 4,
            kind::DATA,
            flag::PADDED | flag::END_STREAM,
            1,
        );
        out.push(4);
        out.extend_from_slice(&msg);
        out.extend_from_slice(&[0; 4]);
        raw.send(&out).await;
        let (_, _, trailers) = raw.answer(1).await;
        assert_eq!(field(&trailers, "grpc-status"), Some("0"), "{name}");
    }
}
