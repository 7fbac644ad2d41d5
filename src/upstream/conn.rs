//! One HTTP/2 connection to a server, driven by one task: calls come in through the
//! connection's [`Inbox`] as [`Exchange`]s, go out as streams, and their answers
//! go back into the same exchanges.
//!
//! The task dials first; calls handed over while it dials wait in the inbox. If the
//! dial fails, or the connection closes before a call's stream was opened, the call
//! goes back to its client side as [`ServerEnd::Unsent`], to be sent elsewhere.
//! Streams beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS wait in a queue
//! until others end. A GOAWAY turns the connection away from new calls (the pool
//! dials another) and hands back the streams the server says it never processed.
//!
//! Keep-alive: a PING after [`KEEPALIVE_INTERVAL`] without a frame from the server;
//! no answer within [`KEEPALIVE_TIMEOUT`] closes the connection.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::UpstreamError;
use crate::http2::frame::{self, Reason};
use crate::http2::head;
use crate::http2::wire::{grow_window, ConnError, Frame, Limits, Wire};
use crate::upstream::exchange::{Exchange, Inbox, ServerEnd, CREDIT_STEP};
use crate::upstream::streams::StreamMap;

/// How long dialling a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// PINGs on a quiet connection find a server that vanished without a FIN.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Output held before the task stops taking more request data in.
const WRITE_HIGH: usize = 256 << 10;

/// The pool's view of one connection.
#[derive(Debug, Default)]
pub struct Handle {
    pub inbox: Arc<Inbox>,
    state: AtomicU8,
    /// Set by `cut`: close now, failing every stream.
    cut: AtomicBool,
    /// Signalled when the dial ends either way.
    pub dialled: tokio::sync::Notify,
    /// Why the dial failed, for probes.
    pub failure: arc_swap::ArcSwapOption<UpstreamError>,
}

const DIALLING: u8 = 0;
const OPEN: u8 = 1;
/// Open, but taking no new calls (GOAWAY received, stream ids used up).
const DRAINING: u8 = 2;
const CLOSED: u8 = 3;

impl Handle {
    pub fn new() -> Arc<Handle> {
        Arc::new(Handle {
            inbox: Inbox::new(),
            state: AtomicU8::new(DIALLING),
            ..Handle::default()
        })
    }

    /// Whether new calls may be handed over.
    pub fn accepting(&self) -> bool {
        self.state.load(Ordering::Acquire) <= OPEN
    }

    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// Closes the connection at once; every stream on it fails.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.inbox.wake();
    }

    fn set(&self, state: u8) {
        self.state.fetch_max(state, Ordering::AcqRel);
    }
}

/// Dials `addr` and serves calls on the connection until it closes.
pub async fn run(
    addr: SocketAddr,
    handle: Arc<Handle>,
    limits: Limits,
    tls: Option<crate::tls::TlsDial>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return fail_dial(&handle, UpstreamError::Connect { addr, source }),
        Err(_) => return fail_dial(&handle, UpstreamError::ConnectTimeout { addr }),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        opened(&handle, addr, "h2c");
        let why = Conn::new(stream, addr, handle.clone(), limits).await;
        tracing::debug!(%addr, reason = %why, "upstream h2c connection closed");
        return;
    };
    let handshake = tls.connector.connect(tls.name.clone(), stream);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let message = e.to_string();
            return fail_dial(&handle, UpstreamError::Tls { addr, message });
        }
        Err(_) => return fail_dial(&handle, UpstreamError::ConnectTimeout { addr }),
    };
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        let message = "the server did not agree to HTTP/2 (ALPN h2)".to_string();
        return fail_dial(&handle, UpstreamError::Tls { addr, message });
    }
    opened(&handle, addr, "h2");
    let why = Conn::new(stream, addr, handle.clone(), limits).await;
    tracing::debug!(%addr, reason = %why, "upstream h2 connection closed");
}

fn opened(handle: &Handle, addr: SocketAddr, proto: &str) {
    handle.set(OPEN);
    handle.dialled.notify_waiters();
    tracing::debug!(%addr, proto, "upstream connection open");
}

fn fail_dial(handle: &Handle, e: UpstreamError) {
    tracing::debug!(error = %e, "dial failed");
    handle.set(CLOSED);
    let e = Arc::new(e);
    handle.failure.store(Some(e.clone()));
    for x in handle.inbox.close() {
        x.end_server(ServerEnd::Unsent(e.clone()));
    }
    handle.dialled.notify_waiters();
}

