//! End to end over real sockets: tonic clients → gantry → tonic backends.
//! Every call kind, per-call balancing over one client connection, metadata,
//! trailers, status codes, big messages, cancellation and router-made errors.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::proto::echo::{EchoReply, EchoRequest, StreamRequest};
use support::proto::routeguide::{Point, Rectangle, RouteNote};
use support::{h2c_task, wait_until, Backend, Gateway, ECHO_RULE};
use tokio_stream::StreamExt;
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tonic::{Code, Request};

const ALL_RULE: &str = "GRPCService(`gantry.test.Echo`) || GRPCService(`routeguide.RouteGuide`)";

async fn two_backends(weight_a: u32, weight_b: u32) -> (Backend, Backend, Gateway) {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let tasks = h2c_task("task-a", &a, "echo", ALL_RULE, weight_a)
        + &h2c_task("task-b", &b, "echo", ALL_RULE, weight_b);
    let gw = Gateway::start(&tasks).await;
    (a, b, gw)
}

/// Makes `n` unary calls, `concurrency` at a time, over clones of one client
/// (one HTTP/2 connection), and counts who answered.
async fn count_unary(gw: &Gateway, n: usize, concurrency: usize) -> BTreeMap<String, usize> {
    let client = gw.echo().await;
    let mut counts = BTreeMap::new();
    let mut done = 0;
    while done < n {
        let batch = concurrency.min(n - done);
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let mut c = client.clone();
            calls.spawn(async move { c.unary(EchoRequest::default()).await });
        }
        while let Some(res) = calls.join_next().await {
            let reply = res.expect("task").expect("call succeeds").into_inner();
            *counts.entry(reply.backend).or_insert(0) += 1;
        }
        done += batch;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_call_kinds_pass_through() {
    let (_a, _b, gw) = two_backends(1, 1).await;
    let mut echo = gw.echo().await;

    let reply = echo
        .unary(EchoRequest {
            payload: b"hello".to_vec(),
            ..Default::default()
        })
        .await
        .expect("unary")
        .into_inner();
    assert_eq!(reply.payload, b"hello");

    let mut stream = echo
        .server_stream(StreamRequest {
            count: 5,
            payload_size: 3,
            ..Default::default()
        })
        .await
        .expect("server stream")
        .into_inner();
    let mut seq = Vec::new();
    while let Some(msg) = stream.next().await {
        seq.push(msg.expect("stream message").count);
    }
    assert_eq!(seq, vec![0, 1, 2, 3, 4]);

    let outbound = tokio_stream::iter((0..7).map(|i| EchoRequest {
        payload: vec![i; 10],
        ..Default::default()
    }));
    let reply = echo
        .client_stream(outbound)
        .await
        .expect("client stream")
        .into_inner();
    assert_eq!((reply.count, reply.bytes), (7, 70));

    let outbound = tokio_stream::iter((0..4u8).map(|i| EchoRequest {
        payload: vec![i],
        ..Default::default()
    }));
    let replies: Vec<EchoReply> = echo
        .bidi(outbound)
        .await
        .expect("bidi")
        .into_inner()
        .map(|r| r.expect("bidi message"))
        .collect()
        .await;
    let payloads: Vec<Vec<u8>> = replies.into_iter().map(|r| r.payload).collect();
    assert_eq!(payloads, vec![vec![0], vec![1], vec![2], vec![3]]);

    // The route guide demo service, all four kinds too.
    let mut rg = gw.route_guide().await;
    let feature = rg
        .get_feature(Point {
            latitude: 1,
            longitude: 2,
        })
        .await
        .expect("get_feature")
        .into_inner();
    assert!(feature.backend == "a" || feature.backend == "b");
    let all = Rectangle {
        lo: Some(Point {
            latitude: i32::MIN,
            longitude: i32::MIN,
        }),
        hi: Some(Point {
            latitude: i32::MAX,
            longitude: i32::MAX,
        }),
    };
    let features: Vec<_> = rg
        .list_features(all)
        .await
        .expect("list_features")
        .into_inner()
        .collect()
        .await;
    assert!(!features.is_empty() && features.iter().all(|f| f.is_ok()));
    let points = tokio_stream::iter((0..3).map(|i| Point {
        latitude: i * 10_000_000,
        longitude: 0,
    }));
    let summary = rg
        .record_route(points)
        .await
        .expect("record_route")
        .into_inner();
    assert_eq!(summary.point_count, 3);
    let notes = tokio_stream::iter((0..3).map(|i| RouteNote {
        location: Some(Point {
            latitude: i,
            longitude: i,
        }),
        message: format!("note {i}"),
        backend: String::new(),
    }));
    let answered: Vec<_> = rg
        .route_chat(notes)
        .await
        .expect("route_chat")
        .into_inner()
        .collect()
        .await;
    assert!(!answered.is_empty() && answered.iter().all(|n| n.is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_are_balanced_per_call_over_one_connection() {
    let (a, b, gw) = two_backends(1, 1).await;
    let counts = count_unary(&gw, 1000, 8).await;
    let (na, nb) = (counts["a"], counts["b"]);
    println!("1,000 calls over one client connection, equal weights: a={na} b={nb}");
    assert_eq!(na + nb, 1000);
    assert!((450..=550).contains(&na), "a got {na} of 1000");
    // gantry multiplexes calls on one upstream connection per server.
    assert_eq!(a.stats().connections(), 1, "connections to a");
    assert_eq!(b.stats().connections(), 1, "connections to b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_three_to_one() {
    let (_a, _b, gw) = two_backends(3, 1).await;
    let counts = count_unary(&gw, 1000, 8).await;
    let na = counts["a"];
    println!("1,000 calls, weights 3:1: a={na} b={}", counts["b"]);
    assert!((700..=800).contains(&na), "a got {na} of 1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_headers_and_trailers_pass_through() {
    let (_a, _b, gw) = two_backends(1, 1).await;
    let mut echo = gw.echo().await;

    let mut req = Request::new(EchoRequest::default());
    req.metadata_mut()
        .insert("x-echo-tenant", MetadataValue::from_static("acme"));
    req.metadata_mut().insert_bin(
        "x-echo-blob-bin",
        BinaryMetadataValue::from_bytes(&[0, 1, 2, 255]),
    );
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    req.set_timeout(Duration::from_secs(7));
    let res = echo.unary(req).await.expect("unary");
    assert_eq!(
        res.metadata().get("x-echo-tenant").map(|v| v.to_str().ok()),
        Some(Some("acme"))
    );
    assert_eq!(
        res.metadata()
            .get_bin("x-echo-blob-bin")
            .and_then(|v| v.to_bytes().ok())
            .as_deref(),
        Some(&[0u8, 1, 2, 255][..])
    );
    let seen = res.into_inner().headers;
    assert_eq!(seen.get("te").map(String::as_str), Some("trailers"));
    assert_eq!(
        seen.get("x-forwarded-for").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(
        seen.get("x-forwarded-proto").map(String::as_str),
        Some("http")
    );
    assert_eq!(
        seen.get("traceparent").map(String::as_str),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    // grpc-timeout passes through (tonic encodes 7 s in its own unit choice).
    assert!(
        seen.contains_key("grpc-timeout"),
        "grpc-timeout missing: {seen:?}"
    );
    assert_eq!(
        seen.get(":authority").map(String::as_str),
        Some(gw.addr.to_string().as_str())
    );

    // Trailers at the end of a stream carry the echoed metadata.
    let mut req = Request::new(StreamRequest {
        count: 2,
        ..Default::default()
    });
    req.metadata_mut()
        .insert("x-echo-trace", MetadataValue::from_static("t-1"));
    let mut stream = echo.server_stream(req).await.expect("stream").into_inner();
    while let Some(m) = stream.next().await {
        m.expect("message");
    }
    let trailers = stream
        .trailers()
        .await
        .expect("trailers")
        .expect("some trailers");
    assert_eq!(
        trailers.get("x-trailer-trace").map(|v| v.to_str().ok()),
        Some(Some("t-1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_and_messages_are_unchanged() {
    let (_a, _b, gw) = two_backends(1, 1).await;
    let mut echo = gw.echo().await;
    for code in 1..=16 {
        let message = format!("código {code}: ünïcødé ✓ 100% \"quoted\" 日本語");
        let err = echo
            .unary(EchoRequest {
                fail_code: code,
                fail_message: message.clone(),
                ..Default::default()
            })
            .await
            .expect_err("the backend fails this call");
        assert_eq!(err.code(), Code::from_i32(code), "code {code}");
        assert_eq!(err.message(), message, "code {code}");
    }
    // An error after some stream messages arrives in the trailers.
    let mut stream = echo
        .server_stream(StreamRequest {
            count: 2,
            fail_code: Code::ResourceExhausted as i32,
            fail_message: "quota — épuisé".into(),
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let mut got = 0;
    let status = loop {
        match stream.next().await {
            Some(Ok(_)) => got += 1,
            Some(Err(s)) => break s,
            None => panic!("stream ended without its error"),
        }
    };
    assert_eq!(got, 2);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "quota — épuisé");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_mib_messages_both_ways() {
    let (_a, _b, gw) = two_backends(1, 1).await;
    let mut echo = gw.echo().await;
    let size = 4 << 20;
    let payload: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    let reply = echo
        .unary(EchoRequest {
            payload: payload.clone(),
            ..Default::default()
        })
        .await
        .expect("4 MiB unary")
        .into_inner();
    assert_eq!(reply.bytes, size as u64);
    assert!(reply.payload == payload, "payload came back changed");

    let outgoing = payload.clone();
    let outbound = tokio_stream::iter((0..2).map(move |_| EchoRequest {
        payload: outgoing.clone(),
        ..Default::default()
    }));
    let replies: Vec<EchoReply> = echo
        .bidi(outbound)
        .await
        .expect("bidi")
        .into_inner()
        .map(|r| r.expect("4 MiB bidi message"))
        .collect()
        .await;
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|r| r.payload == payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_stream_cancels_it_upstream() {
    let a = Backend::start("a").await;
    let gw = Gateway::start(&h2c_task("task-a", &a, "echo", ECHO_RULE, 1)).await;
    let mut echo = gw.echo().await;
    let mut stream = echo
        .server_stream(StreamRequest {
            count: 0, // until cancelled
            interval_ms: 5,
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    for _ in 0..3 {
        stream.next().await.expect("a message").expect("ok");
    }
    assert_eq!(a.stats().active_streams(), 1);
    drop(stream); // the client cancels: RST_STREAM(CANCEL) to gantry
    wait_until(
        "the backend saw the stream cancelled",
        Duration::from_secs(2),
        || a.stats().cancelled_streams() == 1 && a.stats().active_streams() == 0,
    )
    .await;
    let table = gw.gantry.table();
    let endpoint = table
        .endpoints()
        .values()
        .next()
        .expect("one endpoint")
        .clone();
    wait_until(
        "gantry counts no call in flight",
        Duration::from_secs(2),
        || endpoint.in_flight() == 0,
    )
    .await;
    // The connection is still good for the next call.
    echo.unary(EchoRequest::default()).await.expect("next call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_unimplemented_naming_the_entrypoint() {
    let a = Backend::start("a").await;
    let gw = Gateway::start(&h2c_task("task-a", &a, "echo", ECHO_RULE, 1)).await;
    let mut rg = gw.route_guide().await;
    let err = rg
        .get_feature(Point::default())
        .await
        .expect_err("no router for RouteGuide");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(
        err.message().contains("no router matches"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("/routeguide.RouteGuide/GetFeature"));
    assert!(err.message().contains("web"));
    assert_eq!(a.stats().calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_down_is_unavailable_within_a_second() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1)
        + &h2c_task("task-b", &b, "echo", ECHO_RULE, 1);
    let gw = Gateway::start(&tasks).await;
    let mut echo = gw.echo().await;
    echo.unary(EchoRequest::default())
        .await
        .expect("up at first");
    a.kill();
    b.kill();
    for _ in 0..4 {
        let started = Instant::now();
        let err = echo
            .unary(EchoRequest::default())
            .await
            .expect_err("every server is down");
        let took = started.elapsed();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            err.message().contains("\"echo\""),
            "names the service: {}",
            err.message()
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
}

/// Marks a tasks-file entry UNHEALTHY, as ECS health checks would.
fn unhealthy(task: String) -> String {
    task.replace(
        "ip = \"127.0.0.1\"",
        "ip = \"127.0.0.1\"\nhealth = \"UNHEALTHY\"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_tasks_get_no_calls() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let task_a = h2c_task("task-a", &a, "echo", ECHO_RULE, 1);
    let task_b = h2c_task("task-b", &b, "echo", ECHO_RULE, 1);
    let gw = Gateway::start(&(task_a.clone() + &unhealthy(task_b.clone()))).await;
    let counts = count_unary(&gw, 50, 4).await;
    assert_eq!(counts.get("a"), Some(&50));
    assert_eq!(b.stats().calls(), 0);

    // Every server unhealthy: UNAVAILABLE without dialling anything.
    gw.set_tasks(&(unhealthy(task_a) + &unhealthy(task_b)))
        .await;
    let err = gw
        .echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect_err("no healthy server");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("no available server"),
        "{}",
        err.message()
    );
    assert_eq!(a.stats().calls(), 50);
}
