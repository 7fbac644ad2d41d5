//! gantry's own HTTP/2, frame by frame: a raw client sends what well-behaved
//! clients never do (split header blocks, malformed heads, tiny windows, broken
//! frames) and checks exactly what comes back; and a server that takes few streams
//! at a time still gets every call.

use std::time::Duration;

use gantry::http2::frame::{self, flag, kind, setting, Reason};
use tonic::transport::Server;

use crate::support::proto::echo::EchoRequest;
use crate::support::raw::{echo_message, field, Got, Raw};
use crate::support::{echo_task, within, Backend, Gateway};

async fn gateway() -> (Backend, Gateway) {
    let backend = Backend::start("a").await;
    let gw = Gateway::start(&echo_task("a", &backend, "", &[], &[])).await;
    (backend, gw)
}

/// A plain unary call on `stream` is answered OK (the connection is still good).
async fn a_call_works(raw: &mut Raw, stream: u32) {
    let good = raw.grpc_block("Unary", &[]);
    raw.headers(stream, &good, false).await;
    raw.data(stream, &echo_message(b"still here", 0), true)
        .await;
    let (head, _, trailers) = raw.answer(stream).await;
    assert_eq!(field(&head, ":status"), Some("200"));
    assert_eq!(field(&trailers, "grpc-status"), Some("0"));
}

