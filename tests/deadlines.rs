//! gantry enforces `grpc-timeout` itself: a server slower than the client's deadline
//! does not hold the client past it.

use crate::support;

use std::time::{Duration, Instant};

use support::proto::echo::{EchoRequest, StreamRequest};
use support::{h2c_task, wait_until, within, Backend, Gateway, DEADLINE, ECHO_RULE};
use tokio_stream::StreamExt;

/// A raw HTTP/2 unary call to Echo/Unary with this `grpc-timeout` (a tonic client
/// would enforce the deadline itself; this one leaves it to gantry). Returns the
/// response head and how long it took.
async fn raw_unary(
    gw: &Gateway,
    timeout: &str,
    delay_ms: u32,
) -> (http::response::Parts, Duration) {
    use prost::Message;
    let stream = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let message = EchoRequest {
        delay_ms,
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let req = http::Request::post(format!("http://{}/gantry.test.Echo/Unary", gw.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
        .expect("request");
    let started = Instant::now();
    let res = sender.send_request(req).await.expect("response");
    (res.into_parts().0, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_gets_deadline_exceeded_from_gantry() {
    let a = Backend::start("a").await;
    let gw = Gateway::start(&h2c_task("a", &a, "echo", ECHO_RULE, 1)).await;

    let (head, took) = raw_unary(&gw, "200m", 3_000).await;
    assert_eq!(head.headers["grpc-status"], "4", "{head:?}");
    let message = head.headers["grpc-message"].to_str().unwrap();
    assert!(message.contains("gantry"), "{message}");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1_500),
        "{took:?}"
    );

    // A call within its deadline is untouched.
    let mut echo = gw.echo().await;
    let mut ok = tonic::Request::new(EchoRequest::default());
    ok.metadata_mut()
        .insert("grpc-timeout", "5S".parse().unwrap());
    echo.unary(ok).await.expect("within its deadline");

    // Counted as DEADLINE_EXCEEDED on the server it was sent to.
    let table = gw.gantry.table();
    let server = table.endpoints().values().next().expect("endpoint").clone();
    wait_until("the call counted", DEADLINE, || {
        server.stats().outcome(4) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_its_deadline_ends_with_deadline_exceeded_and_the_server_sees_it_cancelled() {
    let a = Backend::start("a").await;
    let gw = Gateway::start(&h2c_task("a", &a, "echo", ECHO_RULE, 1)).await;
    let mut echo = gw.echo().await;
    // An endless server stream, one reply every 50 ms, with a 500 ms deadline.
    let mut req = tonic::Request::new(StreamRequest {
        count: 0,
        interval_ms: 50,
        ..Default::default()
    });
    req.metadata_mut()
        .insert("grpc-timeout", "500m".parse().unwrap());
    let started = Instant::now();
    let mut stream = echo
        .server_stream(req)
        .await
        .expect("stream starts")
        .into_inner();
    let mut replies = 0;
    let status = within("the stream to end at its deadline", async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => replies += 1,
                Some(Err(status)) => break status,
                None => panic!("the stream ended without a status after {replies} replies"),
            }
        }
    })
    .await;
    let took = started.elapsed();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(replies >= 3, "{replies} replies before the deadline");
    assert!(took < Duration::from_millis(2_000), "{took:?}");
    wait_until("the server's stream cancelled", DEADLINE, || {
        a.stats().active_streams() == 0
    })
    .await;
    assert_eq!(a.stats().cancelled_streams(), 1);
}
