//! One HTTP/2 connection's framing state, shared by both ends gantry plays: the
//! read buffer cut into frames, the write buffer, both sides' settings, the
//! connection-level flow-control windows, header blocks reassembled from
//! CONTINUATION frames, and the HPACK contexts.
//!
//! Everything a frame means for the connection as a whole is handled here (SETTINGS
//! and their ACK, PING answers, connection window updates, frame-size and ordering
//! rules); what is left for the owner, stream by stream, comes out of
//! [`Wire::next_frame`] as a [`Frame`]. Errors are [`ConnError`]s: the owner sends
//! GOAWAY with the reason and closes.
//!
//! Buffers are allocated on first use and released when a connection goes idle,
//! so ten thousand idle connections cost little more than their sockets.

use std::borrow::Cow;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::frame::{self, flag, kind, setting, Head, Reason, HEAD_LEN};
use super::hpack::{Decoder, Encoder};
use super::stream::{Closed, Role, Stream, Streams, Verdict};

/// How long the peer may take to acknowledge our SETTINGS (RFC 9113 §6.5.3).
pub const SETTINGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The PING that follows a graceful shutdown's first GOAWAY: when it comes back,
/// every stream the peer opened before it saw that GOAWAY has arrived.
const DRAIN_PING: [u8; 8] = *b"gantry:g";

/// What one side of a connection advertises in its SETTINGS.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS (the peer may open at most this many).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window.
    pub stream_window: u32,
    /// The connection's receive window (raised from 65,535 by a WINDOW_UPDATE).
    pub connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_size: u32,
    /// Streams the peer resets, or makes us reset, beyond the calls it completes.
    pub resets: Budget,
    /// Frames that cost work and carry no call: SETTINGS, PING, PRIORITY,
    /// WINDOW_UPDATE, empty DATA, unknown types (frames carrying calls, either way,
    /// pay for them).
    pub control: Budget,
}

/// A leaky bucket: `burst` events at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub per_second: u32,
    pub burst: u32,
}

/// How full one [`Budget`] is, in thousandths of an event.
#[derive(Debug, Default)]
struct Bucket {
    level: u64,
    at: Option<std::time::Instant>,
}

impl Bucket {
    /// Counts one event; false once the budget is spent.
    fn spend(&mut self, budget: Budget) -> bool {
        let now = std::time::Instant::now();
        if let Some(at) = self.at {
            let ms = now.saturating_duration_since(at).as_millis() as u64;
            // `per_second` events a second are `per_second` thousandths a millisecond.
            self.level = self
                .level
                .saturating_sub(ms.saturating_mul(u64::from(budget.per_second)));
        }
        self.at = Some(now);
        self.level += 1000;
        self.level <= u64::from(budget.burst) * 1000
    }

    /// Takes one event back.
    fn refund(&mut self) {
        self.level = self.level.saturating_sub(1000);
    }
}

/// Windows big enough that a multi-megabyte message is not throttled by round
/// trips, small enough to bound what a connection buffers (8 MiB at most).
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_concurrent_streams: 1000,
            stream_window: 1 << 20,
            connection_window: 8 << 20,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: 64 << 10,
            resets: Budget {
                per_second: 100,
                burst: 400,
            },
            control: Budget {
                per_second: 100,
                burst: 400,
            },
        }
    }
}

impl Limits {
    /// Limits for connections to servers gantry chose: they are trusted not to
    /// flood, and a server resetting streams (REFUSED_STREAM under load) is normal.
    pub fn upstream() -> Limits {
        Limits {
            resets: Budget::UNLIMITED,
            control: Budget::UNLIMITED,
            ..Limits::default()
        }
    }
}

impl Budget {
    pub const UNLIMITED: Budget = Budget {
        per_second: u32::MAX,
        burst: u32::MAX,
    };
}

/// What the peer's SETTINGS said (RFC 9113 §6.5.2 initial values until then).
#[derive(Debug, Clone, Copy)]
pub struct PeerSettings {
    pub max_concurrent_streams: u32,
    pub initial_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
}

impl Default for PeerSettings {
    fn default() -> PeerSettings {
        PeerSettings {
            max_concurrent_streams: u32::MAX,
            initial_window: frame::DEFAULT_WINDOW,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: u32::MAX,
        }
    }
}

/// A connection error: GOAWAY with `reason`, `message` as its debug data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ConnError {
    pub reason: Reason,
    pub message: Cow<'static, str>,
}

impl ConnError {
    pub fn new(reason: Reason, message: impl Into<Cow<'static, str>>) -> ConnError {
        ConnError {
            reason,
            message: message.into(),
        }
    }

    fn protocol(message: &'static str) -> ConnError {
        ConnError::new(Reason::PROTOCOL_ERROR, message)
    }
}

/// A frame for the connection's owner: stream frames, and the connection-level
/// events that change what it may do.
#[derive(Debug)]
pub enum Frame {
    /// DATA: `flow` is the payload length counted against the windows (data plus
    /// padding); the padding is already given back to the connection window.
    Data {
        stream: u32,
        data: Bytes,
        end: bool,
        flow: usize,
    },
    /// A whole header block (HEADERS and its CONTINUATIONs).
    Headers {
        stream: u32,
        end: bool,
        block: Bytes,
    },
    Reset {
        stream: u32,
        reason: Reason,
    },
    /// A window grew: a stream's, or the connection's when `stream` is 0 (already
    /// applied to [`Wire::send_window`]).
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    GoAway {
        last_stream: u32,
        reason: Reason,
        debug: Bytes,
    },
    /// The peer's SETTINGS were applied and acknowledged; a new
    /// SETTINGS_INITIAL_WINDOW_SIZE waits for [`Wire::take_window_delta`], so that a
    /// stream opened from frames read before it starts from the old value.
    Settings,
    /// One of our PINGs came back.
    PingAck([u8; 8]),
    /// A frame broke a rule of its stream only: reset it, the connection goes on.
    StreamError {
        stream: u32,
        reason: Reason,
    },
}

