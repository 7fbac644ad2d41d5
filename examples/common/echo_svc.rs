//! The `gantry.test.Echo` service (see `proto/echo.proto`): replies that tell
//! the test what the backend received, and knobs to fail, stall, stream and
//! send big messages.
//!
//! Metadata echo, per call kind (`K` is any request key starting with
//! `x-echo-`, `x-trailer-<rest>` is the trailer name made from it):
//!
//! | call | response headers | trailers |
//! | --- | --- | --- |
//! | Unary, ClientStream: OK | `K` | none (tonic sends no custom trailers on unary answers) |
//! | Unary, ClientStream: failing | trailers-only: `K` and `x-trailer-<rest>` | (same block) |
//! | ServerStream with `count` 0 and `fail_code` set | trailers-only: `K` and `x-trailer-<rest>` | (same block) |
//! | ServerStream, Bidi: OK or failing | `K` | `x-trailer-<rest>` with `grpc-status` |
//!
//! A streaming answer that has something to echo ends with a trailer block
//! carrying `grpc-status: 0` and the `x-trailer-` keys; the stream yields
//! `Err(Status::with_metadata(Code::Ok, "", trailers))` for that, which
//! tonic 0.14 writes as the trailers frame like any other final status.
//!
//! Shared by `examples/common` and `tests/support/backend.rs`: it reaches the
//! generated code as `super::echo` and the counters as `super::stats`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use http::{HeaderMap, HeaderName};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status, Streaming};

use super::echo::echo_server::{Echo, EchoServer};
use super::echo::{EchoReply, EchoRequest, StreamRequest};
use super::stats::{Stats, Tracked};

/// Largest message the demo and test services accept or send (16 MiB).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The request line of a call, copied into the request's extensions by the
/// connection layer (`server.rs`) because tonic hands services the headers
/// but not the URI.
#[derive(Clone, Debug, Default)]
pub struct RequestTarget {
    /// The `:authority` pseudo-header (or the `Host` of an HTTP/1 request).
    pub authority: Option<String>,
    /// The `:path` pseudo-header, with the query if any.
    pub path: String,
    /// The `:scheme` pseudo-header, when the request had one.
    pub scheme: Option<String>,
}

impl RequestTarget {
    /// Reads the target of an HTTP request.
    pub fn of<B>(req: &http::Request<B>) -> Self {
        let uri = req.uri();
        let authority = uri.authority().map(ToString::to_string).or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        });
        RequestTarget {
            authority,
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), ToString::to_string),
            scheme: uri.scheme_str().map(str::to_owned),
        }
    }
}

/// The Echo service of one named backend.
#[derive(Clone, Debug)]
pub struct EchoService {
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl EchoService {
    /// A service answering as `name` and counting into `stats`.
    pub fn new(name: &str, stats: Arc<Stats>) -> Self {
        EchoService {
            name: name.into(),
            stats,
        }
    }

    /// The service wrapped for tonic, with the 16 MiB message limits.
    pub fn into_server(self) -> EchoServer<Self> {
        EchoServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// `n` pattern bytes: byte `i` is `i % 251`.
pub fn pattern(n: u32) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Request headers as the backend saw them, plus the request line.
fn seen_headers<T>(req: &Request<T>) -> HashMap<String, String> {
    let headers = req.metadata().clone().into_headers();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        seen.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    if let Some(target) = req.extensions().get::<RequestTarget>() {
        if let Some(authority) = &target.authority {
            seen.insert(":authority".into(), authority.clone());
        }
        if let Some(scheme) = &target.scheme {
            seen.insert(":scheme".into(), scheme.clone());
        }
        seen.insert(":path".into(), target.path.clone());
    }
    seen
}

/// What a call sends back from its `x-echo-` request metadata.
#[derive(Clone, Debug, Default)]
struct Echoed {
    /// `x-echo-*` entries, for the response headers.
    headers: MetadataMap,
    /// The same values renamed `x-trailer-*`, for the trailers.
    trailers: MetadataMap,
}

impl Echoed {
    fn of<T>(req: &Request<T>) -> Self {
        let mut headers = HeaderMap::new();
        let mut trailers = HeaderMap::new();
        for (name, value) in &req.metadata().clone().into_headers() {
            let Some(rest) = name.as_str().strip_prefix("x-echo-") else {
                continue;
            };
            headers.append(name.clone(), value.clone());
            if let Ok(trailer) = HeaderName::from_bytes(format!("x-trailer-{rest}").as_bytes()) {
                trailers.append(trailer, value.clone());
            }
        }
        Echoed {
            headers: MetadataMap::from_headers(headers),
            trailers: MetadataMap::from_headers(trailers),
        }
    }

    /// A successful unary answer: the echo in the headers.
    fn respond<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        *response.metadata_mut() = self.headers.clone();
        response
    }

    /// The error of a call that fails before it has sent its headers: one
    /// trailers-only block with both the header and the trailer keys.
    fn fail_early(&self, code: i32, message: &str) -> Status {
        let mut all = self.headers.clone().into_headers();
        all.extend(self.trailers.clone().into_headers());
        Status::with_metadata(
            Code::from_i32(code),
            message,
            MetadataMap::from_headers(all),
        )
    }

    /// The final status of a stream whose headers are already out.
    fn fail_late(&self, code: i32, message: &str) -> Status {
        Status::with_metadata(Code::from_i32(code), message, self.trailers.clone())
    }

    /// How a successful stream ends: with the echo trailers when there are
    /// any (an OK status yielded as the last item), else plainly.
    fn ok_end(&self) -> Option<Status> {
        (!self.trailers.is_empty())
            .then(|| Status::with_metadata(Code::Ok, "", self.trailers.clone()))
    }
}

async fn pause(ms: u32) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
}

/// Builds the reply to one request message, moving its payload.
fn answer(
    backend: &str,
    req: EchoRequest,
    headers: HashMap<String, String>,
    count: u64,
) -> EchoReply {
    let bytes = req.payload.len() as u64;
    let payload = if req.reply_size > 0 {
        pattern(req.reply_size)
    } else {
        req.payload
    };
    EchoReply {
        backend: backend.to_owned(),
        payload,
        headers,
        count,
        bytes,
    }
}

/// State of a ServerStream answer.
struct Ticker {
    template: EchoReply,
    seq: u64,
    count: u64,
    interval_ms: u32,
    end: Option<Status>,
    done: bool,
}

/// State of a Bidi answer.
struct Chat {
    inbound: Streaming<EchoRequest>,
    backend: Arc<str>,
    headers: HashMap<String, String>,
    echoed: Echoed,
    seq: u64,
    done: bool,
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.stats.count_call();
        let headers = seen_headers(&request);
        let echoed = Echoed::of(&request);
        let req = request.into_inner();
        let slow = self
            .stats
            .unary_delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        pause(
            req.delay_ms
                .saturating_add(u32::try_from(slow).unwrap_or(u32::MAX)),
        )
        .await;
        if req.fail_code != 0 {
            return Err(echoed.fail_early(req.fail_code, &req.fail_message));
        }
        if self.stats.next_unary_fails() {
            return Err(echoed.fail_early(14, "this server is made to fail"));
        }
        Ok(echoed.respond(answer(&self.name, req, headers, 1)))
    }

