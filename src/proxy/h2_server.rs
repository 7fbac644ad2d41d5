//! HTTP/2 client connections, served on the `h2` crate directly.
//!
//! One task per connection: it drives the connection and every call on it (a
//! `FuturesUnordered`), so a call costs no task of its own and a round of calls is
//! polled, and its frames written, together. A call whose client resets its stream is
//! dropped at once, which cancels its stream on the server.

use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{Request, Response};
use http_body::Body;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::coalesce::Coalesce;
use super::entrypoint::{idle, ActiveCall};
use super::pipe::{keepalive, H2Body, Pipe, RecvBody};
use super::ConnService;

/// Flow-control windows towards clients; see `upstream` for the reasoning.
pub(super) const STREAM_WINDOW: u32 = 1 << 20;
pub(super) const CONNECTION_WINDOW: u32 = 8 << 20;
/// Streams a client may have open on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Request headers a client may send on one stream (gRPC metadata is far smaller).
const MAX_HEADER_LIST_SIZE: u32 = 64 << 10;
/// Response bytes h2 may hold per stream beyond the client's window.
const MAX_SEND_BUFFER: usize = 400 << 10;
/// PINGs on a connection find a client that vanished without a FIN.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves one HTTP/2 client connection until it closes: GOAWAY when `stop` turns
/// true or the connection idles out, then the calls in flight finish.
pub(super) async fn serve(
    io: Coalesce<TcpStream>,
    service: ConnService,
    mut stop: watch::Receiver<bool>,
    idle_timeout: Option<Duration>,
) {
    let client = service.client;
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .handshake::<_, Bytes>(io);
    let mut conn = match handshake.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%client, error = %e, "HTTP/2 handshake with a client failed");
            return;
        }
    };
    let activity = service.activity.clone();
    let keepalive = keepalive(conn.ping_pong(), KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
    let idled = idle(&activity, idle_timeout);
    let stopped = stop.wait_for(|s| *s);
    tokio::pin!(keepalive, idled, stopped);
    let mut calls = FuturesUnordered::new();
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((req, respond))) => calls.push(call(service.clone(), req, respond)),
                Some(Err(e)) => {
                    tracing::debug!(%client, error = %e, "client connection ended with an error");
                    break;
                }
                None => break,
            },
            Some(()) = calls.next(), if !calls.is_empty() => {}
            _ = &mut stopped, if !closing => {
                conn.graceful_shutdown();
                closing = true;
            }
            () = &mut idled, if !closing => {
                tracing::debug!(%client, "client connection idle: closing it");
                conn.graceful_shutdown();
                closing = true;
            }
            () = &mut keepalive => {
                tracing::debug!(%client, "client answered no PING within {KEEPALIVE_TIMEOUT:?}: closing its connection");
                break;
            }
        }
    }
}

/// One call: forwarded, answered, its response body sent as the client's window
/// allows.
async fn call(
    service: ConnService,
    req: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let _active = ActiveCall::start(&service.activity);
    let client = service.client;
    let req = req.map(|recv| RecvBody::H2(H2Body::new(recv)));
    let forward = service.forward(req);
    tokio::pin!(forward);
    // A client that resets its stream before the answer cancels the call.
    let answered = poll_fn(|cx| {
        if respond.poll_reset(cx).is_ready() {
            return Poll::Ready(None);
        }
        forward.as_mut().poll(cx).map(Some)
    })
    .await;
    let Some(response) = answered else {
        return;
    };
    let (parts, body) = response.into_parts();
    let end = body.is_end_stream();
    let stream = match respond.send_response(Response::from_parts(parts, ()), end) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%client, error = %e, "cannot answer a client's stream");
            return;
        }
    };
    if !end {
        // A server's stream that breaks breaks the client's (tonic reports INTERNAL).
        Pipe::new(body, stream, h2::Reason::INTERNAL_ERROR).await;
    }
}

/// Tells HTTP/2 (by its connection preface) from HTTP/1.1 on a new connection.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a connection's first bytes until they are the HTTP/2 preface or cannot be:
/// whether it is HTTP/2, and the bytes read.
pub(super) async fn sniff(stream: &mut TcpStream) -> std::io::Result<(bool, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut read = vec![0u8; PREFACE.len()];
    let mut n = 0;
    while n < PREFACE.len() {
        let got = stream.read(&mut read[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
        if read[..n] != PREFACE[..n] {
            break;
        }
    }
    read.truncate(n);
    Ok((read == PREFACE, read))
}
