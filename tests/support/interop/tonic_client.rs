//! The interop test client on tonic, in the test's process: the cases of grpc's
//! `doc/interop-test-descriptions.md`, each on a channel of its own, asserting
//! what the descriptions say.
//!
//! Where tonic differs from gRPC's own clients, the case says how it is read:
//! - a cancel is dropping the call (tonic sends RST_STREAM CANCEL and reports
//!   nothing), so "completed with CANCELLED" is the call not completing before it;
//!   the case then checks the channel still serves a call;
//! - tonic keeps no deadline of its own past the response head (it sends
//!   `grpc-timeout` and, if no head comes in time, reports CANCELLED "Timeout
//!   expired"): the whole case runs under a local deadline too, and
//!   `timeout_on_sleeping_server` takes that deadline passing, or a
//!   DEADLINE_EXCEEDED from the other side, as the call ending with it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream;
use http::uri::PathAndQuery;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::super::proto::interop::test_service_client::TestServiceClient;
use super::super::proto::interop::unimplemented_service_client::UnimplementedServiceClient;
use super::super::proto::interop::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingOutputCallRequest,
};
use super::{
    CaseResult, ECHO_INITIAL, ECHO_TRAILING, INITIAL_VALUE, REQUEST_SIZES, RESPONSE_SIZES,
    SPECIAL_MESSAGE, TRAILING_VALUE,
};

/// Runs `cases` one after the other against `addr`, each within `timeout`.
pub async fn run(addr: SocketAddr, cases: &[&str], timeout: Duration) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for &case in cases {
        let outcome = match tokio::time::timeout(timeout, run_case(addr, case, timeout)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no outcome within {timeout:?}")),
        };
        results.push(CaseResult {
            case: case.to_string(),
            outcome,
        });
    }
    results
}

type Outcome = Result<(), String>;

/// One case's channel; every call carries `timeout` as its `grpc-timeout`.
struct Case {
    channel: Channel,
    client: TestServiceClient<Channel>,
    timeout: Duration,
}

impl Case {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// After a cancel: the same channel still completes a call.
    async fn still_serves(&mut self) -> Outcome {
        let request = self.request(Empty {});
        self.client
            .empty_call(request)
            .await
            .map_err(|s| format!("EmptyCall after the cancel failed: {}", show(&s)))?;
        Ok(())
    }
}

async fn run_case(addr: SocketAddr, case: &str, timeout: Duration) -> Outcome {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut c = Case {
        client: TestServiceClient::new(channel.clone()),
        channel,
        timeout,
    };
    match case {
        "empty_unary" => empty_unary(&mut c).await,
        "large_unary" => large_unary(&mut c).await,
        "client_streaming" => client_streaming(&mut c).await,
        "server_streaming" => server_streaming(&mut c).await,
        "ping_pong" => ping_pong(&mut c).await,
        "empty_stream" => empty_stream(&mut c).await,
        "custom_metadata" => custom_metadata(&mut c).await,
        "status_code_and_message" => status_code_and_message(&mut c).await,
        "special_status_message" => special_status_message(&mut c).await,
        "unimplemented_method" => unimplemented_method(&mut c).await,
        "unimplemented_service" => unimplemented_service(&mut c).await,
        "cancel_after_begin" => cancel_after_begin(&mut c).await,
        "cancel_after_first_response" => cancel_after_first_response(&mut c).await,
        "timeout_on_sleeping_server" => timeout_on_sleeping_server(&mut c).await,
        other => Err(format!("unknown case {other}")),
    }
}

fn show(status: &Status) -> String {
    format!("{:?} {:?}", status.code(), status.message())
}

fn failed(what: &str) -> impl Fn(Status) -> String + '_ {
    move |s| format!("{what}: {}", show(&s))
}

fn check(condition: bool, why: impl FnOnce() -> String) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(why())
    }
}

fn zeros(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; size],
    })
}

fn check_payload(payload: Option<&Payload>, size: usize, what: &str) -> Outcome {
    let body = payload.map_or(&[][..], |p| &p.body[..]);
    check(body.len() == size, || {
        format!(
            "{what}: payload body is {} bytes, expected {size}",
            body.len()
        )
    })?;
    check(body.iter().all(|&b| b == 0), || {
        format!("{what}: payload body is not all zeros")
    })
}

