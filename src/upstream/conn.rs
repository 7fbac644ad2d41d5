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
use std::task::Context;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::UpstreamError;
use crate::http2::driver::{Driver, Handler, Parts};
use crate::http2::frame::Reason;
use crate::http2::head;
use crate::http2::stream::{self as h2stream, Ready, Verdict};
use crate::http2::wire::{ConnError, Frame, Limits, Wire};
use crate::upstream::exchange::{Exchange, Inbox, ServerEnd, CREDIT_STEP};
use crate::upstream::streams::StreamMap;

/// How long dialling a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// PINGs on a quiet connection find a server that vanished without a FIN.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls waiting on a connection silent this long get a PING…
const SILENT_AFTER: Duration = Duration::from_millis(500);
/// …which a live server answers within this: a server that stops answering but
/// keeps its connection open (a paused or deadlocked task: the kernel still ACKs)
/// is found in well under two seconds, not at the next keep-alive.
const SILENT_PING_TIMEOUT: Duration = Duration::from_secs(1);

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
        tracing::debug!(%addr, "upstream h2c connection dialled");
        let why = Driver::new(Conn::new(stream, addr, handle.clone(), limits, "h2c")).await;
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
    let why = Driver::new(Conn::new(stream, addr, handle.clone(), limits, "h2")).await;
    tracing::debug!(%addr, reason = %why, "upstream h2 connection closed");
}

/// The server's SETTINGS came: the connection is open (a server that accepts TCP
/// but never speaks HTTP/2, a paused one say, never gets here).
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
    /// The stream's protocol state: windows, END_STREAM both ways, length due.
    core: h2stream::Stream,
    head_received: bool,
    /// The request was HEAD: a content-length in the answer has no DATA.
    head_request: bool,
}

struct Conn<T> {
    io: T,
    addr: SocketAddr,
    wire: Wire,
    handle: Arc<Handle>,
    streams: StreamMap<Stream>,
    /// Calls waiting for the server to allow another stream.
    waiting: VecDeque<Arc<Exchange>>,
    /// Streams with request data to send, taking turns frame by frame.
    ready: Ready,
    goaway: Option<u32>,
    /// Why the connection is ending, once it is.
    ending: Option<Arc<str>>,
    timer: Pin<Box<Sleep>>,
    /// A PING is out; the connection dies if it is not answered by then.
    ping_due: Option<Instant>,
    /// The connection ends because the server stopped answering (not a close).
    unresponsive: bool,
    started: Instant,
    last_read: Instant,
    proto: &'static str,
    /// The server's first SETTINGS arrived.
    settings_received: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    fn new(
        io: T,
        addr: SocketAddr,
        handle: Arc<Handle>,
        limits: Limits,
        proto: &'static str,
    ) -> Conn<T> {
        let now = Instant::now();
        Conn {
            io,
            addr,
            wire: Wire::client(limits),
            handle,
            streams: StreamMap::default(),
            waiting: VecDeque::new(),
            ready: Ready::default(),
            goaway: None,
            ending: None,
            timer: Box::pin(tokio::time::sleep_until(now + CONNECT_TIMEOUT)),
            ping_due: None,
            unresponsive: false,
            started: now,
            last_read: now,
            proto,
            settings_received: false,
        }
    }

    fn can_open(&self) -> bool {
        // The server's SETTINGS say how many streams it takes: until they come (one
        // round trip on a new connection), calls wait rather than risk a refusal.
        self.settings_received
            && self.goaway.is_none()
            && self.ending.is_none()
            && (self.streams.len() as u64) < u64::from(self.wire.peer.max_concurrent_streams)
            && self.wire.stream_ids_left()
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
                if let Some(st) = self.streams.get_mut(id) {
                    if st.core.state != h2stream::State::Closed {
                        st.core.reset_sent = true;
                        self.wire.reset(id, Reason::CANCEL);
                    }
                }
                self.remove(id);
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
        // The server said how big a head it takes (SETTINGS_MAX_HEADER_LIST_SIZE):
        // a bigger one is refused here, with the reason, not sent to be refused.
        let limit = self.wire.peer.max_header_list_size;
        if limit != u32::MAX {
            let size = x.lock().req_head.as_ref().map(head::request_list_size);
            if let Some(size) = size.filter(|&n| n > limit as usize) {
                let e = UpstreamError::HeadTooLarge {
                    addr: self.addr,
                    size,
                    limit,
                };
                x.end_server(ServerEnd::Unsent(Arc::new(e)));
                return;
            }
        }
        let Some(id) = self.wire.next_stream_id() else {
            self.handle.set(DRAINING);
            let e = Arc::new(UpstreamError::GoingAway { addr: self.addr });
            x.end_server(ServerEnd::Unsent(e));
            return;
        };
        if !self.wire.stream_ids_left() {
            // Stream ids run out: the pool dials a fresh connection for new calls.
            self.handle.set(DRAINING);
        }
        let mut s = x.lock();
        s.opened = true;
        s.server_stream = id;
        let end = s.req.end && s.req.is_drained();
        let head_request = s
            .req_head
            .as_ref()
            .is_some_and(|r| r.method() == http::Method::HEAD);
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
        let mut core = h2stream::Stream::new(
            self.wire.peer.initial_window,
            self.wire.limits.stream_window,
        );
        if end {
            core.end_send();
        }
        self.streams.insert(
            id,
            Stream {
                x,
                core,
                head_received: false,
                head_request,
            },
        );
        if !end {
            self.pump(id);
        }
    }