/// A stream open on the connection.
struct Stream {
    x: Arc<Exchange>,
    /// What we may still send.
    send_window: i64,
    /// What the server may still send.
    recv_window: i64,
    head_received: bool,
    sent_end: bool,
    recv_end: bool,
}

struct Conn<T> {
    io: T,
    addr: SocketAddr,
    wire: Wire,
    handle: Arc<Handle>,
    streams: StreamMap<Stream>,
    /// Calls waiting for the server to allow another stream.
    waiting: VecDeque<Arc<Exchange>>,
    /// Streams with request data held back by a window or a full write buffer.
    blocked: Vec<u32>,
    news: Vec<Arc<Exchange>>,
    next_id: u32,
    /// Connection credit given back so far (from `Inbox::released`).
    credit_seen: u64,
    goaway: Option<u32>,
    /// Why the connection is ending, once it is.
    ending: Option<Arc<str>>,
    timer: Pin<Box<Sleep>>,
    /// A PING is out; the connection dies if it is not answered in time.
    ping_out: bool,
    last_read: Instant,
    /// The server's first SETTINGS arrived.
    settings_received: bool,
    /// The write was put off once, for other tasks to add to it.
    deferred: bool,
    deferral: crate::upstream::coalesce::Deferral,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    fn new(io: T, addr: SocketAddr, handle: Arc<Handle>, limits: Limits) -> Conn<T> {
        let now = Instant::now();
        Conn {
            io,
            addr,
            wire: Wire::client(limits),
            handle,
            streams: StreamMap::default(),
            waiting: VecDeque::new(),
            blocked: Vec::new(),
            news: Vec::new(),
            next_id: 1,
            credit_seen: 0,
            goaway: None,
            ending: None,
            timer: Box::pin(tokio::time::sleep_until(now + KEEPALIVE_INTERVAL)),
            ping_out: false,
            last_read: now,
            settings_received: false,
            deferred: false,
            deferral: crate::upstream::coalesce::Deferral::here(),
        }
    }

    fn can_open(&self) -> bool {
        // The server's SETTINGS say how many streams it takes: until they come (one
        // round trip on a new connection), calls wait rather than risk a refusal.
        self.settings_received
            && self.goaway.is_none()
            && self.ending.is_none()
            && (self.streams.len() as u64) < u64::from(self.wire.peer.max_concurrent_streams)
            && self.next_id < frame::MAX_WINDOW
    }

    /// A call from the inbox with news from its client side.
    fn on_news(&mut self, x: Arc<Exchange>) {
        let mut s = x.lock();
        s.server_turn();
        if s.client_end.is_some() {
            let owed = s.req.discard();
            x.credit_client(owed);
            let id = s.server_stream;
            drop(s);
            if id != 0 {
                if let Some(st) = self.streams.remove(id) {
                    if !(st.sent_end && st.recv_end) {
                        frame::put_rst(&mut self.wire.wbuf, id, Reason::CANCEL);
                    }
                }
            } else {
                self.waiting.retain(|w| !Arc::ptr_eq(w, &x));
            }
            return;
        }
        if !s.opened {
            drop(s);
            if self.can_open() && self.waiting.is_empty() {
                self.open(x);
            } else if !self.waiting.iter().any(|w| Arc::ptr_eq(w, &x)) {
                self.waiting.push_back(x);
            }
            return;
        }
        let id = s.server_stream;
        drop(s);
        self.pump(id);
    }

    fn open(&mut self, x: Arc<Exchange>) {
        let id = self.next_id;
        self.next_id += 2;
        if self.next_id >= frame::MAX_WINDOW {
            // Stream ids run out: the pool dials a fresh connection for new calls.
            self.handle.set(DRAINING);
        }
        let mut s = x.lock();
        s.opened = true;
        s.server_stream = id;
        let end = s.req.end && s.req.is_drained();
        if let Some(req) = &s.req_head {
            self.wire
                .headers(id, end, |enc, dst| head::encode_request(enc, req, dst));
        }
        // A client side driven by its own task reads its body only once the stream
        // is open: tell it.
        let tell_client = !end && !x.client_is_conn() && s.notify_client();
        drop(s);
        if tell_client {
            x.wake_client();
        }
        let window = i64::from(self.wire.peer.initial_window);
        self.streams.insert(
            id,
            Stream {
                x,
                send_window: window,
                recv_window: i64::from(self.wire.limits.stream_window),
                head_received: false,
                sent_end: end,
                recv_end: false,
            },
        );
        if !end {
            self.pump(id);
        }
    }