impl Frame {
    /// The stream the frame is about (0: the connection).
    pub fn stream(&self) -> u32 {
        match *self {
            Frame::Data { stream, .. }
            | Frame::Headers { stream, .. }
            | Frame::Reset { stream, .. }
            | Frame::WindowUpdate { stream, .. }
            | Frame::StreamError { stream, .. } => stream,
            Frame::GoAway { .. } | Frame::Settings | Frame::PingAck(_) => 0,
        }
    }
}

/// A header block arriving in pieces.
#[derive(Debug)]
struct Partial {
    stream: u32,
    end: bool,
    block: Vec<u8>,
    frames: usize,
}

/// Most CONTINUATION frames one header block may take: a block needs few, and a
/// flood of empty ones would otherwise cost work without end.
const MAX_CONTINUATIONS: usize = 64;

/// Read buffer size: one read takes many small frames, or one whole big DATA frame.
const READ_CHUNK: usize = 16 << 10;

/// The framing state of one connection.
pub struct Wire {
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// Bytes of `wbuf` already written to the socket.
    written: usize,
    pub limits: Limits,
    pub peer: PeerSettings,
    pub decoder: Decoder,
    pub encoder: Encoder,
    /// What we may still send on the connection (may go negative? never: frames are
    /// cut to fit).
    pub send_window: i64,
    /// What the peer may still send on the connection.
    recv_window: i64,
    /// Connection window consumed by frames the owner is done with, not yet given
    /// back in a WINDOW_UPDATE.
    recv_unannounced: usize,
    partial: Option<Partial>,
    /// The peer's connection preface is still to be read (we are the server).
    expect_preface: bool,
    /// The peer's first frame must be SETTINGS (RFC 9113 §3.4).
    expect_settings: bool,
    resets: Bucket,
    control: Bucket,
    /// Stream ids, and the streams closed recently.
    streams: Streams,
    /// Our SETTINGS went out then and are not acknowledged yet.
    settings_unacked: Option<std::time::Instant>,
    /// A SETTINGS_INITIAL_WINDOW_SIZE of the peer not yet applied to the streams.
    window_pending: Option<u32>,
    /// The lowest last-stream-id a GOAWAY of ours carried (it never rises).
    goaway_sent: Option<u32>,
    /// A graceful shutdown's PING is out; its answer sends the final GOAWAY.
    draining: bool,
}

impl Wire {
    /// A connection where we are the server: the client's preface comes first.
    pub fn server(limits: Limits) -> Wire {
        let mut w = Wire::new(limits, Role::Server);
        w.expect_preface = true;
        w.start();
        w
    }

    /// A connection where we are the client: our preface goes first.
    pub fn client(limits: Limits) -> Wire {
        let mut w = Wire::new(limits, Role::Client);
        w.wbuf.extend_from_slice(frame::PREFACE);
        w.start();
        w
    }

    fn new(limits: Limits, role: Role) -> Wire {
        Wire {
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            written: 0,
            limits,
            peer: PeerSettings::default(),
            decoder: Decoder::new(4096),
            encoder: Encoder::new(),
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_window: i64::from(frame::DEFAULT_WINDOW),
            recv_unannounced: 0,
            partial: None,
            expect_preface: false,
            expect_settings: true,
            resets: Bucket::default(),
            control: Bucket::default(),
            streams: Streams::new(role),
            settings_unacked: None,
            window_pending: None,
            goaway_sent: None,
            draining: false,
        }
    }

