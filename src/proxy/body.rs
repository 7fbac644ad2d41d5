//! The response body a client gets: a server's body, or a short router-made one
//! (the request body a server gets is [`crate::upstream::RequestBody`]).
//!
//! A proxied response body carries its [`Call`], so a call counts as in flight until
//! its last byte or trailer is delivered, and its outcome (the `grpc-status` in the
//! trailers) is read as the trailers pass, without buffering anything.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::call::{Call, End};
use super::deadline;
use crate::telemetry::Outcome;
use crate::upstream::UpstreamBody;
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