fn streaming_request(
    response_size: Option<usize>,
    request_size: Option<usize>,
) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: response_size
            .map(|size| ResponseParameters {
                size: i32::try_from(size).expect("a small size"),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        payload: request_size.and_then(zeros),
        ..Default::default()
    }
}

/// The call must have failed with `code` (and `message`, unless `None`).
fn expect_status<T>(
    result: Result<T, Status>,
    code: Code,
    message: Option<&str>,
    what: &str,
) -> Outcome {
    match result {
        Ok(_) => Err(format!("{what} succeeded, expected {code:?}")),
        Err(s) => check(
            s.code() == code && message.is_none_or(|m| s.message() == m),
            || {
                format!(
                    "{what}: got {}, expected {code:?}{}",
                    show(&s),
                    message.map(|m| format!(" {m:?}")).unwrap_or_default()
                )
            },
        ),
    }
}

fn check_echo(initial: &MetadataMap, trailing: Option<&MetadataMap>, what: &str) -> Outcome {
    let got = initial.get(ECHO_INITIAL).map(|v| v.as_bytes().to_vec());
    check(got.as_deref() == Some(INITIAL_VALUE.as_bytes()), || {
        format!("{what}: initial metadata {ECHO_INITIAL} is {got:?}")
    })?;
    let got = trailing
        .and_then(|t| t.get_bin(ECHO_TRAILING))
        .map(|v| v.to_bytes().map(|b| b.to_vec()));
    check(matches!(&got, Some(Ok(v)) if v == TRAILING_VALUE), || {
        format!("{what}: trailing metadata {ECHO_TRAILING} is {got:?}")
    })
}

async fn empty_unary(c: &mut Case) -> Outcome {
    let request = c.request(Empty {});
    c.client
        .empty_call(request)
        .await
        .map_err(failed("EmptyCall"))?;
    Ok(())
}

async fn large_unary(c: &mut Case) -> Outcome {
    let request = c.request(SimpleRequest {
        response_size: 314159,
        payload: zeros(271828),
        ..Default::default()
    });
    let response = c
        .client
        .unary_call(request)
        .await
        .map_err(failed("UnaryCall"))?
        .into_inner();
    check_payload(response.payload.as_ref(), 314159, "UnaryCall")
}

async fn client_streaming(c: &mut Case) -> Outcome {
    let requests = REQUEST_SIZES.map(|size| StreamingInputCallRequest {
        payload: zeros(size),
        ..Default::default()
    });
    let request = c.request(stream::iter(requests));
    let response = c
        .client
        .streaming_input_call(request)
        .await
        .map_err(failed("StreamingInputCall"))?
        .into_inner();
    let got = response.aggregated_payload_size;
    check(got == 74922, || {
        format!("aggregated_payload_size is {got}, expected 74922")
    })
}

