//! The interop test server on tonic, in the test's process: `grpc.testing.TestService`
//! with the server features of grpc's `doc/interop-test-descriptions.md` (EmptyCall,
//! UnaryCall, StreamingOutputCall, StreamingInputCall, FullDuplexCall, HalfDuplexCall,
//! Echo Status, `interval_us`). `UnimplementedCall` is the generated default stub
//! (UNIMPLEMENTED) and `UnimplementedService` is not served: tonic's router answers
//! UNIMPLEMENTED for it.
//!
//! Two features tonic leaves to the application are done around its router, on each
//! HTTP request ([`answer`]), as gRPC's own servers do them:
//! - Echo Metadata: `x-grpc-test-echo-initial` back in the response headers and
//!   `x-grpc-test-echo-trailing-bin` in the trailers (tonic has no API for custom
//!   trailers on an OK unary answer);
//! - the call's deadline (`grpc-timeout`): a call still running when it passes ends
//!   with DEADLINE_EXCEEDED (tonic's own timeout covers only the response head, and
//!   reports CANCELLED).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Future, Stream};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::Service;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status, Streaming};

use super::super::proto::interop::test_service_server::{TestService, TestServiceServer};
use super::super::proto::interop::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};
use super::{ECHO_INITIAL, ECHO_TRAILING};

/// The tonic interop server on a free 127.0.0.1 port; stopped (with its
/// connections) when dropped.
pub struct TonicServer {
    pub addr: SocketAddr,
    accept: tokio::task::AbortHandle,
}

impl TonicServer {
    pub async fn start() -> TonicServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the tonic interop server");
        let addr = listener.local_addr().expect("its address");
        let routes = Routes::new(TestServiceServer::new(Interop));
        let accept = tokio::spawn(async move {
            // Owned here, so aborting the accept loop ends every connection too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            connections.spawn(serve(stream, routes.clone()));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        TonicServer {
            addr,
            accept: accept.abort_handle(),
        }
    }
}

impl Drop for TonicServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// h2c on one connection, every request through [`answer`].
async fn serve(stream: TcpStream, routes: Routes) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| answer(routes.clone(), req));
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.max_concurrent_streams(None::<u32>);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// One call: tonic's answer, with the echoed metadata added and the deadline kept.
async fn answer(
    mut routes: Routes,
    req: http::Request<Incoming>,
) -> Result<http::Response<Answer>, Infallible> {
    let echo_initial = req.headers().get(ECHO_INITIAL).cloned();
    let echo_trailing = req.headers().get(ECHO_TRAILING).cloned();
    let deadline = req
        .headers()
        .get("grpc-timeout")
        .and_then(|v| parse_timeout(v.as_bytes()))
        .map(|timeout| Instant::now() + timeout);
    let call = Service::call(&mut routes, req);
    let response = match deadline {
        Some(at) => match tokio::time::timeout_at(at, call).await {
            Ok(response) => response,
            Err(_) => return Ok(deadline_exceeded(echo_trailing)),
        },
        None => call.await,
    };
    let Ok(response) = response;
    let (mut parts, body) = response.into_parts();
    if let Some(value) = echo_initial {
        parts.headers.insert(ECHO_INITIAL, value);
    }
    let mut echo_trailing = echo_trailing;
    if parts.headers.contains_key("grpc-status") {
        // Trailers-only: the status is in this header block, and so go the trailers.
        if let Some(value) = echo_trailing.take() {
            parts.headers.insert(ECHO_TRAILING, value);
        }
    }
    let body = Answer {
        inner: Some(body),
        echo_trailing,
        deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
    };
    Ok(http::Response::from_parts(parts, body))
}

/// A trailers-only DEADLINE_EXCEEDED answer.
fn deadline_exceeded(echo_trailing: Option<HeaderValue>) -> http::Response<Answer> {
    let mut response = http::Response::new(Answer {
        inner: None,
        echo_trailing: None,
        deadline: None,
    });
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(deadline_trailers(echo_trailing));
    response
}