/// A tasks file routing Echo to an h2c server on `port`.
fn echo_on(port: u16) -> String {
    format!(
        "[[task]]\nid = \"s{port}\"\nip = \"127.0.0.1\"\nports = [{port}]\n[task.labels]\n\
         \"traefik.enable\" = \"true\"\n\
         \"traefik.http.routers.echo.rule\" = \"GRPCService(`gantry.test.Echo`)\"\n\
         \"traefik.http.services.echo.loadbalancer.server.scheme\" = \"h2c\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_split_over_continuation_frames_is_one_request() {
    let (_b, gw) = gateway().await;
    let mut raw = Raw::connect(gw.addr, &[]).await;
    let block = raw.grpc_block("Unary", &[("x-echo-split", "yes")]);
    let (first, rest) = block.split_at(block.len() / 2);
    let (second, third) = rest.split_at(rest.len() / 2);
    let mut out = Vec::new();
    frame::put_head(&mut out, first.len(), kind::HEADERS, 0, 1);
    out.extend_from_slice(first);
    frame::put_head(&mut out, second.len(), kind::CONTINUATION, 0, 1);
    out.extend_from_slice(second);
    frame::put_head(
        &mut out,
        third.len(),
        kind::CONTINUATION,
        flag::END_HEADERS,
        1,
    );
    out.extend_from_slice(third);
    raw.send(&out).await;
    raw.data(1, &echo_message(b"hello", 0), true).await;
    let (head, data, trailers) = raw.answer(1).await;
    assert_eq!(field(&head, ":status"), Some("200"));
    assert_eq!(
        field(&head, "x-echo-split"),
        Some("yes"),
        "the whole block arrived"
    );
    assert!(data > 5, "a reply message came back");
    assert_eq!(field(&trailers, "grpc-status"), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_head_resets_its_stream_and_the_connection_goes_on() {
    let (_b, gw) = gateway().await;
    let mut raw = Raw::connect(gw.addr, &[]).await;
    // A connection-specific field is not allowed in HTTP/2 (RFC 9113 §8.2.2).
    let bad = raw.grpc_block("Unary", &[("connection", "close")]);
    raw.headers(1, &bad, false).await;
    let got = raw
        .until("the reset", |g| matches!(g, Got::Reset { stream: 1, .. }))
        .await;
    assert!(
        matches!(
            got,
            Got::Reset {
                reason: Reason::PROTOCOL_ERROR,
                ..
            }
        ),
        "{got:?}"
    );
    // The compression context survived: the next call on the connection works.
    a_call_works(&mut raw, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_for_a_stream_answered_early_are_ignored() {
    let (_b, gw) = gateway().await;
    let mut raw = Raw::connect(gw.addr, &[]).await;
    // No router matches: gantry answers at once and resets the stream (NO_ERROR)
    // while the client is still sending.
    let nowhere = raw.grpc_block_for("/nowhere.Service/Call", &[]);
    raw.headers(1, &nowhere, false).await;
    let got = raw
        .until("the answer", |g| {
            matches!(g, Got::Headers { stream: 1, .. })
        })
        .await;
    match got {
        Got::Headers { end, fields, .. } => {
            assert!(end, "trailers-only");
            assert_eq!(field(&fields, "grpc-status"), Some("12"));
        }
        other => panic!("{other:?}"),
    }
    // The client's trailers were already on their way: not an error.
    let trailers = raw.trailers_block(&[("x-late", "yes")]);
    raw.headers(1, &trailers, true).await;
    a_call_works(&mut raw, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_client_window_still_gets_the_whole_answer_in_window_sized_pieces() {
    let (_b, gw) = gateway().await;
    const WINDOW: u32 = 100;
    let mut raw = Raw::connect(gw.addr, &[(setting::INITIAL_WINDOW_SIZE, WINDOW)]).await;
    let block = raw.grpc_block("Unary", &[]);
    raw.headers(1, &block, false).await;
    raw.data(1, &echo_message(b"", 5000), true).await;
    let mut window = WINDOW as usize;
    let mut total = 0;
    loop {
        match raw.next().await {
            Some(Got::Data { stream: 1, len, .. }) => {
                assert!(
                    len <= window,
                    "a DATA frame of {len} bytes with {window} left"
                );
                window -= len;
                total += len;
                // Give back what was read, as a client does.
                raw.window_update(1, len as u32).await;
                window += len;
            }
            Some(Got::Headers {
                stream: 1,
                end: true,
                fields,
            }) => {
                assert_eq!(field(&fields, "grpc-status"), Some("0"));
                break;
            }
            Some(Got::Reset { reason, .. }) => panic!("reset: {reason}"),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    // A 5-byte gRPC prefix and a reply holding 5,000 payload bytes.
    assert!(total > 5000, "{total} bytes of DATA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_held_to_its_window_while_its_server_takes_nothing() {
    // A server that accepts connections and never speaks: gantry never gets its
    // SETTINGS, so no stream opens and no request data is taken; the client's
    // window is never given back.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let gw = Gateway::start(&echo_on(port)).await;
    let mut raw = Raw::connect(gw.addr, &[]).await;
    let block = raw.grpc_block("ClientStream", &[]);
    raw.headers(1, &block, false).await;
    // gantry gives each stream 1 MiB: all of it, then a little more.
    let chunk = vec![0u8; 16_384];
    for _ in 0..64 {
        raw.data(1, &chunk, false).await;
    }
    raw.data(1, b"one byte too many", false).await;
    let got = raw
        .until("the reset", |g| matches!(g, Got::Reset { stream: 1, .. }))
        .await;
    assert!(
        matches!(
            got,
            Got::Reset {
                reason: Reason::FLOW_CONTROL_ERROR,
                ..
            }
        ),
        "{got:?}"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_end_the_connection_with_goaway() {
    let (_b, gw) = gateway().await;
    // A WINDOW_UPDATE must be 4 bytes.
    let mut raw = Raw::connect(gw.addr, &[]).await;
    let mut out = Vec::new();
    frame::put_head(&mut out, 3, kind::WINDOW_UPDATE, 0, 0);
    out.extend_from_slice(&[0, 0, 1]);
    raw.send(&out).await;
    let got = raw
        .until("GOAWAY", |g| matches!(g, Got::GoAway { .. }))
        .await;
    assert!(
        matches!(
            got,
            Got::GoAway {
                reason: Reason::FRAME_SIZE_ERROR,
                ..
            }
        ),
        "{got:?}"
    );
    assert!(raw.closed_within(Duration::from_secs(5)).await);

    // Clients open odd-numbered streams only.
    let mut raw = Raw::connect(gw.addr, &[]).await;
    let block = raw.grpc_block("Unary", &[]);
    raw.headers(2, &block, true).await;
    let got = raw
        .until("GOAWAY", |g| matches!(g, Got::GoAway { .. }))
        .await;
    match got {
        Got::GoAway { reason, debug, .. } => {
            assert_eq!(reason, Reason::PROTOCOL_ERROR);
            assert!(debug.contains("even-numbered"), "{debug}");
        }
        other => panic!("{other:?}"),
    }
}

/// An Echo backend whose HTTP/2 server takes at most `streams` at once.
async fn narrow_backend(streams: u32) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let svc = crate::support::backend::echo_server("narrow");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .max_concurrent_streams(streams)
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await;
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_taking_two_streams_at_a_time_still_gets_every_call() {
    let (addr, server) = narrow_backend(2).await;
    let gw = Gateway::start(&echo_on(addr.port())).await;
    let client = gw.echo().await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let mut c = client.clone();
        calls.push(tokio::spawn(async move {
            let req = EchoRequest {
                payload: vec![i as u8; 8],
                delay_ms: 20,
                ..EchoRequest::default()
            };
            c.unary(req).await.map(|r| r.into_inner().payload)
        }));
    }
    let mut ok = 0;
    for (i, call) in calls.into_iter().enumerate() {
        let payload = within("a call", call).await.expect("task").expect("call");
        assert_eq!(payload, vec![i as u8; 8]);
        ok += 1;
    }
    assert_eq!(ok, 40);
    server.abort();
}

/// An Echo backend whose HTTP/2 server takes heads of at most `max` bytes.
async fn small_heads_backend(max: u32) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let svc = crate::support::backend::echo_server("small-heads");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .http2_max_header_list_size(max)
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await;
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_bigger_than_the_server_takes_is_answered_with_why() {
    let (addr, server) = small_heads_backend(1024).await;
    let gw = Gateway::start(&echo_on(addr.port())).await;
    let mut c = gw.echo().await;
    let mut req = tonic::Request::new(EchoRequest::default());
    req.metadata_mut()
        .insert("x-big", "y".repeat(2000).parse().expect("value"));
    let status = c.unary(req).await.expect_err("too big for the server");
    assert!(
        status
            .message()
            .contains("SETTINGS_MAX_HEADER_LIST_SIZE 1024"),
        "{status:?}"
    );
    // A head that fits goes through.
    c.unary(EchoRequest::default()).await.expect("a small head");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_bigger_than_the_client_takes_becomes_a_grpc_error() {
    let (_b, gw) = gateway().await;
    let mut raw = Raw::connect(gw.addr, &[(setting::MAX_HEADER_LIST_SIZE, 300)]).await;
    // The echo server copies x-echo-* fields into its answer's head.
    let big = "z".repeat(400);
    let block = raw.grpc_block("Unary", &[("x-echo-big", &big)]);
    raw.headers(1, &block, false).await;
    raw.data(1, &echo_message(b"x", 0), true).await;
    let got = raw
        .until("the answer", |g| {
            matches!(g, Got::Headers { stream: 1, .. })
        })
        .await;
    let Got::Headers { end, fields, .. } = got else {
        unreachable!()
    };
    assert!(end, "a trailers-only answer: {fields:?}");
    assert_eq!(field(&fields, "grpc-status"), Some("13"), "{fields:?}");
    let msg = field(&fields, "grpc-message").unwrap_or_default();
    assert!(msg.contains("MAX_HEADER_LIST_SIZE"), "{msg}");
    assert!(field(&fields, "x-echo-big").is_none());
}
