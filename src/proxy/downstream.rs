//! One HTTP/2 client connection, served by one task.
//!
//! The task reads frames, and for each new stream decodes the request head, places
//! the call ([`ConnCtx::place`]), rewrites the head for its server and hands it to
//! the server's connection as an [`Exchange`]. Request data follows into the same
//! exchange; answers come back through the connection's [`Inbox`] and go out as
//! frames. Everything a round produced is written at once: under load, one read
//! and one write serve many calls.
//!
//! What the router does for a call, here as in the HTTP/1.1 path: a gRPC call gets
//! a trailers-only status for every failure gantry answers itself; a call no server
//! saw is sent once more elsewhere, within the retry budget; a router's retries
//! replay a call answered with a retryable status before anything streamed; the
//! call's `grpc-timeout` is enforced (trailers-only or trailing
//! DEADLINE_EXCEEDED, and the server's stream is cancelled); a client's reset
//! cancels the server's stream.
//!
//! Connection-level rules (RFC 9113): stream ids grow, streams past
//! SETTINGS_MAX_CONCURRENT_STREAMS are refused, flow control is enforced both ways,
//! a malformed head resets its stream, a broken frame or header block ends the
//! connection with GOAWAY. Shutdown and idle close send GOAWAY and let the open
//! calls finish.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use super::call::{Call, End};
use super::deadline;
use super::entrypoint::Guards;
use super::headers;
use super::respond::{self, failure_head, is_grpc, Failure};
use super::{ConnCtx, Placement};
use crate::balance::Endpoint;
use crate::http2::driver::{Handler, Parts};
use crate::http2::frame::Reason;
use crate::http2::head::{self, HeadError};
use crate::http2::stream::{self as h2stream, Ready, Verdict};
use crate::http2::wire::{ConnError, Frame, Limits, Wire};
use crate::table::RetryRule;
use crate::telemetry::Outcome;
use crate::upstream::bridge;
use crate::upstream::exchange::{Exchange, Inbox, ServerEnd, Side, CREDIT_STEP};
use crate::upstream::streams::StreamMap;

/// A client silent this long gets a PING; one that does not answer it in
/// [`KEEPALIVE_TIMEOUT`] is gone (vanished without a FIN) and its calls end.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful shutdown waits for its PING to come back before it sends
/// the final GOAWAY anyway.
const DRAIN_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A call's stream on this connection.
struct Stream {
    x: Arc<Exchange>,
    call: Option<Call>,
    grpc: bool,
    deadline: Option<std::time::Instant>,
    route_name: Arc<str>,
    service_name: Arc<str>,
    set_cookie: Option<HeaderValue>,
    retry: Option<Arc<RetryRule>>,
    /// The client's Host goes to the server (`passhostheader`).
    pass_host: bool,
    attempts_left: u32,
    /// The one retry of a call no server saw is used.
    retried_unsent: bool,
    bytes_in: Option<Arc<AtomicU64>>,
    /// The stream's protocol state: windows, END_STREAM both ways, length due.
    core: h2stream::Stream,
    head_sent: bool,
}

/// A request read but not yet sent on: if the client's next frame resets it
/// (rapid reset) or makes us reset it (MadeYouReset), no server ever sees it.
struct Held {
    id: u32,
    req: Request<()>,
    core: h2stream::Stream,
}