    type ServerStreamStream = Tracked<EchoReply>;

    async fn server_stream(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        self.stats.count_call();
        let headers = seen_headers(&request);
        let echoed = Echoed::of(&request);
        let req = request.into_inner();
        pause(req.delay_ms).await;
        if req.count == 0 && req.fail_code != 0 {
            return Err(echoed.fail_early(req.fail_code, &req.fail_message));
        }
        let ticker = Ticker {
            template: EchoReply {
                backend: self.name.to_string(),
                payload: pattern(req.payload_size),
                headers,
                count: 0,
                bytes: 0,
            },
            seq: 0,
            count: req.count.into(),
            interval_ms: req.interval_ms,
            end: if req.fail_code != 0 {
                Some(echoed.fail_late(req.fail_code, &req.fail_message))
            } else {
                echoed.ok_end()
            },
            done: false,
        };
        let replies = stream::unfold(ticker, |mut t| async move {
            if t.done {
                return None;
            }
            if t.count == 0 || t.seq < t.count {
                if t.seq > 0 {
                    pause(t.interval_ms).await;
                }
                let mut reply = t.template.clone();
                reply.count = t.seq;
                t.seq += 1;
                return Some((Ok(reply), t));
            }
            t.done = true;
            let end = t.end.take()?;
            Some((Err(end), t))
        });
        Ok(echoed.respond(Tracked::new(self.stats.clone(), replies)))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        self.stats.count_call();
        let headers = seen_headers(&request);
        let echoed = Echoed::of(&request);
        let mut inbound = request.into_inner();
        let (mut count, mut bytes, mut reply_size) = (0u64, 0u64, 0u32);
        while let Some(req) = inbound.message().await? {
            count += 1;
            bytes += req.payload.len() as u64;
            pause(req.delay_ms).await;
            if req.fail_code != 0 {
                return Err(echoed.fail_early(req.fail_code, &req.fail_message));
            }
            if req.reply_size > 0 {
                reply_size = req.reply_size;
            }
        }
        Ok(echoed.respond(EchoReply {
            backend: self.name.to_string(),
            payload: pattern(reply_size),
            headers,
            count,
            bytes,
        }))
    }

    type BidiStream = Tracked<EchoReply>;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        self.stats.count_call();
        let echoed = Echoed::of(&request);
        let chat = Chat {
            headers: seen_headers(&request),
            echoed: echoed.clone(),
            backend: self.name.clone(),
            inbound: request.into_inner(),
            seq: 0,
            done: false,
        };
        let replies = stream::unfold(chat, |mut c| async move {
            if c.done {
                return None;
            }
            match c.inbound.message().await {
                Ok(Some(req)) => {
                    pause(req.delay_ms).await;
                    if req.fail_code != 0 {
                        c.done = true;
                        let status = c.echoed.fail_late(req.fail_code, &req.fail_message);
                        return Some((Err(status), c));
                    }
                    let reply = answer(&c.backend, req, c.headers.clone(), c.seq);
                    c.seq += 1;
                    Some((Ok(reply), c))
                }
                Ok(None) => {
                    c.done = true;
                    let end = c.echoed.ok_end()?;
                    Some((Err(end), c))
                }
                Err(status) if matches!(status.code(), Code::Cancelled | Code::Unknown) => {
                    // The client reset the call or the connection broke:
                    // nobody is left to answer, and hyper drops this stream
                    // (counting it as cancelled) as soon as it sees that.
                    futures_util::future::pending().await
                }
                Err(status) => {
                    // A bad request message (too big, undecodable): answer
                    // with tonic's error.
                    c.done = true;
                    Some((Err(status), c))
                }
            }
        });
        Ok(echoed.respond(Tracked::new(self.stats.clone(), replies)))
    }
}