    /// Sends what a stream's request has ready, as far as windows and the write
    /// buffer allow; collects the client's credit for the response.
    fn pump(&mut self, id: u32) {
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        let x = st.x.clone();
        let mut s = x.lock();
        // Response data the client took: the server may send as much again.
        let credit = std::mem::take(&mut s.res.released);
        if credit > 0 && !st.recv_end {
            frame::put_window_update(&mut self.wire.wbuf, id, credit as u32);
            st.recv_window += credit as i64;
        }
        let mut tell_client = false;
        let mut held = false;
        while !st.sent_end {
            let room = WRITE_HIGH.saturating_sub(self.wire.pending());
            let max = st
                .send_window
                .min(self.wire.send_window)
                .min(room as i64)
                .min(i64::from(self.wire.peer.max_frame_size))
                .max(0) as usize;
            match (s.req.queued, max) {
                (0, _) => {}
                (_, 0) => {
                    held = true;
                    break;
                }
                (queued, max) => {
                    // Whatever is queued (many small messages, say) leaves as one frame.
                    let n = queued.min(max);
                    let last = n == queued && s.req.end && s.req.trailers.is_none();
                    st.send_window -= n as i64;
                    let req = &mut s.req;
                    let mut owed = 0;
                    self.wire
                        .data_with(id, n, last, |dst| owed = req.take_into(n, dst));
                    x.credit_client(owed);
                    st.sent_end = last;
                    continue;
                }
            }
            // All data sent: the trailers or the end, if they are there.
            if let Some(t) = s.req.trailers.take() {
                self.wire
                    .headers(id, true, |enc, dst| head::encode_fields(enc, &t, dst));
                st.sent_end = true;
            } else if s.req.end {
                frame::put_data(&mut self.wire.wbuf, id, &[], true);
                st.sent_end = true;
            }
            break;
        }
        if (s.req.released >= CREDIT_STEP && !s.req.end)
            || (s.req.producer_waiting && s.req.queued < super::task::LIMIT)
        {
            s.req.producer_waiting = false;
            tell_client = s.notify_client();
        }
        let done = st.sent_end && st.recv_end;
        drop(s);
        if held {
            self.blocked.push(id);
        }
        if tell_client {
            x.wake_client();
        }
        if done {
            self.streams.remove(id);
        }
    }

    fn pump_blocked(&mut self) {
        if self.blocked.is_empty() {
            return;
        }
        let blocked = std::mem::take(&mut self.blocked);
        for id in blocked {
            self.pump(id);
        }
    }

    fn open_waiting(&mut self) {
        while self.can_open() {
            let Some(x) = self.waiting.pop_front() else {
                break;
            };
            if x.lock().client_end.is_some() {
                continue;
            }
            self.open(x);
        }
    }

    fn on_frame(&mut self, f: Frame) -> Result<(), ConnError> {
        match f {
            Frame::Headers { stream, end, block } => self.on_headers(stream, end, &block)?,
            Frame::Data {
                stream,
                data,
                end,
                flow,
            } => self.on_data(stream, data, end, flow),
            Frame::Reset { stream, reason } => {
                if let Some(st) = self.streams.remove(stream) {
                    let why = if reason == Reason::REFUSED_STREAM && !st.head_received {
                        ServerEnd::Refused
                    } else {
                        ServerEnd::Reset(reason)
                    };
                    st.x.end_server(why);
                }
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream == 0 {
                    self.pump_blocked();
                } else if let Some(st) = self.streams.get_mut(stream) {
                    if grow_window(&mut st.send_window, increment) {
                        self.pump(stream);
                    } else {
                        self.reset(stream, Reason::FLOW_CONTROL_ERROR);
                    }
                }
            }
            Frame::Settings { window_delta } => {
                self.settings_received = true;
                if window_delta != 0 {
                    for (_, st) in self.streams.iter_mut() {
                        st.send_window += window_delta;
                    }
                }
                self.open_waiting();
                self.pump_blocked();
            }
            Frame::GoAway {
                last_stream,
                reason,
                ..
            } => {
                tracing::debug!(addr = %self.addr, %reason, last_stream, "upstream sent GOAWAY");
                self.goaway = Some(last_stream);
                self.handle.set(DRAINING);
                let refused: Vec<u32> = self
                    .streams
                    .iter_mut()
                    .filter(|(id, _)| *id > last_stream)
                    .map(|(id, _)| id)
                    .collect();
                for id in refused {
                    if let Some(st) = self.streams.remove(id) {
                        st.x.end_server(ServerEnd::Refused);
                    }
                }
                let e = Arc::new(UpstreamError::GoingAway { addr: self.addr });
                for x in self.waiting.drain(..) {
                    x.end_server(ServerEnd::Unsent(e.clone()));
                }
                if reason != Reason::NO_ERROR {
                    // An error GOAWAY: the server is done with this connection.
                    self.ending = Some(format!("the server sent GOAWAY with {reason}").into());
                }
            }
            Frame::PingAck(_) => self.ping_out = false,
            Frame::StreamError { stream, reason } => self.reset(stream, reason),
        }
        Ok(())
    }

