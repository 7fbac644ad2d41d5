//! Stream states (RFC 9113 §5.1), decided in one place for both roles gantry plays.
//!
//! Each open stream carries a [`Stream`]: its state (open, half-closed local or
//! remote), both flow-control windows, and what its `content-length` says is still
//! to come. A connection keeps one [`Streams`] registry beside its streams: the
//! highest stream id the peer opened, the next id of our own, and a bounded record
//! of streams closed recently and how they closed (we reset it, the peer reset it,
//! or both sides ended it), so that a frame racing a close is told from one that
//! breaks the rules. [`Streams::judge`] says what every stream frame the peer sends
//! means: deliver it, open a stream, drop it quietly, reset its stream, or end the
//! connection.
//!
//! The rules it applies, by state of the frame's stream:
//! - idle (an id the peer has not used yet): only HEADERS (from the side that may
//!   open it) and PRIORITY; anything else is a connection error PROTOCOL_ERROR;
//! - open, half-closed (local): everything; trailers must end the stream;
//! - half-closed (remote): DATA or HEADERS are a stream error STREAM_CLOSED;
//! - closed, by our RST_STREAM: frames in flight are dropped (the grace the RFC
//!   allows, for as long as the record keeps the stream);
//! - closed, by the peer's RST_STREAM: DATA or HEADERS are a stream error
//!   STREAM_CLOSED;
//! - closed, both sides ended: DATA or HEADERS are a connection error STREAM_CLOSED;
//! - closed long ago, or never opened below the peer's highest id (§5.1.1 closes
//!   those): HEADERS is a connection error PROTOCOL_ERROR, DATA a stream error.
//!
//! WINDOW_UPDATE, RST_STREAM and PRIORITY on a closed stream are dropped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::{self, Reason};
use super::wire::{ConnError, Frame};

/// Which end of the connection gantry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Clients open odd streams to us.
    Server,
    /// We open odd streams to a server; it opens none (no push).
    Client,
}

/// An open stream's state (idle and closed streams are not kept as a [`Stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    /// We sent END_STREAM; the peer may still send.
    HalfClosedLocal,
    /// The peer sent END_STREAM; we may still send.
    HalfClosedRemote,
    /// Both sides sent END_STREAM (the stream is then removed).
    Closed,
}

/// How a stream closed, for frames that arrive after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// We sent RST_STREAM: the peer may not have seen it yet.
    ResetSent,
    /// The peer sent RST_STREAM.
    ResetReceived,
    /// Both sides sent END_STREAM.
    Ended,
}

/// One open stream's protocol state: what the connection core decides by.
#[derive(Debug, Clone)]
pub struct Stream {
    pub state: State,
    /// What we may still send.
    pub send_window: i64,
    /// What the peer may still send.
    pub recv_window: i64,
    /// Bytes the peer's `content-length` says are still to come (§8.1.1).
    pub remaining: Option<u64>,
    /// Listed in the connection's [`Ready`] queue.
    pub ready: bool,
    /// We sent RST_STREAM on it.
    pub reset_sent: bool,
    /// The peer sent RST_STREAM on it.
    pub reset_received: bool,
}

impl Stream {
    /// A stream opened with the given windows; `recv_end` if its first frame ended
    /// the peer's side, `send_end` if ours.
    pub fn new(send_window: u32, recv_window: u32) -> Stream {
        Stream {
            state: State::Open,
            send_window: i64::from(send_window),
            recv_window: i64::from(recv_window),
            remaining: None,
            ready: false,
            reset_sent: false,
            reset_received: false,
        }
    }

    /// The peer's side is over (END_STREAM came).
    pub fn recv_closed(&self) -> bool {
        matches!(self.state, State::HalfClosedRemote | State::Closed)
    }

    /// Our side is over (END_STREAM went out).
    pub fn send_closed(&self) -> bool {
        matches!(self.state, State::HalfClosedLocal | State::Closed)
    }

    /// END_STREAM came from the peer.
    pub fn end_recv(&mut self) {
        self.state = match self.state {
            State::Open => State::HalfClosedRemote,
            State::HalfClosedLocal | State::Closed => State::Closed,
            s => s,
        };
    }

    /// END_STREAM went to the peer.
    pub fn end_send(&mut self) {
        self.state = match self.state {
            State::Open => State::HalfClosedLocal,
            State::HalfClosedRemote | State::Closed => State::Closed,
            s => s,
        };
    }

    /// The peer's `content-length`: what its DATA must add up to.
    pub fn expect_length(&mut self, len: Option<u64>) {
        self.remaining = len;
    }

