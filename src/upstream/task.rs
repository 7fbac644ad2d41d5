//! Calls from HTTP/1.1 clients to h2c servers: hyper serves the client with a task
//! per call, and that task drives the client side of the call's [`Exchange`] on
//! the server's connection (the same connection HTTP/2 clients' calls use).
//!
//! The request body is read only once the server's connection has opened the
//! stream, so a call that never got that far hands its request back untouched (to
//! be sent elsewhere). A body still streaming when the answer starts gets a task of
//! its own. Dropping the response (the client went away, a deadline passed)
//! cancels the server's stream.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use super::conn::Handle;
use super::{SendError, UpstreamError};
use crate::http2::frame::Reason;
use crate::upstream::body::RequestBody;
use crate::upstream::exchange::{Exchange, ServerEnd, Side, CREDIT_STEP};

/// Request bytes held for the server before the client is read further.
pub const LIMIT: usize = 256 << 10;

/// Sends `req` on the connection behind `handle`, and waits for the answer's head.
pub async fn send(
    handle: Arc<Handle>,
    addr: SocketAddr,
    req: Request<RequestBody>,
) -> Result<Response<ExchangeBody>, SendError> {
    let (parts, body) = req.into_parts();
    let end = body.is_end_stream();
    let head = Request::from_parts(parts, ());
    let x = Exchange::new(0, Side::task(), Side::Conn(handle.inbox.clone()), head, end);
    if let Err(x) = handle.inbox.push(x.clone()) {
        let error = UpstreamError::Closed {
            addr,
            why: "it closed as the call was handed over".into(),
        };
        return Err(give_back(&x, body, error));
    }
    let mut guard = Cancel(Some(x.clone()));
    let mut pump = Pump {
        x: x.clone(),
        body: Some(body),
        touched: false,
        done: end,
    };
    let head = poll_fn(|cx| {
        x.register_client(cx.waker());
        let _ = pump.poll_send(cx);
        let mut s = x.lock();
        s.client_turn();
        if let Some(res) = s.res_head.take() {
            s.req.forget();
            return Poll::Ready(Ok(res));
        }
        match &s.server_end {
            Some(end) => Poll::Ready(Err(end.clone())),
            None => Poll::Pending,
        }
    })
    .await;
    match head {
        Ok(res) => {
            if !pump.done {
                // A body still streaming (a client or bidi stream): its own task.
                tokio::spawn(pump);
            }
            let body = ExchangeBody { x: guard.0.take() };
            Ok(res.map(|()| body))
        }
        Err(end) => {
            guard.0 = None;
            let error = match end {
                ServerEnd::Unsent(e) => UpstreamError::Shared(e),
                ServerEnd::Refused => UpstreamError::Request {
                    addr,
                    source: "the server refused the stream (REFUSED_STREAM)".into(),
                },
                ServerEnd::Reset(r) => UpstreamError::Request {
                    addr,
                    source: format!("the server reset the stream ({r})").into(),
                },
                ServerEnd::Lost(why) | ServerEnd::Silent(why) => UpstreamError::Request {
                    addr,
                    source: why.to_string().into(),
                },
            };
            let unseen = matches!(error, UpstreamError::Shared(_)) && !pump.touched;
            match pump.body.take().filter(|_| unseen) {
                Some(body) => Err(give_back(&x, body, error)),
                None => {
                    x.cancel(Reason::CANCEL);
                    Err(SendError {
                        error,
                        request: None,
                    })
                }
            }
        }
    }
}

/// The request of a call that went nowhere, whole again.
fn give_back(x: &Exchange, body: RequestBody, error: UpstreamError) -> SendError {
    let head = x.lock().req_head.take();
    SendError {
        error,
        request: head.map(|h| h.map(|()| body)),
    }
}

/// Cancels the exchange unless disarmed (the call's future was dropped).
struct Cancel(Option<Arc<Exchange>>);

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Some(x) = self.0.take() {
            x.cancel(Reason::CANCEL);
        }
    }
}

/// A client's request body on its way into an exchange.
struct Pump {
    x: Arc<Exchange>,
    body: Option<RequestBody>,
    /// The body was read from (it cannot be handed back whole any more).
    touched: bool,
    done: bool,
}

impl Pump {
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.done {
            {
                let mut s = self.x.lock();
                s.req.released = 0;
                if s.client_end.is_some() || s.server_end.is_some() {
                    self.done = true;
                    break;
                }
                if !s.opened {
                    // Not on the wire yet: the body stays unread, so the call can
                    // still go elsewhere whole.
                    return Poll::Pending;
                }
                if s.req.queued >= LIMIT {
                    s.req.producer_waiting = true;
                    return Poll::Pending;
                }
            }
            let Some(body) = self.body.as_mut() else {
                self.done = true;
                break;
            };
            self.touched = true;
            let polled = match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(p) => p,
            };
            let notify = {
                let mut s = self.x.lock();
                match polled {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            s.req.push(data);
                            if self.body.as_ref().is_some_and(Body::is_end_stream) {
                                s.req.end = true;
                                self.done = true;
                            }
                        }
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                s.req.trailers = Some(t);
                            }
                            s.req.end = true;
                            self.done = true;
                        }
                    },
                    None => {
                        s.req.end = true;
                        self.done = true;
                    }
                    Some(Err(_)) => {
                        // The client's side broke: so does the server's.
                        drop(s);
                        self.x.cancel(Reason::CANCEL);
                        self.done = true;
                        break;
                    }
                }
                s.notify_server()
            };
            if notify {
                let _ = self.x.wake_server();
            }
        }
        Poll::Ready(())
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.x.register_client(cx.waker());
        this.poll_send(cx)
    }
}

/// A server's answer read out of an exchange; dropping it early cancels the call.
#[derive(Debug)]
pub struct ExchangeBody {
    x: Option<Arc<Exchange>>,
}

impl Drop for ExchangeBody {
    fn drop(&mut self) {
        if let Some(x) = self.x.take() {
            let over = {
                let s = x.lock();
                s.res.end && s.res.is_drained() && s.req.end && s.req.is_drained()
            };
            if !over {
                x.cancel(Reason::CANCEL);
            }
        }
    }
}

impl Body for ExchangeBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(x) = self.x.clone() else {
            return Poll::Ready(None);
        };
        x.register_client(cx.waker());
        let (frame, notify) = {
            let mut s = x.lock();
            s.client_turn();
            let frame = match s.res.take(usize::MAX) {
                Some((data, owed)) => {
                    x.credit_server(owed);
                    Some(Ok(Frame::data(data)))
                }
                None => match s.res.trailers.take() {
                    Some(t) => Some(Ok(Frame::trailers(t))),
                    None if s.res.end => return Poll::Ready(None),
                    None => s
                        .server_end
                        .as_ref()
                        .map(|end| Err(format!("the server's answer broke off: {end:?}").into())),
                },
            };
            let notify = s.res.released >= CREDIT_STEP && !s.res.end && s.notify_server();
            (frame, notify)
        };
        if notify {
            let _ = x.wake_server();
        }
        match frame {
            Some(f) => Poll::Ready(Some(f)),
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.x.as_ref().is_none_or(|x| {
            let s = x.lock();
            s.res.end && s.res.is_drained()
        })
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