    /// Our SETTINGS, and the connection window raised to what we allow.
    fn start(&mut self) {
        let l = self.limits;
        frame::put_settings(
            &mut self.wbuf,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::MAX_CONCURRENT_STREAMS, l.max_concurrent_streams),
                (setting::INITIAL_WINDOW_SIZE, l.stream_window),
                (setting::MAX_FRAME_SIZE, l.max_frame_size),
                (setting::MAX_HEADER_LIST_SIZE, l.max_header_list_size),
            ],
        );
        self.settings_unacked = Some(std::time::Instant::now());
        let extra = i64::from(l.connection_window) - i64::from(frame::DEFAULT_WINDOW);
        if extra > 0 {
            frame::put_window_update(&mut self.wbuf, 0, extra as u32);
            self.recv_window += extra;
        }
    }

    /// Bytes read before the connection was handed over (the entrypoint's sniff).
    pub fn feed(&mut self, read: &[u8]) {
        self.rbuf.extend_from_slice(read);
    }

    /// Reads what `io` has into the read buffer (in chunks): `Ok(0)` at its end.
    pub fn poll_read<T: tokio::io::AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut self.rbuf)
    }

    /// What a stream frame from the peer means, given its stream's state here.
    pub fn judge(&mut self, f: &Frame, live: Option<&Stream>) -> Verdict {
        self.streams.judge(f, live)
    }

    /// The highest stream id the peer opened.
    pub fn last_peer_stream(&self) -> u32 {
        self.streams.last_peer()
    }

    /// An id for a new stream of ours, if any are left (they end at 2^31-1).
    pub fn next_stream_id(&mut self) -> Option<u32> {
        self.streams
            .local_ids_left()
            .then(|| self.streams.next_local())
    }

    /// Whether another stream of ours would still get an id.
    pub fn stream_ids_left(&self) -> bool {
        self.streams.local_ids_left()
    }

    /// A stream leaves the connection: remembered for the frames in flight.
    pub fn closed(&mut self, id: u32, st: &Stream) {
        self.streams.close(id, st);
    }

    /// A stream refused or reset as it opened, never kept.
    pub fn closed_at_once(&mut self, id: u32) {
        self.streams.remember(id, Closed::ResetSent);
    }

    /// Applies the peer's new SETTINGS_INITIAL_WINDOW_SIZE, if one came: how much
    /// every open stream's send window moves (RFC 9113 §6.9.2).
    pub fn take_window_delta(&mut self) -> i64 {
        let Some(value) = self.window_pending.take() else {
            return 0;
        };
        let delta = i64::from(value) - i64::from(self.peer.initial_window);
        self.peer.initial_window = value;
        delta
    }

    /// Whether our SETTINGS went unacknowledged for longer than allowed.
    pub fn settings_overdue(&self, now: std::time::Instant) -> bool {
        self.settings_unacked
            .is_some_and(|at| now.saturating_duration_since(at) >= SETTINGS_TIMEOUT)
    }

    /// When our SETTINGS are overdue, if they are still unacknowledged.
    pub fn settings_due(&self) -> Option<std::time::Instant> {
        self.settings_unacked.map(|at| at + SETTINGS_TIMEOUT)
    }

    /// RST_STREAM for a stream the peer made us reset (a frame that broke its
    /// rules, a malformed head): counted against the reset budget, like the resets
    /// the peer sends (MadeYouReset, CVE-2025-8671).
    pub fn reset_for_peer(&mut self, stream: u32, reason: Reason) -> Result<(), ConnError> {
        frame::put_rst(&mut self.wbuf, stream, reason);
        self.peer_fault()
    }

    /// RST_STREAM of gantry's own choosing (a cancelled call, an early answer).
    pub fn reset(&mut self, stream: u32, reason: Reason) {
        frame::put_rst(&mut self.wbuf, stream, reason);
    }

    pub fn window_update(&mut self, stream: u32, increment: u32) {
        frame::put_window_update(&mut self.wbuf, stream, increment);
    }

    /// Gives the peer back `n` bytes of stream window (data the other side took),
    /// unless the peer is done sending on the stream.
    pub fn stream_credit(&mut self, id: u32, st: &mut Stream, n: usize) {
        if n > 0 && !st.recv_closed() {
            self.window_update(id, n as u32);
            st.recv_window += n as i64;
        }
    }

    pub fn ping(&mut self, payload: [u8; 8]) {
        frame::put_ping(&mut self.wbuf, false, payload);
    }

    /// An empty DATA frame ending `stream`.
    pub fn end_stream(&mut self, stream: u32) {
        frame::put_data(&mut self.wbuf, stream, &[], true);
    }

    /// GOAWAY: `last` is the highest peer stream we will process; it never rises
    /// above an earlier GOAWAY's, and as the client (no stream is the server's) it
    /// is 0 (RFC 9113 §6.8).
    pub fn goaway(&mut self, last: u32, reason: Reason, debug: &[u8]) {
        let last = match self.streams.role() {
            Role::Client => 0,
            Role::Server => last.min(self.goaway_sent.unwrap_or(u32::MAX)),
        };
        self.goaway_sent = Some(last);
        self.draining = false;
        frame::put_goaway(&mut self.wbuf, last, reason, debug);
    }

    /// A graceful shutdown's first step: GOAWAY with the highest stream id
    /// (2^31-1) and a PING; the PING's answer sends the real last-stream-id, so
    /// streams the peer opened before it saw the first GOAWAY are still served.
    pub fn start_drain(&mut self) {
        if self.goaway_sent.is_some() {
            return;
        }
        let last = match self.streams.role() {
            Role::Client => 0,
            Role::Server => frame::MAX_WINDOW,
        };
        frame::put_goaway(&mut self.wbuf, last, Reason::NO_ERROR, b"shutting down");
        self.goaway_sent = Some(last);
        frame::put_ping(&mut self.wbuf, false, DRAIN_PING);
        self.draining = true;
    }

    /// A graceful shutdown waits for its PING's answer.
    pub fn drain_pending(&self) -> bool {
        self.draining
    }

    /// Ends a graceful shutdown now (its PING came back, or took too long): the
    /// final GOAWAY, with the highest stream the peer opened.
    pub fn finish_drain(&mut self) {
        if self.draining {
            let last = self.streams.last_peer();
            self.goaway(last, Reason::NO_ERROR, b"shutting down");
        }
    }

    /// Whether a GOAWAY went out.
    pub fn goaway_sent(&self) -> bool {
        self.goaway_sent.is_some()
    }

    /// Whether new streams from the peer are refused: a GOAWAY with a real
    /// last-stream-id went out (not a graceful shutdown's first one).
    pub fn refusing_streams(&self) -> bool {
        self.goaway_sent.is_some() && !self.draining
    }

    /// Output not yet written to the socket.
    pub fn pending(&self) -> usize {
        self.wbuf.len() - self.written
    }

    /// Writes pending output to `io` until it is all out or `io` pushes back; true
    /// if anything was written.
    pub fn poll_write<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> std::io::Result<bool> {
        let mut wrote = false;
        while self.written < self.wbuf.len() {
            match Pin::new(&mut *io).poll_write(cx, &self.wbuf[self.written..]) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.written == self.wbuf.len() && self.written > 0 {
            self.wbuf.clear();
            self.written = 0;
        }
        Ok(wrote)
    }

    /// Drops output that can no longer be written (the socket failed).
    pub fn discard_output(&mut self) {
        self.wbuf.clear();
        self.written = 0;
    }

    /// Lets go of empty buffers (an idle connection keeps none).
    pub fn release_buffers(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            self.wbuf = Vec::new();
        }
    }

    /// Gives `n` bytes of connection window back to the peer (data the owner passed
    /// on or dropped); a WINDOW_UPDATE goes out once half the window is owed.
    pub fn release(&mut self, n: usize) {
        self.recv_unannounced += n;
        if self.recv_unannounced >= self.limits.connection_window as usize / 2 {
            self.announce();
        }
    }

    fn announce(&mut self) {
        let n = self.recv_unannounced.min(frame::MAX_WINDOW as usize);
        if n > 0 {
            frame::put_window_update(&mut self.wbuf, 0, n as u32);
            self.recv_window += n as i64;
            self.recv_unannounced -= n;
        }
    }

    /// Writes a header block for `stream` (HEADERS, then CONTINUATIONs if needed).
    pub fn headers(
        &mut self,
        stream: u32,
        end: bool,
        encode: impl FnOnce(&mut Encoder, &mut Vec<u8>),
    ) {
        let max = self.peer.max_frame_size as usize;
        let encoder = &mut self.encoder;
        frame::put_headers(&mut self.wbuf, stream, end, max, |dst| {
            encoder.start_block(dst);
            encode(encoder, dst);
        });
    }

    /// Writes `data` as DATA frames of at most the peer's frame size; the caller
    /// has checked the windows (and takes the connection window here).
    pub fn data(&mut self, stream: u32, data: &[u8], end: bool) {
        self.send_window -= data.len() as i64;
        // The peer's WINDOW_UPDATEs follow the data it gets: this pays for them.
        self.control.refund();
        let max = self.peer.max_frame_size as usize;
        if data.len() <= max {
            frame::put_data(&mut self.wbuf, stream, data, end);
            return;
        }
        let mut chunks = data.chunks(max).peekable();
        while let Some(c) = chunks.next() {
            frame::put_data(&mut self.wbuf, stream, c, end && chunks.peek().is_none());
        }
    }

    /// How many bytes one DATA frame of a stream with `stream_window` may carry
    /// now: that window, the connection's, the room left below `write_high` bytes
    /// of unwritten output, and the peer's frame size.
    pub fn sendable(&self, stream_window: i64, write_high: usize) -> usize {
        let room = write_high.saturating_sub(self.pending());
        stream_window
            .min(self.send_window)
            .min(room as i64)
            .min(i64::from(self.peer.max_frame_size))
            .max(0) as usize
    }

    /// Writes one DATA frame of `len` bytes that `fill` appends (the caller has
    /// checked the windows and the peer's frame size; the connection window is
    /// taken here).
    pub fn data_with(
        &mut self,
        stream: u32,
        len: usize,
        end: bool,
        fill: impl FnOnce(&mut Vec<u8>),
    ) {
        self.send_window -= len as i64;
        self.control.refund();
        let flags = if end { flag::END_STREAM } else { 0 };
        frame::put_head(&mut self.wbuf, len, kind::DATA, flags, stream);
        let before = self.wbuf.len();
        fill(&mut self.wbuf);
        debug_assert_eq!(self.wbuf.len() - before, len);
    }

    /// A header block (or the preface and first SETTINGS, or a frame head) is
    /// partly read: the peer owes the rest of it, and a slow peer is a slowloris.
    pub fn head_pending(&self) -> bool {
        if self.partial.is_some() || self.expect_settings {
            return true;
        }
        match self.rbuf.len() {
            0 => false,
            n if n < HEAD_LEN => true,
            _ => matches!(self.rbuf[3], kind::HEADERS | kind::CONTINUATION),
        }
    }

    /// Counts a stream the peer made us reset (a malformed request, say).
    pub fn peer_fault(&mut self) -> Result<(), ConnError> {
        if self.resets.spend(self.limits.resets) {
            return Ok(());
        }
        Err(ConnError::new(
            Reason::ENHANCE_YOUR_CALM,
            "too many streams reset (rapid reset)",
        ))
    }

    /// A call completed: one reset more is allowed (resets count only beyond the
    /// calls a connection completes, so a busy client may cancel a share of them).
    pub fn call_completed(&mut self) {
        self.resets.refund();
    }

    fn control_frame(&mut self) -> Result<(), ConnError> {
        if self.control.spend(self.limits.control) {
            return Ok(());
        }
        Err(ConnError::new(
            Reason::ENHANCE_YOUR_CALM,
            "too many control frames (SETTINGS, PING, PRIORITY, WINDOW_UPDATE or empty frames)",
        ))
    }

    /// The next whole frame in the read buffer, if one is there.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ConnError> {
        loop {
            if self.expect_preface {
                let n = self.rbuf.len().min(frame::PREFACE.len());
                if self.rbuf[..n] != frame::PREFACE[..n] {
                    return Err(ConnError::protocol("the connection preface is malformed"));
                }
                if n < frame::PREFACE.len() {
                    return Ok(None);
                }
                self.rbuf.advance(frame::PREFACE.len());
                self.expect_preface = false;
            }
            if self.rbuf.len() < HEAD_LEN {
                return Ok(None);
            }
            let mut h = [0u8; HEAD_LEN];
            h.copy_from_slice(&self.rbuf[..HEAD_LEN]);
            let head = Head::parse(&h);
            if head.len > self.limits.max_frame_size as usize {
                return Err(ConnError::new(
                    Reason::FRAME_SIZE_ERROR,
                    format!(
                        "a frame of {} bytes is bigger than SETTINGS_MAX_FRAME_SIZE ({})",
                        head.len, self.limits.max_frame_size
                    ),
                ));
            }
            if self.rbuf.len() < HEAD_LEN + head.len {
                self.rbuf.reserve(HEAD_LEN + head.len - self.rbuf.len());
                return Ok(None);
            }
            if self.expect_settings {
                if head.kind != kind::SETTINGS || head.has(flag::ACK) {
                    return Err(ConnError::protocol("the first frame must be SETTINGS"));
                }
                self.expect_settings = false;
            }
            self.rbuf.advance(HEAD_LEN);
            let payload = self.rbuf.split_to(head.len);
            if let Some(frame) = self.frame(head, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    fn frame(&mut self, head: Head, payload: BytesMut) -> Result<Option<Frame>, ConnError> {
        if let Some(p) = &self.partial {
            if head.kind != kind::CONTINUATION || head.stream != p.stream {
                return Err(ConnError::protocol(
                    "a header block was interrupted by another frame",
                ));
            }
        }
        match head.kind {
            kind::DATA => self.data_frame(head, payload).map(Some),
            kind::HEADERS => self.headers_frame(head, payload),
            kind::CONTINUATION => self.continuation(head, payload),
            kind::PRIORITY => {
                if head.stream == 0 {
                    return Err(ConnError::protocol("PRIORITY on stream 0"));
                }
                self.control_frame()?;
                if payload.len() != 5 {
                    return self.stream_error(head.stream, Reason::FRAME_SIZE_ERROR);
                }
                if frame::read_u31(&payload) == head.stream {
                    return self.stream_error(head.stream, Reason::PROTOCOL_ERROR);
                }
                Ok(None)
            }
            kind::RST_STREAM => {
                if head.stream == 0 {
                    return Err(ConnError::protocol("RST_STREAM on stream 0"));
                }
                if payload.len() != 4 {
                    return Err(ConnError::new(
                        Reason::FRAME_SIZE_ERROR,
                        "RST_STREAM is not 4 bytes",
                    ));
                }
                self.peer_fault()?;
                Ok(Some(Frame::Reset {
                    stream: head.stream,
                    reason: Reason(frame::read_u32(&payload)),
                }))
            }
            kind::SETTINGS => self.settings(head, &payload),
            kind::PUSH_PROMISE => Err(ConnError::protocol("PUSH_PROMISE is not allowed here")),
            kind::PING => {
                if head.stream != 0 {
                    return Err(ConnError::protocol("PING on a stream"));
                }
                let Ok(data) = <[u8; 8]>::try_from(&payload[..]) else {
                    return Err(ConnError::new(
                        Reason::FRAME_SIZE_ERROR,
                        "PING is not 8 bytes",
                    ));
                };
                if head.has(flag::ACK) {
                    if data == DRAIN_PING {
                        self.finish_drain();
                    }
                    return Ok(Some(Frame::PingAck(data)));
                }
                self.control_frame()?;
                frame::put_ping(&mut self.wbuf, true, data);
                Ok(None)
            }
            kind::GOAWAY => {
                if head.stream != 0 {
                    return Err(ConnError::protocol("GOAWAY on a stream"));
                }
                if payload.len() < 8 {
                    return Err(ConnError::new(
                        Reason::FRAME_SIZE_ERROR,
                        "GOAWAY is shorter than 8 bytes",
                    ));
                }
                let last_stream = frame::read_u31(&payload);
                let reason = Reason(frame::read_u32(&payload[4..]));
                let mut payload = payload;
                payload.advance(8);
                Ok(Some(Frame::GoAway {
                    last_stream,
                    reason,
                    debug: payload.freeze(),
                }))
            }
            kind::WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err(ConnError::new(
                        Reason::FRAME_SIZE_ERROR,
                        "WINDOW_UPDATE is not 4 bytes",
                    ));
                }
                let increment = frame::read_u31(&payload);
                // Window updates come in step with the data we send, which pays
                // for them; a flood of them without data is abuse.
                self.control_frame()?;
                if head.stream == 0 {
                    if increment == 0 {
                        return Err(ConnError::protocol("a connection WINDOW_UPDATE of 0"));
                    }
                    self.send_window += i64::from(increment);
                    if self.send_window > i64::from(frame::MAX_WINDOW) {
                        return Err(ConnError::new(
                            Reason::FLOW_CONTROL_ERROR,
                            "the connection window grew past 2^31-1",
                        ));
                    }
                } else if increment == 0 {
                    return self.stream_error(head.stream, Reason::PROTOCOL_ERROR);
                }
                Ok(Some(Frame::WindowUpdate {
                    stream: head.stream,
                    increment,
                }))
            }
            // Unknown frame types are ignored (RFC 9113 §4.1), and counted.
            _ => self.control_frame().map(|()| None),
        }
    }

    /// A frame broke its stream's rules: the owner resets the stream (and the
    /// reset is counted then, as every reset the peer provokes is).
    fn stream_error(&mut self, stream: u32, reason: Reason) -> Result<Option<Frame>, ConnError> {
        Ok(Some(Frame::StreamError { stream, reason }))
    }

    fn data_frame(&mut self, head: Head, mut payload: BytesMut) -> Result<Frame, ConnError> {
        if head.stream == 0 {
            return Err(ConnError::protocol("DATA on stream 0"));
        }
        let flow = payload.len();
        if flow as i64 > self.recv_window {
            return Err(ConnError::new(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection's flow-control window",
            ));
        }
        self.recv_window -= flow as i64;
        if flow == 0 && !head.has(flag::END_STREAM) {
            // An empty DATA frame carries nothing: a flood of them is abuse.
            self.control_frame()?;
        } else {
            // Frames that carry calls pay for control frames (a client's BDP PINGs
            // follow the data it receives; HTTP/2 clients do that).
            self.control.refund();
        }
        if head.has(flag::PADDED) {
            let pad = strip_padding(&mut payload)?;
            // Padding is never passed on: its window comes back at once.
            self.release(pad + 1);
        }
        Ok(Frame::Data {
            stream: head.stream,
            data: payload.freeze(),
            end: head.has(flag::END_STREAM),
            flow,
        })
    }

    fn headers_frame(
        &mut self,
        head: Head,
        mut payload: BytesMut,
    ) -> Result<Option<Frame>, ConnError> {
        if head.stream == 0 {
            return Err(ConnError::protocol("HEADERS on stream 0"));
        }
        if head.has(flag::PADDED) {
            strip_padding(&mut payload)?;
        }
        if head.has(flag::PRIORITY) {
            if payload.len() < 5 {
                return Err(ConnError::new(
                    Reason::FRAME_SIZE_ERROR,
                    "HEADERS too short for its priority",
                ));
            }
            if frame::read_u31(&payload) == head.stream {
                payload.advance(5);
                self.decode_and_drop(&payload)?;
                return self.stream_error(head.stream, Reason::PROTOCOL_ERROR);
            }
            payload.advance(5);
        }
        let end = head.has(flag::END_STREAM);
        self.control.refund();
        if head.has(flag::END_HEADERS) {
            return Ok(Some(Frame::Headers {
                stream: head.stream,
                end,
                block: payload.freeze(),
            }));
        }
        self.check_block_size(payload.len())?;
        self.partial = Some(Partial {
            stream: head.stream,
            end,
            block: payload.to_vec(),
            frames: 1,
        });
        Ok(None)
    }

    fn continuation(&mut self, head: Head, payload: BytesMut) -> Result<Option<Frame>, ConnError> {
        let Some(mut p) = self.partial.take() else {
            return Err(ConnError::protocol("CONTINUATION without a header block"));
        };
        p.frames += 1;
        if p.frames > MAX_CONTINUATIONS {
            return Err(ConnError::new(
                Reason::ENHANCE_YOUR_CALM,
                "too many CONTINUATION frames in one header block",
            ));
        }
        self.check_block_size(p.block.len() + payload.len())?;
        p.block.extend_from_slice(&payload);
        if head.has(flag::END_HEADERS) {
            return Ok(Some(Frame::Headers {
                stream: p.stream,
                end: p.end,
                block: Bytes::from(p.block),
            }));
        }
        self.partial = Some(p);
        Ok(None)
    }

    /// A compressed block may be somewhat bigger than the list it decodes to (literal
    /// overhead), never by much: twice the list limit (and at least 64 KiB, so a
    /// head a little over a small limit gets its 431) is abuse.
    fn check_block_size(&self, len: usize) -> Result<(), ConnError> {
        let max = (self.limits.max_header_list_size as usize)
            .saturating_mul(2)
            .max(64 << 10);
        if len > max {
            return Err(ConnError::new(
                Reason::ENHANCE_YOUR_CALM,
                format!("a header block of more than {max} bytes"),
            ));
        }
        Ok(())
    }

    /// Decodes a block whose stream is refused anyway, to keep HPACK in step.
    fn decode_and_drop(&mut self, block: &[u8]) -> Result<(), ConnError> {
        self.decoder
            .decode(block, 0, |_| {})
            .map(drop)
            .map_err(|e| ConnError::new(Reason::COMPRESSION_ERROR, e.to_string()))
    }

    fn settings(&mut self, head: Head, payload: &[u8]) -> Result<Option<Frame>, ConnError> {
        if head.stream != 0 {
            return Err(ConnError::protocol("SETTINGS on a stream"));
        }
        if head.has(flag::ACK) {
            if !payload.is_empty() {
                return Err(ConnError::new(
                    Reason::FRAME_SIZE_ERROR,
                    "a SETTINGS ACK with a payload",
                ));
            }
            self.settings_unacked = None;
            return Ok(None);
        }
        self.control_frame()?;
        if payload.len() % 6 != 0 {
            return Err(ConnError::new(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS is not a multiple of 6 bytes",
            ));
        }
        for s in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let value = frame::read_u32(&s[2..]);
            match id {
                setting::HEADER_TABLE_SIZE => {
                    // We never use more than the default, whatever the peer allows.
                    self.encoder.set_max_table_size((value as usize).min(4096));
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(ConnError::protocol("SETTINGS_ENABLE_PUSH is not 0 or 1"));
                }
                setting::MAX_CONCURRENT_STREAMS => self.peer.max_concurrent_streams = value,
                setting::INITIAL_WINDOW_SIZE => {
                    if value > frame::MAX_WINDOW {
                        return Err(ConnError::new(
                            Reason::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    self.window_pending = Some(value);
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&value)
                    {
                        return Err(ConnError::protocol("SETTINGS_MAX_FRAME_SIZE out of range"));
                    }
                    self.peer.max_frame_size = value;
                }
                setting::MAX_HEADER_LIST_SIZE => self.peer.max_header_list_size = value,
                // Unknown settings are ignored (RFC 9113 §6.5.2).
                _ => {}
            }
        }
        frame::put_settings_ack(&mut self.wbuf);
        Ok(Some(Frame::Settings))
    }
}

