//! Calls from HTTP/2 clients to HTTP/1.1 servers: a task per call carries the
//! exchange through hyper's pooled client (one connection per call in flight,
//! kept alive between calls).
//!
//! The request body is read out of the exchange as hyper asks for it; the answer
//! goes back in as it comes, no more than [`LIMIT`] bytes ahead of the client
//! (the client side wakes the task when it has taken some).

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use http::{Request, Response};
use http_body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::UpstreamError;
use crate::upstream::body::RequestBody;
use crate::upstream::exchange::{Exchange, ServerEnd};

/// Response bytes held for the client before the server is read further.
pub const LIMIT: usize = 256 << 10;

pub fn spawn(client: Client<HttpConnector, RequestBody>, addr: SocketAddr, x: Arc<Exchange>) {
    tokio::spawn(run(client, addr, x));
}

async fn run(client: Client<HttpConnector, RequestBody>, addr: SocketAddr, x: Arc<Exchange>) {
    let head = {
        let mut s = x.lock();
        s.opened = true;
        s.req_head.clone()
    };
    let Some(head) = head else { return };
    let (parts, ()) = head.into_parts();
    let req = Request::from_parts(parts, RequestBody::from_exchange(x.clone()));
    let sent = client.request(req);
    tokio::pin!(sent);
    // The client may go away while the server thinks.
    let answer = poll_fn(|cx| {
        x.register_server(cx.waker());
        {
            let mut s = x.lock();
            s.server_turn();
            if s.client_end.is_some() {
                return Poll::Ready(None);
            }
        }
        sent.as_mut().poll(cx).map(Some)
    })
    .await;
    let res = match answer {
        None => return,
        Some(Ok(res)) => res,
        Some(Err(e)) => {
            let why = if e.is_connect() {
                let source = std::io::Error::other(
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| e.to_string()),
                );
                ServerEnd::Unsent(Arc::new(UpstreamError::Connect { addr, source }))
            } else {
                ServerEnd::Lost(format!("request to {addr} failed: {e}").into())
            };
            x.end_server(why);
            return;
        }
    };
    let (parts, mut body) = res.into_parts();
    let notify = {
        let mut s = x.lock();
        s.res_head = Some(Response::from_parts(parts, ()));
        s.res.end = body.is_end_stream();
        s.notify_client()
    };
    if notify {
        x.wake_client();
    }
    if body.is_end_stream() {
        return;
    }
    poll_fn(|cx| {
        x.register_server(cx.waker());
        loop {
            {
                let mut s = x.lock();
                s.server_turn();
                s.res.released = 0;
                if s.client_end.is_some() {
                    return Poll::Ready(());
                }
                if s.res.queued >= LIMIT {
                    s.res.producer_waiting = true;
                    return Poll::Pending;
                }
            }
            let polled = Pin::new(&mut body).poll_frame(cx);
            let (notify, done) = match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let mut s = x.lock();
                    match frame.into_data() {
                        Ok(data) => s.res.push(data),
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                s.res.trailers = Some(t);
                                s.res.end = true;
                            }
                        }
                    }
                    if body.is_end_stream() {
                        s.res.end = true;
                    }
                    (s.notify_client(), s.res.end)
                }
                Poll::Ready(None) => {
                    let mut s = x.lock();
                    s.res.end = true;
                    (s.notify_client(), true)
                }
                Poll::Ready(Some(Err(e))) => {
                    x.end_server(ServerEnd::Lost(
                        format!("response from {addr} broke: {e}").into(),
                    ));
                    return Poll::Ready(());
                }
            };
            if notify {
                x.wake_client();
            }
            if done {
                return Poll::Ready(());
            }
        }
    })
    .await;
}