fn deadline_trailers(echo_trailing: Option<HeaderValue>) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("4"));
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("deadline%20exceeded"),
    );
    if let Some(value) = echo_trailing {
        trailers.insert(ECHO_TRAILING, value);
    }
    trailers
}

/// `grpc-timeout`: at most 8 digits and a unit (gRPC over HTTP/2, "Requests").
fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// tonic's response body, with the echoed trailer added to its trailers and cut
/// short with DEADLINE_EXCEEDED trailers when the deadline passes first.
struct Answer {
    /// `None` once it has ended (or for a trailers-only answer made here).
    inner: Option<tonic::body::Body>,
    echo_trailing: Option<HeaderValue>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.inner = None;
                let trailers = deadline_trailers(this.echo_trailing.take());
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    this.inner = None;
                    if let Some(value) = this.echo_trailing.take() {
                        trailers.insert(HeaderName::from_static(ECHO_TRAILING), value);
                    }
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(data) => Poll::Ready(Some(Ok(data))),
            },
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }
}

/// The TestService methods.
struct Interop;

type Responses =
    Pin<Box<dyn Stream<Item = Result<StreamingOutputCallResponse, Status>> + Send + 'static>>;

fn zeros(size: i32) -> Payload {
    Payload {
        r#type: 0,
        body: vec![0; usize::try_from(size).unwrap_or(0)],
    }
}

/// Echo Status: the status the request asks to end with, if any.
fn echo_status(status: Option<&EchoStatus>) -> Result<(), Status> {
    match status {
        Some(s) if s.code != 0 => Err(Status::new(Code::from_i32(s.code), s.message.clone())),
        _ => Ok(()),
    }
}

/// Sends one response per parameter set, each after its interval; false once the
/// client is gone.
async fn respond(
    tx: &mpsc::Sender<Result<StreamingOutputCallResponse, Status>>,
    params: &[ResponseParameters],
) -> bool {
    for p in params {
        if p.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(p.interval_us.unsigned_abs().into())).await;
        }
        let response = StreamingOutputCallResponse {
            payload: Some(zeros(p.size)),
        };
        if tx.send(Ok(response)).await.is_err() {
            return false;
        }
    }
    true
}

/// Answers each request of `inbound` in order (all of them first, if `buffer`).
fn duplex(mut inbound: Streaming<StreamingOutputCallRequest>, buffer: bool) -> Responses {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut buffered = Vec::new();
        loop {
            let request = match inbound.message().await {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            if buffer {
                buffered.push(request);
            } else if !answer_one(&tx, request).await {
                return;
            }
        }
        for request in buffered {
            if !answer_one(&tx, request).await {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// One request of a streaming call: its status if it asks for one, else its
/// responses; false if the call is over.
async fn answer_one(
    tx: &mpsc::Sender<Result<StreamingOutputCallResponse, Status>>,
    request: StreamingOutputCallRequest,
) -> bool {
    if let Err(status) = echo_status(request.response_status.as_ref()) {
        let _ = tx.send(Err(status)).await;
        return false;
    }
    respond(tx, &request.response_parameters).await
}

#[tonic::async_trait]
impl TestService for Interop {
    async fn empty_call(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let request = request.into_inner();
        echo_status(request.response_status.as_ref())?;
        Ok(Response::new(SimpleResponse {
            payload: Some(zeros(request.response_size)),
            ..Default::default()
        }))
    }

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Responses>, Status> {
        let request = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if respond(&tx, &request.response_parameters).await {
                if let Err(status) = echo_status(request.response_status.as_ref()) {
                    let _ = tx.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut inbound = request.into_inner();
        let mut total = 0usize;
        while let Some(message) = inbound.message().await? {
            total += message.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Responses>, Status> {
        Ok(Response::new(duplex(request.into_inner(), false)))
    }

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Responses>, Status> {
        Ok(Response::new(duplex(request.into_inner(), true)))
    }
}