    /// Resets one stream (the server broke its rules); its call fails.
    fn reset(&mut self, id: u32, reason: Reason) {
        frame::put_rst(&mut self.wire.wbuf, id, reason);
        if let Some(st) = self.streams.remove(id) {
            st.x.end_server(ServerEnd::Reset(reason));
        }
    }

    fn on_headers(&mut self, id: u32, end: bool, block: &[u8]) -> Result<(), ConnError> {
        let max = self.wire.limits.max_header_list_size as usize;
        let Some(st) = self.streams.get_mut(id) else {
            // A stream we already reset or finished; or one we never opened.
            if id % 2 == 0 || id >= self.next_id {
                return Err(ConnError::new(
                    Reason::PROTOCOL_ERROR,
                    "HEADERS on a stream gantry never opened",
                ));
            }
            return head::decode_trailers(&mut self.wire.decoder, block, usize::MAX)
                .map(drop)
                .or_else(|e| match e {
                    head::HeadError::Compression(e) => {
                        Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
                    }
                    _ => Ok(()),
                });
        };
        let x = st.x.clone();
        if !st.head_received {
            let res = match head::decode_response(&mut self.wire.decoder, block, max) {
                Ok(res) => res,
                Err(head::HeadError::Compression(e)) => {
                    return Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
                }
                Err(_) => {
                    self.reset(id, Reason::PROTOCOL_ERROR);
                    return Ok(());
                }
            };
            if res.status().is_informational() {
                // 100 Continue and the like: the real answer follows.
                if end {
                    self.reset(id, Reason::PROTOCOL_ERROR);
                }
                return Ok(());
            }
            st.head_received = true;
            st.recv_end = end;
            let notify = {
                let mut s = x.lock();
                s.res_head = Some(res);
                s.res.end = end;
                s.notify_client()
            };
            if notify {
                x.wake_client();
            }
        } else {
            if !end {
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            let trailers = match head::decode_trailers(&mut self.wire.decoder, block, max) {
                Ok(t) => t,
                Err(head::HeadError::Compression(e)) => {
                    return Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
                }
                Err(_) => {
                    self.reset(id, Reason::PROTOCOL_ERROR);
                    return Ok(());
                }
            };
            st.recv_end = true;
            let notify = {
                let mut s = x.lock();
                s.res.trailers = Some(trailers);
                s.res.end = true;
                s.notify_client()
            };
            if notify {
                x.wake_client();
            }
        }
        if st.sent_end && st.recv_end {
            self.streams.remove(id);
        }
        Ok(())
    }

    fn on_data(&mut self, id: u32, data: bytes::Bytes, end: bool, flow: usize) {
        let Some(st) = self.streams.get_mut(id) else {
            // Data racing our reset: nobody takes it, its window comes back now.
            self.wire.release(flow);
            return;
        };
        if !st.head_received || flow as i64 > st.recv_window {
            let reason = if st.head_received {
                Reason::FLOW_CONTROL_ERROR
            } else {
                Reason::PROTOCOL_ERROR
            };
            self.wire.release(flow);
            self.reset(id, reason);
            return;
        }
        st.recv_window -= flow as i64;
        st.recv_end = end;
        // The padding's share of the window came back in `Wire`; the data's comes
        // back as the client takes it.
        let x = st.x.clone();
        let notify = {
            let mut s = x.lock();
            s.res.push(data);
            s.res.end = end;
            s.notify_client()
        };
        if notify {
            x.wake_client();
        }
        if st.sent_end && st.recv_end {
            self.streams.remove(id);
        }
    }

    /// Everything still here fails: streams as lost, unopened calls as unsent.
    fn fail_all(&mut self, why: Arc<str>) {
        self.handle.set(CLOSED);
        let unsent = Arc::new(UpstreamError::Closed {
            addr: self.addr,
            why: why.clone(),
        });
        for x in self.handle.inbox.close() {
            if !x.lock().opened {
                x.end_server(ServerEnd::Unsent(unsent.clone()));
            }
        }
        for x in self.waiting.drain(..) {
            x.end_server(ServerEnd::Unsent(unsent.clone()));
        }
        for (_, st) in self.streams.drain() {
            st.x.end_server(ServerEnd::Lost(why.clone()));
        }
    }

    /// Window the other sides gave back: the peer may send as much again.
    fn collect_credit(&mut self) {
        let half = u64::from(self.wire.limits.connection_window / 2);
        let n = self.handle.inbox.collect(&mut self.credit_seen, half);
        if n > 0 {
            self.wire.release(n);
        }
    }

    /// Keep-alive: PING a quiet connection, give up on one that does not answer.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) {
        if self.timer.as_mut().poll(cx).is_pending() {
            return;
        }
        let now = Instant::now();
        if self.ping_out {
            self.ending = Some("the server did not answer a PING in time".into());
            return;
        }
        if now.duration_since(self.last_read) >= KEEPALIVE_INTERVAL {
            frame::put_ping(&mut self.wire.wbuf, false, *b"gantry:)");
            self.ping_out = true;
            self.timer.as_mut().reset(now + KEEPALIVE_TIMEOUT);
        } else {
            self.timer
                .as_mut()
                .reset(self.last_read + KEEPALIVE_INTERVAL);
        }
        // The timer must be polled once more to be armed.
        let _ = self.timer.as_mut().poll(cx);
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Conn<T> {
    type Output = Arc<str>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Arc<str>> {
        let this = self.get_mut();
        this.handle.inbox.register(cx.waker());
        loop {
            let mut progress = false;
            if this.handle.cut.load(Ordering::Acquire) && this.ending.is_none() {
                this.ending = Some("cut: the server was removed and its drain time is over".into());
            }
            if this.ending.is_none() && this.wire.pending() < WRITE_HIGH {
                this.wire.reserve_read();
                match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.wire.rbuf)
                {
                    Poll::Ready(Ok(0)) => {
                        this.ending = Some("the server closed the connection".into())
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        this.last_read = Instant::now();
                        this.ping_out = false;
                        loop {
                            match this.wire.next_frame() {
                                Ok(Some(f)) => {
                                    if let Err(e) = this.on_frame(f) {
                                        this.protocol_error(e);
                                        break;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    this.protocol_error(e);
                                    break;
                                }
                            }
                        }
                        this.open_waiting();
                    }
                    Poll::Ready(Err(e)) => this.ending = Some(format!("read failed: {e}").into()),
                    Poll::Pending => {}
                }
            }
            if this.ending.is_none() {
                let mut news = std::mem::take(&mut this.news);
                this.handle.inbox.take(&mut news);
                if !news.is_empty() {
                    progress = true;
                }
                for x in news.drain(..) {
                    this.on_news(x);
                }
                this.news = news;
                this.collect_credit();
                this.poll_keepalive(cx);
            }
            if this.wire.pending() > 0 && !this.deferred && this.ending.is_none() {
                // Other clients' calls may be a task away: send them all at once.
                this.deferred = true;
                this.deferral.defer(cx);
                return Poll::Pending;
            }
            this.deferred = false;
            match this.wire.poll_write(&mut this.io, cx) {
                Ok(wrote) => {
                    if wrote && this.wire.pending() == 0 && !this.blocked.is_empty() {
                        this.pump_blocked();
                        progress = true;
                    }
                }
                Err(e) => {
                    if this.ending.is_none() {
                        this.ending = Some(format!("write failed: {e}").into());
                    }
                    this.wire.discard_output();
                }
            }
            if this.goaway.is_some() && this.streams.is_empty() && this.ending.is_none() {
                this.ending = Some("the server sent GOAWAY and every stream ended".into());
            }
            if let Some(why) = this.ending.clone() {
                if this.wire.pending() == 0 || this.handle.cut.load(Ordering::Acquire) {
                    this.fail_all(why.clone());
                    return Poll::Ready(why);
                }
                // Flush what is owed (a GOAWAY, resets) before closing.
                if !progress {
                    this.fail_all(why.clone());
                    return Poll::Ready(why);
                }
            }
            if !progress {
                if this.streams.is_empty() && this.waiting.is_empty() {
                    this.wire.release_buffers();
                }
                return Poll::Pending;
            }
        }
    }
}

impl<T> Conn<T> {
    fn protocol_error(&mut self, e: ConnError) {
        tracing::debug!(addr = %self.addr, error = %e, "upstream broke HTTP/2");
        let last = self.next_id.saturating_sub(2);
        frame::put_goaway(&mut self.wire.wbuf, last, e.reason, e.message.as_bytes());
        self.ending = Some(format!("HTTP/2 error from the server: {e}").into());
    }
}