/// Serves one HTTP/2 client connection; resolves when it is closed.
pub(crate) struct Downstream<T> {
    io: T,
    wire: Wire,
    ctx: Arc<ConnCtx>,
    inbox: Arc<Inbox>,
    streams: StreamMap<Stream>,
    /// Streams with response data to send, taking turns frame by frame.
    ready: Ready,
    /// The client sent GOAWAY: close once the last stream ends.
    peer_away: bool,
    /// A graceful shutdown's PING went out then.
    drain_since: Option<Instant>,
    /// The connection ends once its output is written.
    ending: bool,
    read_closed: bool,
    /// The read buffer holds bytes no frame was cut from yet (the first ones).
    unread: bool,
    deadlines: BinaryHeap<Reverse<(std::time::Instant, u32)>>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    idle: Option<Duration>,
    last_active: Instant,
    /// A call started or ended this round.
    active: bool,
    /// When the client last sent anything (read once per round it did).
    last_read: Instant,
    read_some: bool,
    /// A keep-alive PING is out and must be answered by then.
    ping_due: Option<Instant>,
    /// How long the client may take over a header block (or its preface).
    head_timeout: Duration,
    /// Since when a header block has been partly read.
    head_since: Option<Instant>,
    held: Option<Held>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Downstream<T> {
    /// A connection whose first bytes (the preface, maybe more) are `read`.
    pub(crate) fn new(
        io: T,
        read: &[u8],
        ctx: Arc<ConnCtx>,
        limits: Limits,
        idle: Option<Duration>,
        head_timeout: Duration,
        shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Downstream<T> {
        let mut wire = Wire::server(limits);
        wire.feed(read);
        let now = Instant::now();
        Downstream {
            io,
            wire,
            ctx,
            inbox: Inbox::new(),
            streams: StreamMap::default(),
            ready: Ready::default(),
            peer_away: false,
            drain_since: None,
            ending: false,
            read_closed: false,
            unread: true,
            deadlines: BinaryHeap::new(),
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
            idle,
            last_active: now,
            active: false,
            last_read: now,
            read_some: false,
            ping_due: None,
            head_timeout,
            head_since: Some(now),
            held: None,
            shutdown,
        }
    }

    /// A graceful close (shutdown, idle): GOAWAY(2^31-1) and a PING, then the
    /// real last-stream-id; the open calls finish.
    fn drain(&mut self) {
        if !self.wire.goaway_sent() {
            self.wire.start_drain();
            self.drain_since = Some(Instant::now());
        }
    }

    /// No new streams, and the connection closes once the open ones end.
    fn closing(&self) -> bool {
        self.peer_away || self.wire.refusing_streams()
    }

    /// A connection error: GOAWAY, every call cancelled, close after writing.
    fn fail(&mut self, e: ConnError) {
        let guards = &self.ctx.guards;
        match e.reason {
            Reason::ENHANCE_YOUR_CALM => Guards::count(&guards.flood),
            _ => Guards::count(&guards.protocol_error),
        }
        self.close(e);
    }

    fn close(&mut self, e: ConnError) {
        tracing::debug!(client = %self.ctx.client, error = %e, "client broke HTTP/2");
        let last = self.wire.last_peer_stream();
        self.wire.goaway(last, e.reason, e.message.as_bytes());
        self.ending = true;
        self.cancel_all();
    }

    fn cancel_all(&mut self) {
        for (_, st) in self.streams.drain() {
            st.x.cancel(Reason::CANCEL);
            // The call is counted CANCELLED as it drops.
        }
        self.ready.clear();
    }

    /// Takes a stream off the connection, remembering how it closed.
    fn remove(&mut self, id: u32) -> Option<Stream> {
        let st = self.streams.remove(id)?;
        self.wire.closed(id, &st.core);
        Some(st)
    }

    /// Drops a frame the state machine refused: a DATA frame's window comes
    /// back, a header block is decoded to keep HPACK in step.
    fn drop_frame(&mut self, f: &Frame) -> Result<(), ConnError> {
        match f {
            Frame::Data { flow, .. } => self.wire.release(*flow),
            Frame::Headers { block, .. } => compression(head::decode_trailers(
                &mut self.wire.decoder,
                block,
                usize::MAX,
            ))?,
            _ => {}
        }
        Ok(())
    }

    /// The held request's stream gets a frame: a reset from the client, or one
    /// that makes us reset it, and the call goes nowhere. True if it was dropped.
    fn held_refused(&mut self, f: &Frame) -> Result<bool, ConnError> {
        let Some(h) = self.held.as_mut().filter(|h| h.id == f.stream()) else {
            return Ok(false);
        };
        let refused = match f {
            Frame::Reset { .. } => Some(None),
            Frame::WindowUpdate { increment, .. } => h.core.grow_send(*increment).err().map(Some),
            // DATA that breaks the window or the declared length (tried on a copy:
            // the stream takes it for real once dispatched).
            Frame::Data {
                data, end, flow, ..
            } if !h.core.recv_closed() => h
                .core
                .clone()
                .recv_data(data.len(), *flow, *end)
                .err()
                .map(Some),
            _ => match self.wire.judge(f, Some(&h.core)) {
                Verdict::Reset(r) => Some(Some(r)),
                _ => None,
            },
        };
        let Some(reason) = refused else {
            return Ok(false);
        };
        let Some(h) = self.held.take() else {
            return Ok(false);
        };
        self.drop_frame(f)?;
        match reason {
            Some(r) => {
                let mut core = h.core;
                core.reset_sent = true;
                self.wire.closed(h.id, &core);
                self.wire.reset_for_peer(h.id, r)?;
            }
            None => {
                let mut core = h.core;
                core.reset_received = true;
                self.wire.closed(h.id, &core);
            }
        }
        Ok(true)
    }

    fn on_frame(&mut self, f: Frame) -> Result<(), ConnError> {
        if self.held_refused(&f)? {
            return Ok(());
        }
        self.release_held();
        let id = f.stream();
        if id != 0 {
            let live = self.streams.get(id).map(|st| &st.core);
            match self.wire.judge(&f, live) {
                Verdict::Deliver => {}
                Verdict::Open => {
                    let Frame::Headers { end, block, .. } = &f else {
                        return Ok(());
                    };
                    return self.on_request(id, *end, block);
                }
                Verdict::Ignore => return self.drop_frame(&f),
                Verdict::Reset(reason) => {
                    self.drop_frame(&f)?;
                    return self.reset_for_client(id, reason);
                }
                Verdict::Fail(e) => return Err(e),
            }
        }
        match f {
            Frame::Headers { stream, end, block } => self.on_trailers(stream, end, &block)?,
            Frame::Data {
                stream,
                data,
                end,
                flow,
            } => self.on_data(stream, data, end, flow)?,
            Frame::Reset { stream, .. } => {
                if let Some(st) = self.streams.get_mut(stream) {
                    st.core.reset_received = true;
                }
                if let Some(mut st) = self.remove(stream) {
                    // A client that gives up at its deadline with no answer yet
                    // says the server did not answer in time: that counts against
                    // the server, as gantry's own deadline would.
                    let due = st
                        .deadline
                        .is_some_and(|at| std::time::Instant::now() + deadline::CANCEL_SLACK >= at);
                    if due && !st.head_sent {
                        if let Some(call) = st.call.take() {
                            call.unanswered();
                        }
                    }
                    st.x.cancel(Reason::CANCEL);
                    self.touch();
                }
            }
            Frame::WindowUpdate { stream: 0, .. } => {
                // The driver gives the waiting streams their turns once the
                // frames read are handled.
            }
            Frame::WindowUpdate { stream, increment } => {
                if let Some(st) = self.streams.get_mut(stream) {
                    match st.core.grow_send(increment) {
                        Ok(()) => self.respond(stream),
                        Err(reason) => self.reset_for_client(stream, reason)?,
                    }
                }
            }
            Frame::Settings => {
                let delta = self.wire.take_window_delta();
                if delta != 0 {
                    for (_, st) in self.streams.iter_mut() {
                        st.core.shift_send(delta)?;
                    }
                    if delta > 0 {
                        self.pump_all();
                    }
                }
            }
            Frame::GoAway { .. } => {
                // The client opens no more streams; the open ones finish.
                self.peer_away = true;
            }
            Frame::PingAck(_) => {
                self.ping_due = None;
                if !self.wire.drain_pending() {
                    self.drain_since = None;
                }
            }
            Frame::StreamError { stream, reason } => self.reset_for_client(stream, reason)?,
        }
        Ok(())
    }

    /// Resets a stream the client made us reset (counted against its reset
    /// budget); its call is cancelled on the server too.
    fn reset_for_client(&mut self, id: u32, reason: Reason) -> Result<(), ConnError> {
        match self.streams.get_mut(id) {
            Some(st) => st.core.reset_sent = true,
            None => self.wire.closed_at_once(id),
        }
        if let Some(st) = self.remove(id) {
            st.x.cancel(Reason::CANCEL);
            self.touch();
        }
        self.wire.reset_for_peer(id, reason)
    }

    /// Notes activity for the idle timeout (the clock is read once per round).
    fn touch(&mut self) {
        self.active = true;
    }

    /// HEADERS opening a new stream: a request.
    fn on_request(&mut self, id: u32, end: bool, block: &[u8]) -> Result<(), ConnError> {
        let max = self.wire.limits.max_header_list_size as usize;
        let decoded = head::decode_request(&mut self.wire.decoder, block, max);
        if self.wire.refusing_streams() || self.peer_away {
            self.wire.closed_at_once(id);
            self.wire.reset(id, Reason::REFUSED_STREAM);
            return compression(decoded).map(drop);
        }
        if self.streams.len() >= self.wire.limits.max_concurrent_streams as usize {
            // Past the limit it was told: each such stream counts as a reset.
            self.wire.closed_at_once(id);
            self.wire.reset_for_peer(id, Reason::REFUSED_STREAM)?;
            return compression(decoded).map(drop);
        }
        let req = match decoded {
            Ok(req) => req,
            Err(HeadError::Compression(e)) => {
                return Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
            }
            Err(HeadError::TooLarge(_)) => {
                self.wire.peer_fault()?;
                self.wire.headers(id, true, |enc, dst| {
                    head::encode_response(
                        enc,
                        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        &http::HeaderMap::new(),
                        dst,
                    )
                });
                self.wire.closed_at_once(id);
                if !end {
                    self.wire.reset(id, Reason::NO_ERROR);
                }
                return Ok(());
            }
            Err(HeadError::Malformed(why)) => {
                tracing::debug!(client = %self.ctx.client, stream = id, why, "malformed request");
                self.wire.closed_at_once(id);
                return self.wire.reset_for_peer(id, Reason::PROTOCOL_ERROR);
            }
        };
        let mut core = h2stream::Stream::new(
            self.wire.peer.initial_window,
            self.wire.limits.stream_window,
        );
        match head::content_length(req.headers()) {
            Ok(len) => core.expect_length(len),
            Err(why) => {
                tracing::debug!(client = %self.ctx.client, stream = id, why, "malformed request");
                self.wire.closed_at_once(id);
                return self.wire.reset_for_peer(id, Reason::PROTOCOL_ERROR);
            }
        }
        if end && core.recv_end_without_data().is_err() {
            // A content-length with no DATA to match it (RFC 9113 §8.1.1).
            self.wire.closed_at_once(id);
            return self.wire.reset_for_peer(id, Reason::PROTOCOL_ERROR);
        }
        // Sent on once the next frame is read (or the read buffer is done).
        self.held = Some(Held { id, req, core });
        Ok(())
    }

    /// Sends on the request held back, if any.
    fn release_held(&mut self) {
        if let Some(h) = self.held.take() {
            self.dispatch(h);
        }
    }

    /// A header block on an open stream: the client's trailers.
    fn on_trailers(&mut self, id: u32, end: bool, block: &[u8]) -> Result<(), ConnError> {
        let max = self.wire.limits.max_header_list_size as usize;
        let trailers = match head::decode_trailers(&mut self.wire.decoder, block, max) {
            Ok(t) => t,
            Err(HeadError::Compression(e)) => {
                return Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
            }
            Err(_) => return self.reset_for_client(id, Reason::PROTOCOL_ERROR),
        };
        let Some(st) = self.streams.get_mut(id) else {
            return Ok(());
        };
        // Trailers end the stream, and its declared length must be complete.
        if !end || st.core.recv_end_without_data().is_err() {
            return self.reset_for_client(id, Reason::PROTOCOL_ERROR);
        }
        let x = st.x.clone();
        let notify = {
            let mut s = x.lock();
            s.req.trailers = Some(trailers);
            s.req.end = true;
            s.notify_server()
        };
        if notify {
            let _ = x.wake_server();
        }
        Ok(())
    }

    /// Places a new call and hands it to its server.
    fn dispatch(&mut self, held: Held) {
        let Held { id, mut req, core } = held;
        let end = core.recv_closed();
        let started = std::time::Instant::now();
        self.touch();
        let grpc = is_grpc(req.headers());
        let deadline = if grpc {
            deadline::grpc_timeout(req.headers()).and_then(|t| started.checked_add(t))
        } else {
            None
        };
        let placed = match self.ctx.place(&req, started, grpc) {
            Placement::Placed(p) => p,
            Placement::Refused(f, msg) => {
                self.wire.closed_at_once(id);
                self.refuse(id, grpc, f, &msg, !end);
                return;
            }
        };
        let endpoint = placed.call.endpoint().clone();
        if let Err(msg) = self.ctx.prepare(&mut req, &endpoint, placed.pass_host) {
            placed.call.fail(Failure::Unreachable.outcome(grpc).0);
            self.wire.closed_at_once(id);
            self.refuse(id, grpc, Failure::Unreachable, &msg, !end);
            return;
        }
        let inbox = self.inbox.clone();
        let opened = endpoint
            .upstream()
            .open(|server| Exchange::new(id, Side::Conn(inbox), server, req, end));
        let (x, unsent) = match opened {
            Ok(x) => (x, None),
            Err((x, why)) => (x, Some(why)),
        };
        let attempts_left = placed.retry.as_ref().map_or(0, |r| r.attempts);
        self.streams.insert(
            id,
            Stream {
                x: x.clone(),
                call: Some(placed.call),
                grpc,
                deadline,
                route_name: placed.route_name,
                service_name: placed.service_name,
                set_cookie: placed.set_cookie,
                retry: placed.retry,
                pass_host: placed.pass_host,
                attempts_left,
                retried_unsent: false,
                bytes_in: placed.bytes_in,
                core,
                head_sent: false,
            },
        );
        if let Some(at) = deadline {
            self.deadlines.push(Reverse((at, id)));
        }
        if let Some(why) = unsent {
            x.end_server(ServerEnd::Unsent(why));
        }
    }

    /// Answers a call gantry could not place (or send) itself.
    fn refuse(&mut self, id: u32, grpc: bool, f: Failure, msg: &str, body_follows: bool) {
        let (head, text) = failure_head(grpc, f, msg);
        write_answer(&mut self.wire, id, &head, text.map(Bytes::from), i64::MAX);
        if body_follows {
            // The answer is whole: the client may stop sending.
            self.wire.reset(id, Reason::NO_ERROR);
        }
    }

    fn on_data(&mut self, id: u32, data: Bytes, end: bool, flow: usize) -> Result<(), ConnError> {
        let Some(st) = self.streams.get_mut(id) else {
            self.wire.release(flow);
            return Ok(());
        };
        if let Err(reason) = st.core.recv_data(data.len(), flow, end) {
            self.wire.release(flow);
            return self.reset_for_client(id, reason);
        }
        if let Some(b) = &st.bytes_in {
            b.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        let x = st.x.clone();
        let notify = {
            let mut s = x.lock();
            if s.server_end.is_some()
                && !matches!(
                    s.server_end,
                    Some(ServerEnd::Unsent(_) | ServerEnd::Refused)
                )
            {
                // Nobody will take it.
                drop(s);
                self.wire.release(data.len());
                return Ok(());
            }
            s.req.push(data);
            s.req.end = end;
            s.notify_server()
        };
        if notify {
            let _ = x.wake_server();
        }
        Ok(())
    }

    fn pump_all(&mut self) {
        for id in self.streams.ids() {
            self.respond(id);
        }
    }

    /// A call with news from its server side.
    fn on_news(&mut self, x: Arc<Exchange>) {
        let id = x.client_stream;
        match self.streams.get(id) {
            Some(st) if Arc::ptr_eq(&st.x, &x) => self.respond(id),
            // An attempt replaced by a retry, or a call already over.
            _ => x.lock().client_turn(),
        }
    }

    /// Moves what a call's server side has for the client out as frames.
    fn respond(&mut self, id: u32) {
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        let x = st.x.clone();
        let mut s = x.lock();
        s.client_turn();
        // Request data the server took: the client may send as much again.
        let credit = std::mem::take(&mut s.req.released);
        if x.server_is_conn() {
            self.wire.stream_credit(id, &mut st.core, credit);
        }
        if !st.head_sent {
            let Some(res) = s.res_head.take() else {
                let Some(end) = s.server_end.clone() else {
                    return;
                };
                drop(s);
                self.unanswered(id, end);
                return;
            };
            let ended = s.res.end && s.res.is_drained();
            drop(s);
            if self.retry_answer(id, &res, ended) {
                return;
            }
            let Some(st) = self.streams.get_mut(id) else {
                return;
            };
            let (mut parts, ()) = res.into_parts();
            x.lock().req.forget();
            if parts.version != http::Version::HTTP_2 {
                // An HTTP/1.1 server's (HTTP/2 heads were checked as they were read).
                headers::strip_hop_by_hop(&mut parts.headers, false);
            }
            if let Some(cookie) = st.set_cookie.take() {
                parts.headers.append(http::header::SET_COOKIE, cookie);
            }
            let limit = self.wire.peer.max_header_list_size;
            if limit != u32::MAX {
                let size = head::list_size(&[(7, 3)], &parts.headers);
                if size > limit as usize {
                    let msg = format!(
                        "service {:?}: the server's response head ({size} bytes as HTTP/2 counts them) is larger than this client accepts (SETTINGS_MAX_HEADER_LIST_SIZE {limit})",
                        st.service_name
                    );
                    let outcome = Failure::BadAnswer.outcome(st.grpc).0;
                    self.fail_call(id, Failure::BadAnswer, &msg, outcome);
                    return;
                }
            }
            if let Some(call) = st.call.as_mut() {
                call.respond(parts.status, &parts.headers);
            }
            self.wire.headers(id, ended, |enc, dst| {
                head::encode_response(enc, parts.status, &parts.headers, dst)
            });
            st.head_sent = true;
            if ended {
                st.core.end_send();
                self.finish(id, End::Complete);
                return;
            }
            s = x.lock();
        }
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        let call = &mut st.call;
        let turn = s
            .res
            .send_turn(&mut self.wire, &mut self.ready, id, &mut st.core, |t| {
                if let Some(call) = call.as_mut() {
                    call.trailers(t);
                }
            });
        x.credit_server(turn.owed);
        if turn.sent > 0 {
            if let Some(call) = st.call.as_mut() {
                call.data(turn.sent);
            }
        }
        let done = turn.ended;
        let broken = !done && s.res.queued == 0 && !s.res.end && s.server_end.is_some();
        let tell_server = !done
            && ((s.res.producer_waiting && s.res.queued < bridge::LIMIT)
                || (x.server_is_conn() && s.res.released >= CREDIT_STEP && !s.res.end))
            && {
                s.res.producer_waiting = false;
                s.notify_server()
            };
        drop(s);
        if tell_server {
            let _ = x.wake_server();
        }
        if done {
            self.finish(id, End::Complete);
        } else if broken {
            // The server's answer broke off: so does the client's, as a gRPC
            // status a client's retry policy understands where it is gRPC.
            let why = x.lock().server_end.clone();
            if let (Some(ServerEnd::Silent(silent)), Some(call)) =
                (&why, self.streams.get(id).and_then(|st| st.call.as_ref()))
            {
                call.endpoint().observe_unreachable(silent.to_string());
            }
            self.break_off(id, why.as_ref().map(describe_end));
            self.finish(id, End::Broken);
        }
    }

    /// Ends a stream whose answer started and cannot be completed: trailers with
    /// UNAVAILABLE for a gRPC call (the head went out, so only trailers can say
    /// why), RST_STREAM INTERNAL_ERROR for anything else.
    fn break_off(&mut self, id: u32, why: Option<String>) {
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        if st.grpc && !st.core.send_closed() {
            let server = st.call.as_ref().map(|c| c.endpoint().address().to_string());
            let msg = format!(
                "service {:?}: server {} broke off its answer: {}",
                st.service_name,
                server.unwrap_or_default(),
                why.as_deref().unwrap_or("the server's stream ended early")
            );
            let t = respond::grpc_trailers(Failure::Unreachable.grpc_code(), &msg);
            if let Some(call) = st.call.as_mut() {
                call.trailers(&t);
            }
            self.wire
                .headers(id, true, |enc, dst| head::encode_fields(enc, &t, dst));
            st.core.end_send();
        } else {
            st.core.reset_sent = true;
            self.wire.reset(id, Reason::INTERNAL_ERROR);
        }
    }

    /// The response went out whole (or broke): the stream is over on our side.
    fn finish(&mut self, id: u32, end: End) {
        let recv_closed = match self.streams.get_mut(id) {
            Some(st) => {
                if !st.core.recv_closed() {
                    st.core.reset_sent = true;
                }
                st.core.recv_closed()
            }
            None => return,
        };
        let Some(mut st) = self.remove(id) else {
            return;
        };
        if let Some(call) = st.call.take() {
            call.finish(end);
        }
        if end == End::Complete {
            self.wire.call_completed();
        }
        if !recv_closed {
            // Answered before the client finished sending: it may stop now.
            self.wire.reset(id, Reason::NO_ERROR);
            st.x.cancel(Reason::CANCEL);
        } else if end == End::Broken {
            st.x.cancel(Reason::CANCEL);
        }
        self.touch();
    }

    /// Fails a call with an answer of gantry's own (if none started yet).
    fn fail_call(&mut self, id: u32, f: Failure, msg: &str, outcome: Outcome) {
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        if let Some(call) = st.call.take() {
            call.fail(outcome);
        }
        st.x.cancel(Reason::CANCEL);
        if st.head_sent {
            self.break_off(id, Some(msg.to_string()));
        } else {
            let (head, text) = failure_head(st.grpc, f, msg);
            let window = st.core.send_window;
            st.core.end_send();
            write_answer(&mut self.wire, id, &head, text.map(Bytes::from), window);
        }
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        let answered = st.core.send_closed();
        if !st.core.recv_closed() {
            st.core.reset_sent = true;
            self.wire.reset(id, Reason::NO_ERROR);
        } else if !answered {
            st.core.reset_sent = true;
        }
        self.remove(id);
        self.touch();
    }

    /// The server side ended before answering: send the call elsewhere if that
    /// is allowed, else fail it.
    fn unanswered(&mut self, id: u32, end: ServerEnd) {
        let Some(st) = self.streams.get_mut(id) else {
            return;
        };
        let Some(call) = st.call.as_ref() else {
            return;
        };
        let endpoint = call.endpoint().clone();
        let grpc = st.grpc;
        let (unseen, error) = match &end {
            ServerEnd::Unsent(e) => {
                if e.is_connect() {
                    endpoint.observe_unreachable(e.to_string());
                }
                (true, e.to_string())
            }
            ServerEnd::Refused => (
                true,
                "the server refused the stream (REFUSED_STREAM)".to_string(),
            ),
            ServerEnd::Reset(r) => (false, format!("the server reset the stream ({r})")),
            ServerEnd::Lost(why) => (false, why.to_string()),
            ServerEnd::Silent(why) => {
                // No new calls until a connection to it completes a handshake.
                endpoint.observe_unreachable(why.to_string());
                (false, why.to_string())
            }
        };
        if unseen && !st.retried_unsent {
            let headers = st.x.lock().req_head.as_ref().map(|h| h.headers().clone());
            // Unreached: another server. Refused unprocessed: that one may take it
            // again (a lone server is asked once more).
            let next = headers.and_then(|h| match end {
                ServerEnd::Refused => self
                    .ctx
                    .replay_target(&st.service_name, &endpoint, &h, true),
                _ => self.ctx.retry_target(&st.service_name, &endpoint, &h),
            });
            if let Some(next) = next {
                tracing::debug!(service = %st.service_name, from = %endpoint.display(), to = %next.display(), %error, "retrying a call no server saw");
                st.retried_unsent = true;
                if self.resend(id, next, Failure::Unreachable.outcome(grpc).0) {
                    return;
                }
            }
        }
        let st = match self.streams.get_mut(id) {
            Some(st) => st,
            None => return,
        };
        if st.attempts_left > 0 && st.retry.is_some() {
            let headers = st.x.lock().req_head.as_ref().map(|h| h.headers().clone());
            if let Some(next) = headers.and_then(|h| {
                self.ctx
                    .replay_target(&st.service_name, &endpoint, &h, true)
            }) {
                tracing::debug!(service = %st.service_name, from = %endpoint.display(), to = %next.display(), %error, "retrying a failed call its router retries");
                st.attempts_left -= 1;
                if self.resend(id, next, Outcome::Reset) {
                    return;
                }
            }
        }
        let st = match self.streams.get(id) {
            Some(st) => st,
            None => return,
        };
        tracing::debug!(router = %st.route_name, service = %st.service_name, server = %endpoint.display(), %error, "upstream call failed");
        let msg = format!(
            "service {:?} of router {:?}: server {} failed: {error}",
            st.service_name,
            st.route_name,
            endpoint.address()
        );
        self.fail_call(
            id,
            Failure::Unreachable,
            &msg,
            Failure::Unreachable.outcome(grpc).0,
        );
    }

    /// A head-only answer its router retries: sends the call again. True if it did.
    fn retry_answer(&mut self, id: u32, res: &Response<()>, ended: bool) -> bool {
        let Some(st) = self.streams.get_mut(id) else {
            return false;
        };
        let Some(rule) = st.retry.as_ref() else {
            return false;
        };
        if st.attempts_left == 0 {
            return false;
        }
        let Some(outcome) = rule.retryable(st.grpc, res.status(), res.headers(), ended) else {
            return false;
        };
        let Some(endpoint) = st.call.as_ref().map(|c| c.endpoint().clone()) else {
            return false;
        };
        let headers = st.x.lock().req_head.as_ref().map(|h| h.headers().clone());
        let Some(next) = headers.and_then(|h| {
            self.ctx
                .replay_target(&st.service_name, &endpoint, &h, true)
        }) else {
            return false;
        };
        tracing::debug!(service = %st.service_name, from = %endpoint.display(), to = %next.display(), "retrying a call its router retries");
        st.attempts_left -= 1;
        self.resend(id, next, outcome)
    }

    /// Sends a stream's call again, to `next`, if its request was kept whole.
    fn resend(&mut self, id: u32, next: Arc<Endpoint>, failed: Outcome) -> bool {
        let Some(st) = self.streams.get_mut(id) else {
            return false;
        };
        let old = st.x.clone();
        let (head, flow) = {
            let s = old.lock();
            match (s.req_head.clone(), s.req.replay()) {
                (Some(h), Some(f)) => (h, f),
                _ => return false,
            }
        };
        let mut head = head;
        super::retarget(&mut head, &next, st.pass_host);
        let inbox = self.inbox.clone();
        let opened = next
            .upstream()
            .open(|server| Exchange::with_request(id, Side::Conn(inbox), server, head, flow));
        // The old attempt is over: its server side stops, its data is not owed twice.
        old.abandon();
        let (x, unsent) = match opened {
            Ok(x) => (x, None),
            Err((x, why)) => (x, Some(why)),
        };
        st.x = x.clone();
        if let Some(call) = st.call.as_mut() {
            call.retarget(next, failed);
        }
        if let Some(why) = unsent {
            x.end_server(ServerEnd::Unsent(why));
        }
        true
    }

    /// Deadlines that passed: DEADLINE_EXCEEDED, trailers-only or trailing.
    fn expire(&mut self, now: std::time::Instant) {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(st) = self.streams.get_mut(id) else {
                continue;
            };
            if st.deadline != Some(at) {
                continue;
            }
            let outcome = Outcome::Grpc(Failure::Deadline.grpc_code());
            if st.head_sent {
                let t = deadline::exceeded_trailers();
                self.wire
                    .headers(id, true, |enc, dst| head::encode_fields(enc, &t, dst));
                st.core.end_send();
                let recv_closed = st.core.recv_closed();
                if !recv_closed {
                    st.core.reset_sent = true;
                }
                if let Some(mut st) = self.remove(id) {
                    if let Some(call) = st.call.take() {
                        call.fail(outcome);
                    }
                    st.x.cancel(Reason::CANCEL);
                    if !recv_closed {
                        self.wire.reset(id, Reason::NO_ERROR);
                    }
                }
            } else {
                let server = st.call.as_ref().map(|c| c.endpoint().address().to_string());
                // No answer by the deadline: the server's failure, for outliers.
                if let Some(call) = st.call.take() {
                    call.unanswered();
                }
                let msg = format!(
                    "deadline exceeded: gantry ended the call after the client's grpc-timeout, waiting for server {} of service {:?}",
                    server.unwrap_or_default(),
                    st.service_name
                );
                self.fail_call(id, Failure::Deadline, &msg, outcome);
            }
        }
    }

    /// When the timer should next fire: the earliest call deadline, the idle check
    /// or the keep-alive check.
    fn next_wake(&self) -> Instant {
        let deadline = self
            .deadlines
            .peek()
            .map(|Reverse((at, _))| Instant::from_std(*at));
        let idle = match self.idle {
            Some(idle) if self.streams.is_empty() && !self.wire.goaway_sent() => {
                Some(self.last_active + idle)
            }
            _ => None,
        };
        let keepalive = self.ping_due.unwrap_or(self.last_read + KEEPALIVE_INTERVAL);
        let head = self.head_since.map(|since| since + self.head_timeout);
        let drain = self.drain_since.map(|since| since + DRAIN_PING_TIMEOUT);
        let settings = self.wire.settings_due().map(Instant::from_std);
        [deadline, idle, head, drain, settings]
            .into_iter()
            .flatten()
            .fold(keepalive, Instant::min)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let at = self.next_wake();
        match self.timer_at {
            // Armed for earlier: it fires, finds nothing due, and is armed again
            // (cheaper than moving it in the timer wheel every round).
            Some(armed) if armed <= at => {}
            _ => {
                self.timer.as_mut().reset(at);
                self.timer_at = Some(at);
            }
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.timer_at = None;
        let now = Instant::now();
        self.expire(now.into_std());
        if self
            .head_since
            .is_some_and(|since| now >= since + self.head_timeout)
        {
            tracing::debug!(client = %self.ctx.client, "client too slow with a header block: closing");
            Guards::count(&self.ctx.guards.header_timeout);
            self.close(ConnError::new(
                Reason::ENHANCE_YOUR_CALM,
                "a header block took too long (slowloris)",
            ));
            return true;
        }
        if self.wire.settings_overdue(now.into_std()) {
            self.close(ConnError::new(
                Reason::SETTINGS_TIMEOUT,
                "the client did not acknowledge gantry's SETTINGS in time",
            ));
            return true;
        }
        if self
            .drain_since
            .is_some_and(|since| now >= since + DRAIN_PING_TIMEOUT)
        {
            // The client did not answer the shutdown's PING: the final GOAWAY now.
            self.wire.finish_drain();
            self.drain_since = None;
        }
        match self.ping_due {
            Some(due) if now >= due => {
                tracing::debug!(client = %self.ctx.client, "client did not answer a PING in time: closing");
                self.ending = true;
                self.cancel_all();
                return true;
            }
            None if now >= self.last_read + KEEPALIVE_INTERVAL => {
                self.wire.ping(*b"gantry:)");
                self.ping_due = Some(now + KEEPALIVE_TIMEOUT);
            }
            _ => {}
        }
        if let Some(idle) = self.idle {
            if self.streams.is_empty() && !self.wire.goaway_sent() && now >= self.last_active + idle
            {
                tracing::debug!(client = %self.ctx.client, "client connection idle: closing it");
                self.drain();
            }
        }
        true
    }
}

/// A whole answer gantry makes: the head, and a short body if any (sent only if
/// the stream's window takes it whole).
fn write_answer(wire: &mut Wire, id: u32, res: &Response<()>, body: Option<Bytes>, window: i64) {
    let body = body.filter(|b| {
        let n = b.len() as i64;
        n <= window && n <= wire.send_window && b.len() <= wire.peer.max_frame_size as usize
    });
    wire.headers(id, body.is_none(), |enc, dst| {
        head::encode_response(enc, res.status(), res.headers(), dst)
    });
    if let Some(b) = body {
        wire.data(id, &b, true);
    }
}

/// Why a server's side of a call ended, for the message that tells the client.
fn describe_end(end: &ServerEnd) -> String {
    match end {
        ServerEnd::Unsent(e) => e.to_string(),
        ServerEnd::Refused => "the server refused the stream".to_string(),
        ServerEnd::Reset(r) => format!("the server reset the stream ({r})"),
        ServerEnd::Lost(why) | ServerEnd::Silent(why) => why.to_string(),
    }
}

fn compression<T>(decoded: Result<T, HeadError>) -> Result<(), ConnError> {
    match decoded {
        Err(HeadError::Compression(e)) => {
            Err(ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
        }
        _ => Ok(()),
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Handler for Downstream<T> {
    type Io = T;
    type Mail = Inbox;
    type Output = ();

    fn parts(&mut self) -> Parts<'_, T> {
        Parts {
            io: &mut self.io,
            wire: &mut self.wire,
            ready: &mut self.ready,
        }
    }

    fn mailbox(&self) -> &Inbox {
        &self.inbox
    }

    fn reading(&mut self) -> bool {
        !self.read_closed && !self.ending
    }

    fn take_buffered(&mut self) -> bool {
        // What the entrypoint read while telling HTTP/2 from HTTP/1.1 may hold
        // whole requests already.
        std::mem::take(&mut self.unread)
    }

    fn on_read(&mut self) {
        self.read_some = true;
    }

    fn on_read_end(&mut self, _error: Option<std::io::Error>) {
        // The client is gone: so are its calls.
        self.read_closed = true;
        self.ending = true;
        self.cancel_all();
    }

    fn on_frame(&mut self, f: Frame) -> Result<(), ConnError> {
        Downstream::on_frame(self, f)
    }

    fn on_frames_done(&mut self) {
        self.release_held();
    }

    fn on_conn_error(&mut self, e: ConnError) {
        self.held = None;
        self.fail(e);
    }

    fn on_news(&mut self, x: Arc<Exchange>) {
        Downstream::on_news(self, x);
    }

    fn tick(&mut self, cx: &mut Context<'_>) -> bool {
        let active = std::mem::take(&mut self.active) && self.idle.is_some();
        let read_some = std::mem::take(&mut self.read_some);
        if active || read_some {
            let now = Instant::now();
            if active {
                self.last_active = now;
            }
            if read_some {
                self.last_read = now;
                self.head_since = match self.wire.head_pending() {
                    true => self.head_since.or(Some(now)),
                    false => None,
                };
            }
        }
        let mut progress = self.poll_timer(cx);
        if !self.wire.goaway_sent() && self.shutdown.as_mut().poll(cx).is_ready() {
            self.drain();
            progress = true;
        }
        progress
    }

    fn turn(&mut self, id: u32) -> bool {
        let Some(st) = self.streams.get_mut(id) else {
            return false;
        };
        st.core.ready = false;
        self.respond(id);
        true
    }

    fn ending(&self) -> bool {
        self.ending
    }

    fn on_write_error(&mut self, _e: std::io::Error) {
        self.ending = true;
        self.cancel_all();
        self.wire.discard_output();
    }

    fn over(&mut self, cx: &mut Context<'_>, _progress: bool) -> Option<()> {
        let over =
            self.ending || (self.closing() && self.streams.is_empty() && self.held.is_none());
        if !over || self.wire.pending() > 0 {
            return None;
        }
        let _ = Pin::new(&mut self.io).poll_shutdown(cx);
        self.cancel_all();
        let _ = self.inbox.close();
        Some(())
    }

    fn idle(&self) -> bool {
        self.streams.is_empty()
    }
}