/// Removes a frame's padding (its length byte first); returns the padding length.
fn strip_padding(payload: &mut BytesMut) -> Result<usize, ConnError> {
    let Some(&pad) = payload.first() else {
        return Err(ConnError::new(
            Reason::FRAME_SIZE_ERROR,
            "a padded frame with no pad length",
        ));
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(ConnError::protocol("padding longer than the frame"));
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_after_handshake() -> Wire {
        let mut w = Wire::server(Limits::default());
        w.rbuf.extend_from_slice(frame::PREFACE);
        let mut settings = Vec::new();
        frame::put_settings(&mut settings, &[(setting::INITIAL_WINDOW_SIZE, 100)]);
        w.rbuf.extend_from_slice(&settings);
        match w.next_frame() {
            Ok(Some(Frame::Settings)) => assert_eq!(w.take_window_delta(), 100 - 65_535),
            other => panic!("want SETTINGS, got {other:?}"),
        }
        w.wbuf.clear();
        w
    }

    fn feed(w: &mut Wire, f: impl FnOnce(&mut Vec<u8>)) {
        let mut b = Vec::new();
        f(&mut b);
        w.rbuf.extend_from_slice(&b);
    }

    #[test]
    fn the_preface_and_settings_come_first() {
        let mut w = Wire::server(Limits::default());
        w.rbuf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n......");
        assert!(w.next_frame().is_err());
        let mut w = Wire::server(Limits::default());
        w.rbuf.extend_from_slice(frame::PREFACE);
        feed(&mut w, |b| frame::put_ping(b, false, [0; 8]));
        let e = w.next_frame().unwrap_err();
        assert_eq!(e.reason, Reason::PROTOCOL_ERROR);
    }

    #[test]
    fn a_split_frame_waits_for_the_rest() {
        let mut w = server_after_handshake();
        let mut b = Vec::new();
        frame::put_data(&mut b, 1, b"hello", true);
        w.rbuf.extend_from_slice(&b[..7]);
        assert!(w.next_frame().unwrap().is_none());
        w.rbuf.extend_from_slice(&b[7..]);
        match w.next_frame().unwrap() {
            Some(Frame::Data {
                stream: 1,
                data,
                end: true,
                flow: 5,
            }) => assert_eq!(&data[..], b"hello"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn continuations_join_and_an_interruption_is_an_error() {
        let mut w = server_after_handshake();
        feed(&mut w, |b| {
            frame::put_head(b, 2, kind::HEADERS, flag::END_STREAM, 1);
            b.extend_from_slice(b"ab");
            frame::put_head(b, 1, kind::CONTINUATION, 0, 1);
            b.extend_from_slice(b"c");
            frame::put_head(b, 1, kind::CONTINUATION, flag::END_HEADERS, 1);
            b.extend_from_slice(b"d");
        });
        match w.next_frame().unwrap() {
            Some(Frame::Headers {
                stream: 1,
                end: true,
                block,
            }) => assert_eq!(&block[..], b"abcd"),
            other => panic!("{other:?}"),
        }
        feed(&mut w, |b| {
            frame::put_head(b, 1, kind::HEADERS, 0, 3);
            b.push(0);
            frame::put_ping(b, false, [1; 8]);
        });
        assert_eq!(w.next_frame().unwrap_err().reason, Reason::PROTOCOL_ERROR);
    }

    /// Frames until an error, or none left.
    fn drain(w: &mut Wire) -> Result<usize, ConnError> {
        let mut n = 0;
        while w.next_frame()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn control_frames_past_the_budget_end_the_connection() {
        let mut w = server_after_handshake();
        let burst = Limits::default().control.burst as usize;
        feed(&mut w, |b| {
            for i in 0..burst + 10 {
                frame::put_ping(b, false, [i as u8; 8]);
            }
        });
        let e = drain(&mut w).unwrap_err();
        assert_eq!(e.reason, Reason::ENHANCE_YOUR_CALM);
    }

    #[test]
    fn pings_that_follow_data_are_paid_for_by_it() {
        // A client's BDP PINGs come after the DATA it receives; on a busy stream
        // that is many PINGs, and never a flood.
        let mut w = server_after_handshake();
        for _ in 0..10 {
            feed(&mut w, |b| {
                for i in 0..1000u32 {
                    frame::put_head(b, 1, kind::DATA, 0, 1);
                    b.push(0);
                    frame::put_ping(b, false, i.to_be_bytes().repeat(2).try_into().unwrap());
                }
            });
            assert_eq!(drain(&mut w).expect("no flood"), 1000);
            w.release(1000);
        }
    }

    #[test]
    fn window_updates_are_paid_for_by_the_data_sent() {
        let burst = Limits::default().control.burst as usize;
        let mut w = server_after_handshake();
        feed(&mut w, |b| {
            for _ in 0..burst + 10 {
                frame::put_window_update(b, 0, 1);
            }
        });
        assert_eq!(drain(&mut w).unwrap_err().reason, Reason::ENHANCE_YOUR_CALM);

        let mut w = server_after_handshake();
        for _ in 0..10 * burst {
            w.data(1, b"x", false);
            feed(&mut w, |b| frame::put_window_update(b, 1, 1));
            assert_eq!(drain(&mut w).expect("no flood"), 1);
        }
    }

    #[test]
    fn resets_past_the_budget_end_the_connection_unless_calls_complete() {
        let burst = Limits::default().resets.burst as usize;
        let mut w = server_after_handshake();
        feed(&mut w, |b| {
            for i in 0..burst + 1 {
                frame::put_rst(b, 2 * i as u32 + 1, Reason::CANCEL);
            }
        });
        assert_eq!(drain(&mut w).unwrap_err().reason, Reason::ENHANCE_YOUR_CALM);

        let mut w = server_after_handshake();
        for i in 0..10 * burst as u32 {
            feed(&mut w, |b| frame::put_rst(b, 2 * i + 1, Reason::CANCEL));
            assert_eq!(drain(&mut w).expect("within budget"), 1);
            w.call_completed();
        }
    }

    #[test]
    fn a_continuation_flood_is_cut_off() {
        let mut w = server_after_handshake();
        feed(&mut w, |b| {
            frame::put_head(b, 0, kind::HEADERS, 0, 1);
            for _ in 0..100 {
                frame::put_head(b, 0, kind::CONTINUATION, 0, 1);
            }
        });
        assert_eq!(
            w.next_frame().unwrap_err().reason,
            Reason::ENHANCE_YOUR_CALM
        );
    }

    #[test]
    fn pings_are_answered_and_settings_acknowledged() {
        let mut w = server_after_handshake();
        feed(&mut w, |b| frame::put_ping(b, false, [7; 8]));
        assert!(w.next_frame().unwrap().is_none());
        let mut want = Vec::new();
        frame::put_ping(&mut want, true, [7; 8]);
        assert_eq!(w.wbuf, want);
    }

    #[test]
    fn data_past_the_connection_window_is_an_error() {
        let mut w = server_after_handshake();
        w.recv_window = 3;
        feed(&mut w, |b| frame::put_data(b, 1, b"four", false));
        assert_eq!(
            w.next_frame().unwrap_err().reason,
            Reason::FLOW_CONTROL_ERROR
        );
    }

    #[test]
    fn padding_is_stripped_and_its_window_returned() {
        let mut w = server_after_handshake();
        w.limits.connection_window = 4; // announce at 2 bytes owed
        feed(&mut w, |b| {
            frame::put_head(b, 1 + 3 + 2, kind::DATA, flag::PADDED, 1);
            b.push(2);
            b.extend_from_slice(b"abc");
            b.extend_from_slice(&[0, 0]);
        });
        match w.next_frame().unwrap() {
            Some(Frame::Data { data, flow: 6, .. }) => assert_eq!(&data[..], b"abc"),
            other => panic!("{other:?}"),
        }
        let mut want = Vec::new();
        frame::put_window_update(&mut want, 0, 3);
        assert_eq!(w.wbuf, want);
    }

    /// The GOAWAY frames in `w`'s output: (last-stream-id, code).
    fn goaways(w: &Wire) -> Vec<(u32, Reason)> {
        let mut out = Vec::new();
        let mut b = &w.wbuf[..];
        while b.len() >= HEAD_LEN {
            let h = Head::parse(b[..HEAD_LEN].try_into().unwrap());
            let payload = &b[HEAD_LEN..HEAD_LEN + h.len];
            if h.kind == kind::GOAWAY {
                out.push((
                    frame::read_u31(payload),
                    Reason(frame::read_u32(&payload[4..])),
                ));
            }
            b = &b[HEAD_LEN + h.len..];
        }
        out
    }

    #[test]
    fn goaway_never_raises_its_last_stream_and_the_client_sends_zero() {
        let mut w = server_after_handshake();
        w.start_drain();
        w.goaway(7, Reason::NO_ERROR, b"");
        w.goaway(9, Reason::PROTOCOL_ERROR, b"");
        assert_eq!(
            goaways(&w),
            [
                (frame::MAX_WINDOW, Reason::NO_ERROR),
                (7, Reason::NO_ERROR),
                (7, Reason::PROTOCOL_ERROR)
            ]
        );
        let mut c = Wire::client(Limits::default());
        c.wbuf.clear();
        c.goaway(5, Reason::NO_ERROR, b"");
        assert_eq!(goaways(&c), [(0, Reason::NO_ERROR)]);
    }

    #[test]
    fn the_drain_pings_answer_sends_the_final_goaway() {
        let mut w = server_after_handshake();
        let mut b = Vec::new();
        let block = [0x82u8]; // :method GET, indexed (the block is not decoded here)
        frame::put_headers(&mut b, 5, true, 16_384, |d| d.extend_from_slice(&block));
        w.feed(&b);
        let f = w.next_frame().unwrap().unwrap();
        assert_eq!(w.judge(&f, None), Verdict::Open);
        w.start_drain();
        assert!(w.drain_pending() && !w.refusing_streams());
        feed(&mut w, |b| frame::put_ping(b, true, DRAIN_PING));
        assert!(matches!(w.next_frame(), Ok(Some(Frame::PingAck(_)))));
        assert!(w.refusing_streams());
        assert_eq!(goaways(&w).last(), Some(&(5, Reason::NO_ERROR)));
    }

    #[test]
    fn settings_unacknowledged_in_time_are_overdue() {
        let mut w = server_after_handshake();
        let now = std::time::Instant::now();
        assert!(!w.settings_overdue(now));
        assert!(w.settings_overdue(now + SETTINGS_TIMEOUT));
        feed(&mut w, frame::put_settings_ack);
        assert!(w.next_frame().unwrap().is_none());
        assert!(!w.settings_overdue(now + SETTINGS_TIMEOUT));
    }

    #[test]
    fn frames_bigger_than_allowed_are_refused() {
        let mut w = server_after_handshake();
        feed(&mut w, |b| frame::put_head(b, 20_000, kind::DATA, 0, 1));
        assert_eq!(w.next_frame().unwrap_err().reason, Reason::FRAME_SIZE_ERROR);
    }
}