async fn server_streaming(c: &mut Case) -> Outcome {
    let request = c.request(StreamingOutputCallRequest {
        response_parameters: RESPONSE_SIZES
            .iter()
            .map(|&size| ResponseParameters {
                size: i32::try_from(size).expect("a small size"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    let mut responses = c
        .client
        .streaming_output_call(request)
        .await
        .map_err(failed("StreamingOutputCall"))?
        .into_inner();
    let mut got = Vec::new();
    while let Some(response) = responses
        .message()
        .await
        .map_err(failed("StreamingOutputCall"))?
    {
        got.push(response);
    }
    let sizes: Vec<usize> = got
        .iter()
        .map(|r| r.payload.as_ref().map_or(0, |p| p.body.len()))
        .collect();
    check(sizes == RESPONSE_SIZES, || {
        format!("response sizes {sizes:?}, expected {RESPONSE_SIZES:?}")
    })?;
    for (i, r) in got.iter().enumerate() {
        check_payload(r.payload.as_ref(), sizes[i], &format!("response {}", i + 1))?;
    }
    Ok(())
}

async fn ping_pong(c: &mut Case) -> Outcome {
    let (tx, rx) = mpsc::channel(1);
    let send = |tx: &mpsc::Sender<_>, i: usize| {
        tx.try_send(streaming_request(
            Some(RESPONSE_SIZES[i]),
            Some(REQUEST_SIZES[i]),
        ))
        .map_err(|e| format!("request {}: {e}", i + 1))
    };
    send(&tx, 0)?;
    let request = c.request(ReceiverStream::new(rx));
    let mut responses = c
        .client
        .full_duplex_call(request)
        .await
        .map_err(failed("FullDuplexCall"))?
        .into_inner();
    for (i, &size) in RESPONSE_SIZES.iter().enumerate() {
        if i > 0 {
            send(&tx, i)?;
        }
        let what = format!("response {}", i + 1);
        let response = responses
            .message()
            .await
            .map_err(failed(&what))?
            .ok_or_else(|| format!("{what}: the response stream ended early"))?;
        check_payload(response.payload.as_ref(), size, &what)?;
    }
    drop(tx);
    let extra = responses
        .message()
        .await
        .map_err(failed("FullDuplexCall"))?;
    check(extra.is_none(), || {
        "a response after the fourth".to_string()
    })
}

async fn empty_stream(c: &mut Case) -> Outcome {
    let request = c.request(stream::empty::<StreamingOutputCallRequest>());
    let mut responses = c
        .client
        .full_duplex_call(request)
        .await
        .map_err(failed("FullDuplexCall"))?
        .into_inner();
    let got = responses
        .message()
        .await
        .map_err(failed("FullDuplexCall"))?;
    check(got.is_none(), || "a response, expected none".to_string())
}

fn echo_metadata(metadata: &mut MetadataMap) {
    metadata.insert(ECHO_INITIAL, MetadataValue::from_static(INITIAL_VALUE));
    metadata.insert_bin(ECHO_TRAILING, MetadataValue::from_bytes(TRAILING_VALUE));
}

async fn custom_metadata(c: &mut Case) -> Outcome {
    // UnaryCall through tonic's generic client, which keeps the response headers
    // apart from the trailers (the generated unary method merges them).
    let mut request = c.request(SimpleRequest {
        response_size: 314159,
        payload: zeros(271828),
        ..Default::default()
    });
    echo_metadata(request.metadata_mut());
    let mut grpc = tonic::client::Grpc::new(c.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| format!("channel not ready: {e}"))?;
    let codec = tonic_prost::ProstCodec::<SimpleRequest, SimpleResponse>::default();
    let path = PathAndQuery::from_static("/grpc.testing.TestService/UnaryCall");
    let response = grpc
        .server_streaming(request, path, codec)
        .await
        .map_err(failed("UnaryCall"))?;
    let initial = response.metadata().clone();
    let mut body = response.into_inner();
    let message = body
        .message()
        .await
        .map_err(failed("UnaryCall"))?
        .ok_or("UnaryCall: no response message")?;
    check_payload(message.payload.as_ref(), 314159, "UnaryCall")?;
    check(
        body.message().await.map_err(failed("UnaryCall"))?.is_none(),
        || "UnaryCall: a second response message".to_string(),
    )?;
    let trailing = body.trailers().await.map_err(failed("UnaryCall"))?;
    check_echo(&initial, trailing.as_ref(), "UnaryCall")?;

    let mut request = c.request(stream::iter([streaming_request(
        Some(314159),
        Some(271828),
    )]));
    echo_metadata(request.metadata_mut());
    let response = c
        .client
        .full_duplex_call(request)
        .await
        .map_err(failed("FullDuplexCall"))?;
    let initial = response.metadata().clone();
    let mut responses = response.into_inner();
    let mut got = Vec::new();
    while let Some(r) = responses
        .message()
        .await
        .map_err(failed("FullDuplexCall"))?
    {
        got.push(r);
    }
    check(got.len() == 1, || {
        format!("FullDuplexCall: {} responses, expected 1", got.len())
    })?;
    check_payload(got[0].payload.as_ref(), 314159, "FullDuplexCall")?;
    let trailing = responses
        .trailers()
        .await
        .map_err(failed("FullDuplexCall"))?;
    check_echo(&initial, trailing.as_ref(), "FullDuplexCall")
}

/// A FullDuplexCall sending one request that asks for `status`, then
/// half-closing: the status it ends with.
async fn duplex_status(c: &mut Case, status: EchoStatus) -> Result<(), Status> {
    let request = c.request(stream::iter([StreamingOutputCallRequest {
        response_status: Some(status),
        ..Default::default()
    }]));
    let mut responses = c.client.full_duplex_call(request).await?.into_inner();
    while responses.message().await?.is_some() {}
    Ok(())
}

async fn status_code_and_message(c: &mut Case) -> Outcome {
    let message = "test status message";
    let status = EchoStatus {
        code: 2,
        message: message.to_string(),
    };
    let request = c.request(SimpleRequest {
        response_status: Some(status.clone()),
        ..Default::default()
    });
    let result = c.client.unary_call(request).await;
    expect_status(result, Code::Unknown, Some(message), "UnaryCall")?;
    let result = duplex_status(c, status).await;
    expect_status(result, Code::Unknown, Some(message), "FullDuplexCall")
}

async fn special_status_message(c: &mut Case) -> Outcome {
    let request = c.request(SimpleRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: SPECIAL_MESSAGE.to_string(),
        }),
        ..Default::default()
    });
    let result = c.client.unary_call(request).await;
    expect_status(result, Code::Unknown, Some(SPECIAL_MESSAGE), "UnaryCall")
}

async fn unimplemented_method(c: &mut Case) -> Outcome {
    let request = c.request(Empty {});
    let result = c.client.unimplemented_call(request).await;
    expect_status(
        result,
        Code::Unimplemented,
        None,
        "TestService/UnimplementedCall",
    )
}

async fn unimplemented_service(c: &mut Case) -> Outcome {
    let mut client = UnimplementedServiceClient::new(c.channel.clone());
    let result = client.unimplemented_call(c.request(Empty {})).await;
    expect_status(
        result,
        Code::Unimplemented,
        None,
        "UnimplementedService/UnimplementedCall",
    )
}

async fn cancel_after_begin(c: &mut Case) -> Outcome {
    // The request stream is polled once the call's HEADERS are on their way: that
    // is "after metadata was sent"; it never yields a message.
    let (begun, on_begin) = oneshot::channel::<()>();
    let requests = stream::once(async move {
        let _ = begun.send(());
        std::future::pending::<StreamingInputCallRequest>().await
    });
    let request = c.request(requests);
    let mut client = c.client.clone();
    let call = client.streaming_input_call(request);
    tokio::select! {
        result = call => return Err(format!(
            "StreamingInputCall ended before the cancel: {:?}",
            result.map(|r| r.into_inner()).map_err(|s| show(&s))
        )),
        _ = on_begin => {} // dropping the call cancels it
    }
    c.still_serves().await
}

async fn cancel_after_first_response(c: &mut Case) -> Outcome {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(streaming_request(Some(31415), Some(27182)))
        .map_err(|e| e.to_string())?;
    let request = c.request(ReceiverStream::new(rx));
    let mut responses = c
        .client
        .full_duplex_call(request)
        .await
        .map_err(failed("FullDuplexCall"))?
        .into_inner();
    let response = responses
        .message()
        .await
        .map_err(failed("FullDuplexCall"))?
        .ok_or("FullDuplexCall ended before its first response")?;
    check_payload(response.payload.as_ref(), 31415, "response 1")?;
    // Cancel: drop the call with its request stream still open.
    drop(responses);
    drop(tx);
    c.still_serves().await
}

async fn timeout_on_sleeping_server(c: &mut Case) -> Outcome {
    let deadline = Duration::from_millis(1);
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(streaming_request(None, Some(27182)))
        .map_err(|e| e.to_string())?;
    let mut request = Request::new(ReceiverStream::new(rx));
    request.set_timeout(deadline);
    let mut client = c.client.clone();
    let call = async move {
        let mut responses = client.full_duplex_call(request).await?.into_inner();
        while responses.message().await?.is_some() {}
        Ok::<(), Status>(())
    };
    let outcome = tokio::time::timeout(deadline, call).await;
    drop(tx);
    match outcome {
        Err(_) => Ok(()), // the client's own deadline passed first
        Ok(Err(s)) if s.code() == Code::DeadlineExceeded => Ok(()),
        Ok(Err(s)) if s.code() == Code::Cancelled && s.message() == "Timeout expired" => Ok(()),
        Ok(result) => Err(format!(
            "FullDuplexCall with a 1 ms deadline ended with {:?}, expected DeadlineExceeded",
            result.map_err(|s| show(&s))
        )),
    }
}
