//! Bodies gantry streams: the response a client gets (a server's body, or a short
//! router-made one) and the request a server gets.
//!
//! A proxied response body carries its [`Call`], so a call counts as in flight until
//! its last byte or trailer is delivered, and its outcome (the `grpc-status` in the
//! trailers) is read as the trailers pass, without buffering anything.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::call::{Call, End};
use super::deadline;
use super::upstream::UpstreamBody;
use crate::telemetry::Outcome;
use std::future::Future;
use std::time::Instant;

/// What a broken response stream reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project_lite::pin_project! {
    /// A response body.
    pub struct ProxyBody {
        #[pin]
        inner: Option<UpstreamBody>,
        // A router-made body, sent once.
        text: Option<Bytes>,
        call: Option<Call>,
        // The client's deadline (`grpc-timeout`), while the response streams.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        // Keeps the client connection from idling out while the response streams.
        active: Option<super::entrypoint::ActiveCall>,
    }
}

impl ProxyBody {
    /// A body with no data: the headers end the stream.
    pub fn empty() -> ProxyBody {
        ProxyBody {
            inner: None,
            text: None,
            call: None,
            deadline: None,
            active: None,
        }
    }

    /// A short router-made body.
    pub fn text(text: String) -> ProxyBody {
        ProxyBody {
            inner: None,
            text: Some(Bytes::from(text)),
            call: None,
            deadline: None,
            active: None,
        }
    }

    /// A server's body; the call ends with it, or at `deadline` (then with
    /// DEADLINE_EXCEEDED trailers).
    pub fn upstream(body: UpstreamBody, call: Call, deadline: Option<Instant>) -> ProxyBody {
        let done = body.is_end_stream();
        let call = if done {
            // A trailers-only or empty response: the head was the whole answer.
            call.finish(End::Complete);
            None
        } else {
            Some(call)
        };
        ProxyBody {
            inner: Some(body),
            text: None,
            call,
            deadline: deadline
                .filter(|_| !done)
                .map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
            active: None,
        }
    }

    /// Counts this response as a call open on its client connection until the body
    /// is done (see the entrypoint's idle timeout).
    pub(crate) fn hold(mut self, active: super::entrypoint::ActiveCall) -> ProxyBody {
        self.active = Some(active);
        self
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(this.text.take().map(|t| Ok(Frame::data(t))));
        };
        let mut inner = inner;
        let polled = inner.as_mut().poll_frame(cx);
        if polled.is_pending() {
            if let Some(expired) = this
                .deadline
                .as_mut()
                .map(|d| d.as_mut().poll(cx).is_ready())
            {
                if expired {
                    // Stop reading the server (dropping its body cancels its stream)
                    // and end the client's response with the verdict.
                    this.inner.set(None);
                    *this.deadline = None;
                    if let Some(call) = this.call.take() {
                        call.fail(Outcome::Grpc(4));
                    }
                    return Poll::Ready(Some(Ok(Frame::trailers(deadline::exceeded_trailers()))));
                }
            }
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(call) = this.call.as_mut() {
                        call.data(data.len());
                    }
                    // HTTP/1.1 with a Content-Length ends with its last byte, and the
                    // server side may never poll again: the call is over now.
                    if inner.as_ref().get_ref().is_end_stream() {
                        if let Some(call) = this.call.take() {
                            call.finish(End::Complete);
                        }
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    // Trailers are the last frame: the call is over as they pass.
                    if let Some(mut call) = this.call.take() {
                        call.trailers(trailers);
                        call.finish(End::Complete);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish(End::Complete);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish(End::Broken);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(b) => b.is_end_stream(),
            None => self.text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(self.text.as_ref().map_or(0, |t| t.len() as u64)),
        }
    }
}

/// A client's request body on its way to a server (counted for the access log when
/// that is on, and kept for a retry when its router retries), a kept body sent
/// again, or the request of an exchange (an HTTP/2 client's call to an HTTP/1.1
/// server).
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    exchange: Option<Arc<super::exchange::Exchange>>,
    counted: Option<Arc<AtomicU64>>,
    keep: Option<Arc<super::retry::Replay>>,
    /// A replay: the kept data, then the kept trailers.
    queued: std::collections::VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl RequestBody {
    pub fn new(inner: Incoming, counted: Option<Arc<AtomicU64>>) -> RequestBody {
        RequestBody {
            inner: Some(inner),
            exchange: None,
            counted,
            keep: None,
            queued: Default::default(),
            trailers: None,
        }
    }

    /// A body kept earlier, sent again.
    pub fn replay(data: Vec<Bytes>, trailers: Option<http::HeaderMap>) -> RequestBody {
        RequestBody {
            inner: None,
            exchange: None,
            counted: None,
            keep: None,
            queued: data.into(),
            trailers,
        }
    }

    /// The request of an exchange, read out as the server takes it.
    pub fn from_exchange(x: Arc<super::exchange::Exchange>) -> RequestBody {
        RequestBody {
            inner: None,
            exchange: Some(x),
            counted: None,
            keep: None,
            queued: Default::default(),
            trailers: None,
        }
    }

    /// Keeps every frame into `replay` as it streams.
    pub(crate) fn keep_into(&mut self, replay: Arc<super::retry::Replay>) {
        if self.inner.as_ref().is_some_and(|i| i.is_end_stream()) {
            replay.complete();
        }
        self.keep = Some(replay);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(x) = &this.exchange {
            return poll_exchange(x, cx);
        }
        let Some(inner) = this.inner.as_mut() else {
            if let Some(data) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                if let Some(counted) = &this.counted {
                    counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if let Some(keep) = &this.keep {
                    keep.data(data);
                }
            } else if let (Some(keep), Some(t)) = (&this.keep, frame.trailers_ref()) {
                keep.trailers(t);
            }
        }
        if let Some(keep) = &this.keep {
            // The last frame may come with the end of stream; hyper need not poll again.
            if matches!(polled, Poll::Ready(None))
                || (matches!(polled, Poll::Ready(Some(Ok(_)))) && inner.is_end_stream())
            {
                keep.complete();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if let Some(x) = &self.exchange {
            let s = x.lock();
            return s.req.end && s.req.is_drained();
        }
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.queued.is_empty() && self.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(x) = &self.exchange {
            let s = x.lock();
            return if s.req.end && s.req.trailers.is_none() {
                SizeHint::with_exact(s.req.queued as u64)
            } else {
                SizeHint::default()
            };
        }
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => {
                let n: usize = self.queued.iter().map(Bytes::len).sum();
                SizeHint::with_exact(n as u64)
            }
        }
    }
}

/// The next frame of an exchange's request, for hyper's HTTP/1.1 client. A client
/// that went away ends the body early (hyper then abandons the server's call).
fn poll_exchange(
    x: &Arc<super::exchange::Exchange>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
    x.register_server(cx.waker());
    let (frame, notify) = {
        let mut s = x.lock();
        s.server_turn();
        if s.client_end.is_some() {
            return Poll::Ready(None);
        }
        let frame = match s.req.take(usize::MAX) {
            Some((data, owed)) => {
                x.credit_client(owed);
                Some(Frame::data(data))
            }
            None => match s.req.trailers.take() {
                Some(t) => Some(Frame::trailers(t)),
                None if s.req.end => return Poll::Ready(None),
                None => None,
            },
        };
        let notify =
            s.req.released >= super::exchange::CREDIT_STEP && !s.req.end && s.notify_client();
        (frame, notify)
    };
    if notify {
        x.wake_client();
    }
    match frame {
        Some(f) => Poll::Ready(Some(Ok(f))),
        None => Poll::Pending,
    }
}