    /// Takes a DATA frame of `len` data bytes (`flow` with padding) against the
    /// window and the declared length; `Err` is the stream error to reset with.
    pub fn recv_data(&mut self, len: usize, flow: usize, end: bool) -> Result<(), Reason> {
        if flow as i64 > self.recv_window {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.recv_window -= flow as i64;
        if let Some(left) = self.remaining.as_mut() {
            let len = len as u64;
            if len > *left || (end && len != *left) {
                return Err(Reason::PROTOCOL_ERROR);
            }
            *left -= len;
        }
        if end {
            self.end_recv();
        }
        Ok(())
    }

    /// The peer's trailers (or an END_STREAM with no data) end its side: the
    /// declared length must be complete.
    pub fn recv_end_without_data(&mut self) -> Result<(), Reason> {
        if self.remaining.is_some_and(|left| left != 0) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        self.end_recv();
        Ok(())
    }

    /// A WINDOW_UPDATE for this stream; `Err` if the window would pass 2^31-1
    /// (a stream error FLOW_CONTROL_ERROR, §6.9.1).
    pub fn grow_send(&mut self, increment: u32) -> Result<(), Reason> {
        let grown = self.send_window + i64::from(increment);
        if grown > i64::from(frame::MAX_WINDOW) {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.send_window = grown;
        Ok(())
    }

    /// A new SETTINGS_INITIAL_WINDOW_SIZE moves every send window by `delta`; a
    /// window past 2^31-1 is a connection error FLOW_CONTROL_ERROR (§6.9.2).
    pub fn shift_send(&mut self, delta: i64) -> Result<(), ConnError> {
        let moved = self.send_window + delta;
        if moved > i64::from(frame::MAX_WINDOW) {
            return Err(ConnError::new(
                Reason::FLOW_CONTROL_ERROR,
                "SETTINGS_INITIAL_WINDOW_SIZE took a stream window past 2^31-1",
            ));
        }
        self.send_window = moved;
        Ok(())
    }

    /// How the stream closed, as it is removed.
    fn closed_as(&self) -> Closed {
        if self.reset_received {
            Closed::ResetReceived
        } else if self.state == State::Closed && !self.reset_sent {
            Closed::Ended
        } else {
            // Removed before both sides ended: the owner reset it (or is about to).
            Closed::ResetSent
        }
    }
}

/// What a stream frame from the peer means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// For the stream's owner.
    Deliver,
    /// HEADERS opening a new stream (the id is now the peer's highest).
    Open,
    /// A frame racing our close: drop it (a DATA frame's window comes back).
    Ignore,
    /// A stream error: reset the stream with this code (a DATA frame's window
    /// comes back; a header block is still decoded, to keep HPACK in step).
    Reset(Reason),
    /// A connection error.
    Fail(ConnError),
}

/// How many closed streams a connection remembers, and for how long: enough for
/// the frames in flight when a stream closes (a round trip), bounded so a peer
/// cannot make the record grow.
const CLOSED_KEPT: usize = 1024;
const CLOSED_GRACE: Duration = Duration::from_secs(10);

/// A connection's stream ids and the streams it closed recently.
#[derive(Debug)]
pub struct Streams {
    role: Role,
    /// The highest stream id the peer opened (server role).
    last_peer: u32,
    /// The id our next stream gets (client role).
    next_local: u32,
    closed: VecDeque<(u32, Closed, Instant)>,
}

impl Streams {
    pub fn new(role: Role) -> Streams {
        Streams {
            role,
            last_peer: 0,
            next_local: 1,
            closed: VecDeque::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The highest stream id the peer opened: a GOAWAY's last-stream-id.
    pub fn last_peer(&self) -> u32 {
        self.last_peer
    }

    /// Takes the id for a new stream of ours.
    pub fn next_local(&mut self) -> u32 {
        let id = self.next_local;
        self.next_local = self.next_local.saturating_add(2);
        id
    }

    /// Whether another stream of ours has an id left (ids stop at 2^31-1).
    pub fn local_ids_left(&self) -> bool {
        self.next_local < frame::MAX_WINDOW
    }

    /// Records a stream leaving the connection, and how it closed.
    pub fn close(&mut self, id: u32, st: &Stream) {
        self.remember(id, st.closed_as());
    }

    /// Records a stream closed without ever being kept (refused or answered at
    /// once with a reset).
    pub fn remember(&mut self, id: u32, how: Closed) {
        let now = Instant::now();
        while self.closed.len() >= CLOSED_KEPT
            || self
                .closed
                .front()
                .is_some_and(|&(_, _, at)| now.duration_since(at) > CLOSED_GRACE)
        {
            self.closed.pop_front();
        }
        self.closed.push_back((id, how, now));
    }

    fn closed_as(&self, id: u32) -> Option<Closed> {
        // Newest first: a stream is closed once, but the scan is short either way.
        self.closed
            .iter()
            .rev()
            .find(|(i, ..)| *i == id)
            .map(|&(_, how, _)| how)
    }

    /// Whether `id` is a stream the peer has not opened yet (or, for our own ids,
    /// one we have not opened).
    fn idle(&self, id: u32) -> bool {
        let peer_parity = match self.role {
            Role::Server => 1,
            Role::Client => 0,
        };
        if id % 2 == peer_parity {
            id > self.last_peer
        } else {
            id >= self.next_local
        }
    }

    /// What a stream frame from the peer means, given the stream's state if it is
    /// open here (`live`).
    pub fn judge(&mut self, f: &Frame, live: Option<&Stream>) -> Verdict {
        match *f {
            Frame::Headers { stream, .. } => self.judge_headers(stream, live),
            Frame::Data { stream, .. } => match live {
                Some(st) if st.recv_closed() => Verdict::Reset(Reason::STREAM_CLOSED),
                Some(_) => Verdict::Deliver,
                None if self.idle(stream) => fail("DATA on an idle stream"),
                None => match self.closed_as(stream) {
                    Some(Closed::ResetSent) => Verdict::Ignore,
                    Some(Closed::Ended) => Verdict::Fail(ConnError::new(
                        Reason::STREAM_CLOSED,
                        "DATA on a stream both sides ended",
                    )),
                    Some(Closed::ResetReceived) | None => Verdict::Reset(Reason::STREAM_CLOSED),
                },
            },
            Frame::Reset { stream, .. } => match live {
                Some(_) => Verdict::Deliver,
                None if self.idle(stream) => fail("RST_STREAM on an idle stream"),
                None => Verdict::Ignore,
            },
            Frame::WindowUpdate { stream, .. } => match live {
                Some(_) => Verdict::Deliver,
                None if stream == 0 => Verdict::Deliver,
                None if self.idle(stream) => fail("WINDOW_UPDATE on an idle stream"),
                None => Verdict::Ignore,
            },
            // A broken PRIORITY or WINDOW_UPDATE resets its stream, whatever its
            // state (RFC 9113 §5.4.2), unless our own reset already closed it.
            Frame::StreamError { stream, reason } => match live {
                None if self.closed_as(stream) == Some(Closed::ResetSent) => Verdict::Ignore,
                _ => Verdict::Reset(reason),
            },
            _ => Verdict::Deliver,
        }
    }

    fn judge_headers(&mut self, id: u32, live: Option<&Stream>) -> Verdict {
        if let Some(st) = live {
            // Trailers, or (from a server) the head after an informational one:
            // the owner tells which; the core only says the stream takes a block.
            return match st.recv_closed() {
                true => Verdict::Reset(Reason::STREAM_CLOSED),
                false => Verdict::Deliver,
            };
        }
        let peer_opens = self.role == Role::Server && id % 2 == 1;
        if peer_opens && id > self.last_peer {
            self.last_peer = id;
            return Verdict::Open;
        }
        if self.idle(id) {
            return fail(match self.role {
                Role::Server => "a client opened an even-numbered stream",
                Role::Client => "HEADERS on a stream gantry never opened",
            });
        }
        match self.closed_as(id) {
            Some(Closed::ResetSent) => Verdict::Ignore,
            Some(Closed::ResetReceived) => Verdict::Reset(Reason::STREAM_CLOSED),
            Some(Closed::Ended) => Verdict::Fail(ConnError::new(
                Reason::STREAM_CLOSED,
                "HEADERS on a stream both sides ended",
            )),
            None => fail("HEADERS on a closed stream, or one lower than a stream already opened"),
        }
    }
}

fn fail(message: &'static str) -> Verdict {
    Verdict::Fail(ConnError::new(Reason::PROTOCOL_ERROR, message))
}

/// Streams with data to send, taking turns: each gets one frame, then goes to the
/// back (round robin by frame), so a bulk download does not hold back the small
/// answers that share its connection.
#[derive(Debug, Default)]
pub struct Ready {
    queue: VecDeque<u32>,
}

impl Ready {
    /// Lists a stream (once).
    pub fn push(&mut self, id: u32, st: &mut Stream) {
        if !st.ready {
            st.ready = true;
            self.queue.push_back(id);
        }
    }

    /// The next stream's turn (its `ready` flag is the owner's to clear).
    pub fn pop(&mut self) -> Option<u32> {
        self.queue.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests;