    /// Takes a stream off the connection, remembering how it closed.
    fn remove(&mut self, id: u32) -> Option<Stream> {
        let st = self.streams.remove(id)?;
        self.wire.closed(id, &st.core);
        Some(st)
    }

    /// Sends what a stream's request has ready, one DATA frame a turn as far as
    /// windows and the write buffer allow (a stream with more waits behind the
    /// others' turns); collects the client's credit for the response.
    fn pump(&mut self, id: u32) {
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        let x = st.x.clone();
        let mut s = x.lock();
        // Response data the client took: the server may send as much again.
        let credit = std::mem::take(&mut s.res.released);
        self.wire.stream_credit(id, &mut st.core, credit);
        let turn = s
            .req
            .send_turn(&mut self.wire, &mut self.ready, id, &mut st.core, |_| {});
        x.credit_client(turn.owed);
        let mut tell_client = false;
        if (s.req.released >= CREDIT_STEP && !s.req.end)
            || (s.req.producer_waiting && s.req.queued < super::task::LIMIT)
        {
            s.req.producer_waiting = false;
            tell_client = s.notify_client();
        }
        let done = st.core.state == h2stream::State::Closed;
        drop(s);
        if tell_client {
            x.wake_client();
        }
        if done {
            self.remove(id);
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
        let id = f.stream();
        if id != 0 {
            let live = self.streams.get(id).map(|st| &st.core);
            match self.wire.judge(&f, live) {
                Verdict::Deliver => {}
                Verdict::Ignore => return self.drop_frame(&f),
                Verdict::Reset(reason) => {
                    self.drop_frame(&f)?;
                    self.reset(id, reason);
                    return Ok(());
                }
                Verdict::Fail(e) => return Err(e),
                Verdict::Open => {
                    return Err(ConnError::new(
                        Reason::PROTOCOL_ERROR,
                        "a server opened a stream",
                    ))
                }
            }
        }
        match f {
            Frame::Headers { stream, end, block } => self.on_headers(stream, end, &block)?,
            Frame::Data {
                stream,
                data,
                end,
                flow,
            } => self.on_data(stream, data, end, flow),
            Frame::Reset { stream, reason } => {
                if let Some(st) = self.streams.get_mut(stream) {
                    st.core.reset_received = true;
                }
                if let Some(st) = self.remove(stream) {
                    let why = if reason == Reason::REFUSED_STREAM && !st.head_received {
                        ServerEnd::Refused
                    } else {
                        ServerEnd::Reset(reason)
                    };
                    st.x.end_server(why);
                }
            }
            Frame::WindowUpdate { stream: 0, .. } => {
                // The driver gives the waiting streams their turns once the
                // frames read are handled.
            }
            Frame::WindowUpdate { stream, increment } => {
                if let Some(st) = self.streams.get_mut(stream) {
                    match st.core.grow_send(increment) {
                        Ok(()) => self.pump(stream),
                        Err(reason) => self.reset(stream, reason),
                    }
                }
            }
            Frame::Settings => {
                if !self.settings_received {
                    self.settings_received = true;
                    opened(&self.handle, self.addr, self.proto);
                }
                let delta = self.wire.take_window_delta();
                if delta != 0 {
                    for (_, st) in self.streams.iter_mut() {
                        st.core.shift_send(delta)?;
                    }
                }
                self.open_waiting();
                let ids = self.streams.ids();
                for id in ids {
                    self.pump(id);
                }
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
                    if let Some(st) = self.remove(id) {
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
            Frame::PingAck(_) => self.ping_due = None,
            Frame::StreamError { stream, reason } => self.reset(stream, reason),
        }
        Ok(())
    }

    /// Drops a frame the state machine refused: a DATA frame's window comes
    /// back, a header block is decoded to keep HPACK in step.
    fn drop_frame(&mut self, f: &Frame) -> Result<(), ConnError> {
        match f {
            Frame::Data { flow, .. } => self.wire.release(*flow),
            Frame::Headers { block, .. } => {
                if let Err(head::HeadError::Compression(e)) =
                    head::decode_trailers(&mut self.wire.decoder, block, usize::MAX)
                {
                    return Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Resets one stream (the server broke its rules); its call fails.
    fn reset(&mut self, id: u32, reason: Reason) {
        self.wire.reset(id, reason);
        match self.streams.get_mut(id) {
            Some(st) => st.core.reset_sent = true,
            None => self.wire.closed_at_once(id),
        }
        if let Some(st) = self.remove(id) {
            st.x.end_server(ServerEnd::Reset(reason));
        }
    }

    fn on_headers(&mut self, id: u32, end: bool, block: &[u8]) -> Result<(), ConnError> {
        let max = self.wire.limits.max_header_list_size as usize;
        let Some(st) = self.streams.get_mut(id) else {
            return self.drop_frame(&Frame::Headers {
                stream: id,
                end,
                block: bytes::Bytes::copy_from_slice(block),
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
            // A HEAD answer, 204 and 304 carry a length but no DATA (RFC 9110 §8.6).
            let bodiless = st.head_request || matches!(res.status().as_u16(), 204 | 304);
            match head::content_length(res.headers()) {
                Ok(len) if !bodiless => st.core.expect_length(len),
                Ok(_) => {}
                Err(_) => {
                    self.reset(id, Reason::PROTOCOL_ERROR);
                    return Ok(());
                }
            }
            if end && st.core.recv_end_without_data().is_err() {
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            st.head_received = true;
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
            if !end || st.core.recv_end_without_data().is_err() {
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
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
        if st.core.state == h2stream::State::Closed {
            self.remove(id);
        }
        Ok(())
    }

    fn on_data(&mut self, id: u32, data: bytes::Bytes, end: bool, flow: usize) {
        let Some(st) = self.streams.get_mut(id) else {
            self.wire.release(flow);
            return;
        };
        if !st.head_received {
            self.wire.release(flow);
            self.reset(id, Reason::PROTOCOL_ERROR);
            return;
        }
        if let Err(reason) = st.core.recv_data(data.len(), flow, end) {
            self.wire.release(flow);
            self.reset(id, reason);
            return;
        }
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
        if st.core.state == h2stream::State::Closed {
            self.remove(id);
        }
    }

    /// Everything still here fails: streams as lost, unopened calls as unsent.
    fn fail_all(&mut self, why: Arc<str>) {
        self.handle.set(CLOSED);
        let unsent = Arc::new(match self.unresponsive {
            true => UpstreamError::Unresponsive {
                addr: self.addr,
                why: why.clone(),
            },
            false => UpstreamError::Closed {
                addr: self.addr,
                why: why.clone(),
            },
        });
        if !self.settings_received {
            // It never opened: probes waiting on the dial learn why.
            self.handle.failure.store(Some(unsent.clone()));
            self.handle.dialled.notify_waiters();
        }
        for x in self.handle.inbox.close() {
            if !x.lock().opened {
                x.end_server(ServerEnd::Unsent(unsent.clone()));
            }
        }
        for x in self.waiting.drain(..) {
            x.end_server(ServerEnd::Unsent(unsent.clone()));
        }
        for (_, st) in self.streams.drain() {
            st.x.end_server(match self.unresponsive {
                true => ServerEnd::Silent(why.clone()),
                false => ServerEnd::Lost(why.clone()),
            });
        }
    }

    /// Whether calls are waiting on the server: streams whose answer is not over.
    fn calls_waiting(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Keep-alive, and liveness under load: a quiet connection gets a PING after
    /// [`KEEPALIVE_INTERVAL`]; one that calls wait on gets one after
    /// [`SILENT_AFTER`] of silence, to be answered within [`SILENT_PING_TIMEOUT`].
    /// A server that does not answer is gone; so is one whose SETTINGS never came.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) {
        loop {
            // Moved only to fire earlier: a timer armed for earlier fires, finds
            // nothing due and is moved on (cheaper than moving it on every read).
            let at = self.next_check();
            if at < self.timer.deadline() {
                self.timer.as_mut().reset(at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return;
            }
            let now = Instant::now();
            if now < at {
                self.timer.as_mut().reset(at);
                continue;
            }
            if !self.settings_received {
                self.ending = Some(
                    format!("the server sent no SETTINGS within {CONNECT_TIMEOUT:?} of the dial")
                        .into(),
                );
                self.unresponsive = true;
                return;
            }
            if let Some(due) = self.ping_due {
                if now >= due {
                    let waited = match self.calls_waiting() {
                        true => SILENT_PING_TIMEOUT,
                        false => KEEPALIVE_TIMEOUT,
                    };
                    self.ending = Some(
                        format!("the server stopped answering: no PING answer within {waited:?}")
                            .into(),
                    );
                    self.unresponsive = true;
                    return;
                }
                continue;
            }
            let quiet = now.duration_since(self.last_read);
            if self.calls_waiting() && quiet >= SILENT_AFTER {
                self.wire.ping(*b"gantry:?");
                self.ping_due = Some(now + SILENT_PING_TIMEOUT);
            } else if quiet >= KEEPALIVE_INTERVAL {
                self.wire.ping(*b"gantry:)");
                self.ping_due = Some(now + KEEPALIVE_TIMEOUT);
            }
        }
    }

    /// When the keep-alive timer should fire next.
    fn next_check(&self) -> Instant {
        if !self.settings_received {
            return self.started + CONNECT_TIMEOUT;
        }
        if let Some(due) = self.ping_due {
            return due;
        }
        let after = match self.calls_waiting() {
            true => SILENT_AFTER,
            false => KEEPALIVE_INTERVAL,
        };
        self.last_read + after
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Handler for Conn<T> {
    type Io = T;
    type Mail = Inbox;
    /// Why the connection ended.
    type Output = Arc<str>;

    fn parts(&mut self) -> Parts<'_, T> {
        Parts {
            io: &mut self.io,
            wire: &mut self.wire,
            ready: &mut self.ready,
        }
    }

    fn mailbox(&self) -> &Inbox {
        &self.handle.inbox
    }

    fn reading(&mut self) -> bool {
        if self.handle.cut.load(Ordering::Acquire) && self.ending.is_none() {
            self.ending = Some("cut: the server was removed and its drain time is over".into());
        }
        self.ending.is_none()
    }

    fn on_read(&mut self) {
        self.last_read = Instant::now();
    }

    fn on_read_end(&mut self, error: Option<std::io::Error>) {
        self.ending = Some(match error {
            None => "the server closed the connection".into(),
            Some(e) => format!("read failed: {e}").into(),
        });
    }

    fn on_frame(&mut self, f: Frame) -> Result<(), ConnError> {
        Conn::on_frame(self, f)
    }

    fn on_frames_done(&mut self) {
        self.open_waiting();
    }

    fn on_conn_error(&mut self, e: ConnError) {
        self.protocol_error(e);
    }

    fn on_news(&mut self, x: Arc<Exchange>) {
        Conn::on_news(self, x);
    }

    fn tick(&mut self, cx: &mut Context<'_>) -> bool {
        self.poll_keepalive(cx);
        false
    }

    fn turn(&mut self, id: u32) -> bool {
        let Some(st) = self.streams.get_mut(id) else {
            return false;
        };
        st.core.ready = false;
        self.pump(id);
        true
    }

    fn ending(&self) -> bool {
        self.ending.is_some()
    }

    fn on_write_error(&mut self, e: std::io::Error) {
        if self.ending.is_none() {
            self.ending = Some(format!("write failed: {e}").into());
        }
        self.wire.discard_output();
    }

    fn over(&mut self, cx: &mut Context<'_>, progress: bool) -> Option<Arc<str>> {
        if self.goaway.is_some() && self.streams.is_empty() && self.ending.is_none() {
            self.ending = Some("the server sent GOAWAY and every stream ended".into());
        }
        let why = self.ending.clone()?;
        if !self.wire.goaway_sent() && !self.unresponsive {
            // gantry closes the connection: it says so (RFC 9113 §6.8).
            self.wire.goaway(0, Reason::NO_ERROR, b"");
            let _ = self.wire.poll_write(&mut self.io, cx);
        }
        // Flush what is owed (a GOAWAY, resets) before closing, while writes
        // go on.
        if self.wire.pending() == 0 || self.handle.cut.load(Ordering::Acquire) || !progress {
            self.fail_all(why.clone());
            return Some(why);
        }
        None
    }

    fn idle(&self) -> bool {
        self.streams.is_empty() && self.waiting.is_empty()
    }
}

impl<T> Conn<T> {
    fn protocol_error(&mut self, e: ConnError) {
        tracing::debug!(addr = %self.addr, error = %e, "upstream broke HTTP/2");
        // As the client, gantry processes no stream of the server's: 0.
        self.wire.goaway(0, e.reason, e.message.as_bytes());
        self.ending = Some(format!("HTTP/2 error from the server: {e}").into());
    }
}
