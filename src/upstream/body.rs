//! The request body a server gets: a client's body streaming through (counted for
//! the access log, kept for a retry), a kept body sent again, or the request of an
//! exchange read out for hyper's HTTP/1.1 client.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A client's request body on its way to a server (counted for the access log when
/// that is on, and kept for a retry when its router retries), a kept body sent
/// again, or the request of an exchange (an HTTP/2 client's call to an HTTP/1.1
/// server).
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    exchange: Option<Arc<super::exchange::Exchange>>,
    counted: Option<Arc<AtomicU64>>,
    keep: Option<Arc<super::replay::Replay>>,
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
    pub(crate) fn keep_into(&mut self, replay: Arc<super::replay::Replay>) {
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
