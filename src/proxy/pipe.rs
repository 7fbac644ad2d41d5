//! Bodies to and from the `h2` crate: a body sent on an HTTP/2 stream as fast as the
//! peer's flow-control window allows ([`Pipe`]), an HTTP/2 stream's incoming data
//! and trailers as a body ([`H2Body`]), either that or hyper's HTTP/1.1 body
//! ([`RecvBody`]), and PINGs that find a dead peer ([`keepalive`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::body::BoxError;

/// Sends `body` on `stream`: data and trailers as they come, no faster than the peer's
/// window opens. A body that fails resets the stream with `broken`; a peer that
/// resets the stream ends the pipe.
pub struct Pipe<B> {
    body: B,
    stream: h2::SendStream<Bytes>,
    broken: h2::Reason,
    done: bool,
}

impl<B> Pipe<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    pub fn new(body: B, stream: h2::SendStream<Bytes>, broken: h2::Reason) -> Pipe<B> {
        Pipe {
            body,
            stream,
            broken,
            done: false,
        }
    }

    /// Whether everything was sent (or the stream is gone).
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.done {
            // Wait for some window before reading more of the body; h2 holds a chunk
            // bigger than the window and sends it as the window opens.
            self.stream.reserve_capacity(1);
            if self.stream.capacity() == 0 {
                match ready!(self.stream.poll_capacity(cx)) {
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => self.done = true,
                }
                continue;
            }
            if self.stream.poll_reset(cx).is_ready() {
                // The peer reset the stream: nothing more to send.
                self.done = true;
                break;
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let end = self.body.is_end_stream();
                        if self.stream.send_data(data, end).is_err() || end {
                            self.done = true;
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            let _ = self.stream.send_trailers(trailers);
                        }
                        self.done = true;
                    }
                },
                None => {
                    let _ = self.stream.send_data(Bytes::new(), true);
                    self.done = true;
                }
                Some(Err(_)) => {
                    self.stream.send_reset(self.broken);
                    self.done = true;
                }
            }
        }
        Poll::Ready(())
    }
}

impl<B> Future for Pipe<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_send(cx)
    }
}

/// The data and trailers arriving on an HTTP/2 stream. Each chunk handed on gives
/// its window back to the peer.
#[derive(Debug)]
pub struct H2Body {
    recv: h2::RecvStream,
    /// All data frames are in: the trailers (or the end) are next.
    data_done: bool,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream) -> H2Body {
        H2Body {
            recv,
            data_done: false,
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A body arriving from a peer: straight from an HTTP/2 stream, or from hyper's
/// HTTP/1.1 connection.
#[derive(Debug)]
pub enum RecvBody {
    H2(H2Body),
    Http1(hyper::body::Incoming),
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RecvBody::H2(body) => Pin::new(body).poll_frame(cx),
            RecvBody::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RecvBody::H2(body) => body.is_end_stream(),
            RecvBody::Http1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RecvBody::H2(body) => body.size_hint(),
            RecvBody::Http1(body) => body.size_hint(),
        }
    }
}

/// Returns when a PING sent after `interval` of the last answer goes unanswered for
/// `timeout`: the peer is gone. Never without a ping handle, and never for a
/// connection that is closing anyway.
pub async fn keepalive(ping: Option<h2::PingPong>, interval: Duration, timeout: Duration) {
    let Some(mut ping) = ping else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}
