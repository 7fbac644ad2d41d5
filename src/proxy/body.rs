//! The response body gantry sends: a server's body streamed through as it arrives, or
//! an empty one for router-made responses.
//!
//! A proxied body carries the call's [`InFlight`] guard, so a call counts as in
//! flight until its last byte (or trailer) is delivered or the client goes away.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::balance::InFlight;

pin_project_lite::pin_project! {
    /// A response body.
    pub struct ProxyBody {
        #[pin]
        inner: Option<Incoming>,
        // A router-made body, sent once.
        text: Option<Bytes>,
        // Held for its `Drop`.
        call: Option<InFlight>,
    }
}

impl ProxyBody {
    /// A body with no data: the headers end the stream.
    pub fn empty() -> ProxyBody {
        ProxyBody {
            inner: None,
            text: None,
            call: None,
        }
    }

    /// A short router-made body.
    pub fn text(text: String) -> ProxyBody {
        ProxyBody {
            inner: None,
            text: Some(Bytes::from(text)),
            call: None,
        }
    }

    /// A server's body, counted as part of the call until it ends.
    pub fn upstream(body: Incoming, call: InFlight) -> ProxyBody {
        ProxyBody {
            inner: Some(body),
            text: None,
            call: Some(call),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(this.text.take().map(|t| Ok(Frame::data(t))));
        };
        let polled = inner.poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                // The call is over: stop counting it now rather than at drop.
                this.call.take();
            }
            _ => {}
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
