//! One call between its two connections.
//!
//! An [`Exchange`] is what a client-facing connection and a server-facing one
//! share of a call: the request (head, data, trailers) flowing to the server, the
//! response flowing back, and how either side ended. Each side is driven by one
//! task: a connection task that owns many calls (it is told which calls have news
//! through its [`Inbox`]), or a task of the call's own (a bridge to hyper, woken
//! directly). Neither side ever waits on the other while holding the lock: a side
//! locks, moves what it can, marks the other side as having news, unlocks, then
//! wakes it.
//!
//! Flow control passes through: a connection gives window back to its peer only
//! when the other side has taken the data out (so each connection buffers at most
//! what its windows allow, however slow the other end). Stream windows come back
//! per exchange, in steps of [`CREDIT_STEP`]; connection windows through the
//! producing connection's [`Inbox::release`], an atomic add, so small calls cost no
//! extra wake-up.
//!
//! The request is kept (head, data and trailers, up to [`REPLAY_LIMIT`]) until the
//! answer starts, so a call the server never saw, or one its router retries, can be
//! sent again without asking the client for anything.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use parking_lot::{Mutex, MutexGuard};

use super::replay::REPLAY_LIMIT;
use super::UpstreamError;
use crate::http2::driver::{Mailbox, WRITE_HIGH};
use crate::http2::frame::Reason;
use crate::http2::head;
use crate::http2::stream::{self as h2stream, Ready};
use crate::http2::wire::Wire;

/// Stream window given back once this much was taken (and the stream goes on).
pub const CREDIT_STEP: usize = 64 << 10;

/// How a task side hears of news: its connection's inbox, or its own waker.
pub enum Side {
    Conn(Arc<Inbox>),
    Task(AtomicWaker),
}

impl Side {
    pub fn task() -> Side {
        Side::Task(AtomicWaker::new())
    }
}

/// Why the server side of a call stopped.
#[derive(Debug, Clone)]
pub enum ServerEnd {
    /// The call never reached a server: no connection, or it closed first.
    Unsent(Arc<UpstreamError>),
    /// The server refused the stream unprocessed (REFUSED_STREAM, or a GOAWAY
    /// below its id): it may go elsewhere.
    Refused,
    /// The server reset the stream.
    Reset(Reason),
    /// The connection failed under the call.
    Lost(Arc<str>),
    /// The server stopped answering (a PING went unanswered) under the call.
    Silent(Arc<str>),
}

/// One direction of a call's body: data chunks, then trailers or the end.
#[derive(Debug, Default)]
pub struct Flow {
    chunks: VecDeque<Bytes>,
    /// Index of the first chunk not wholly taken (earlier ones are kept).
    next: usize,
    /// Bytes of `chunks[next]` taken.
    offset: usize,
    /// Bytes not yet taken.
    pub queued: usize,
    pub trailers: Option<HeaderMap>,
    /// Nothing follows what is queued (and the trailers, if any).
    pub end: bool,
    /// Taken chunks stay (for a replay) while this is on.
    keep: bool,
    kept: usize,
    /// Bytes taken since the producer last collected them (stream window credit).
    pub released: usize,
    /// Leading bytes the producer's connection was already credited for (a replay).
    credited: usize,
    /// A task producer found the flow full and waits for room.
    pub producer_waiting: bool,
}

impl Flow {
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.queued += data.len();
        self.chunks.push_back(data);
    }

    /// Whether nothing is left to take: all data taken, trailers and end included.
    pub fn is_drained(&self) -> bool {
        self.queued == 0 && self.trailers.is_none()
    }

    /// Up to `max` bytes from the front, with how many of them the producer's
    /// connection is owed credit for.
    pub fn take(&mut self, max: usize) -> Option<(Bytes, usize)> {
        if self.queued == 0 || max == 0 {
            return None;
        }
        let chunk = self.chunks.get(self.next)?;
        let left = chunk.len() - self.offset;
        let part = if left <= max {
            let part = if self.offset == 0 {
                chunk.clone()
            } else {
                chunk.slice(self.offset..)
            };
            self.offset = 0;
            if self.keep {
                self.next += 1;
            } else {
                self.chunks.pop_front();
            }
            part
        } else {
            let part = chunk.slice(self.offset..self.offset + max);
            self.offset += max;
            part
        };
        let n = part.len();
        self.queued -= n;
        self.released += n;
        let credit = n.saturating_sub(self.credited);
        self.credited = self.credited.saturating_sub(n);
        if self.keep {
            self.kept += n;
            if self.kept > REPLAY_LIMIT {
                self.forget();
            }
        }
        Some((part, credit))
    }

    /// Takes exactly `n` bytes (at most what is queued), across chunks, copying them
    /// onto `dst`: many small messages leave as one DATA frame. Returns how many of
    /// them the producer's connection is owed credit for.
    pub fn take_into(&mut self, n: usize, dst: &mut Vec<u8>) -> usize {
        let mut left = n.min(self.queued);
        let mut credit = 0;
        while left > 0 {
            let Some(chunk) = self.chunks.get(self.next) else {
                break;
            };
            let part = (chunk.len() - self.offset).min(left);
            dst.extend_from_slice(&chunk[self.offset..self.offset + part]);
            self.offset += part;
            left -= part;
            if self.offset == chunk.len() {
                self.offset = 0;
                if self.keep {
                    self.next += 1;
                } else {
                    self.chunks.pop_front();
                }
            }
            self.queued -= part;
            self.released += part;
            credit += part.saturating_sub(self.credited);
            self.credited = self.credited.saturating_sub(part);
            if self.keep {
                self.kept += part;
                if self.kept > REPLAY_LIMIT {
                    self.forget();
                }
            }
        }
        credit
    }

    /// Stops keeping taken data (the answer has started, or it is too big).
    pub fn forget(&mut self) {
        self.keep = false;
        self.chunks.drain(..self.next);
        self.next = 0;
    }

    /// Everything this flow held, from the start, if it was all kept: for a
    /// replay. The new flow's producer connection is already credited for what
    /// was taken before.
    pub fn replay(&self) -> Option<Flow> {
        if !self.keep {
            return None;
        }
        let total: usize = self.chunks.iter().map(Bytes::len).sum();
        Some(Flow {
            chunks: self.chunks.clone(),
            next: 0,
            offset: 0,
            queued: total,
            trailers: self.trailers.clone(),
            end: self.end,
            keep: true,
            kept: 0,
            released: 0,
            credited: total - self.queued,
            producer_waiting: false,
        })
    }

    /// One sending turn of this flow on stream `id`: one DATA frame of what is
    /// queued (many small messages leave as one frame), as far as the windows and
    /// the write buffer allow, then the trailers (shown to `trailers` first) or
    /// END_STREAM once all is sent. A stream with more to send waits in `ready`
    /// behind the other streams' turns.
    pub fn send_turn(
        &mut self,
        wire: &mut Wire,
        ready: &mut Ready,
        id: u32,
        core: &mut h2stream::Stream,
        trailers: impl FnOnce(&HeaderMap),
    ) -> Turn {
        let mut turn = Turn::default();
        if core.send_closed() {
            return turn;
        }
        if self.queued > 0 && !core.ready {
            let max = wire.sendable(core.send_window, WRITE_HIGH);
            if max > 0 {
                let n = self.queued.min(max);
                let last = n == self.queued && self.end && self.trailers.is_none();
                core.send_window -= n as i64;
                let mut owed = 0;
                wire.data_with(id, n, last, |dst| owed = self.take_into(n, dst));
                turn.sent = n;
                turn.owed = owed;
                if last {
                    core.end_send();
                    turn.ended = true;
                    return turn;
                }
            }
            if self.queued > 0 && core.send_window > 0 {
                ready.push(id, core);
            }
        }
        if self.queued == 0 {
            if let Some(t) = self.trailers.take() {
                trailers(&t);
                wire.headers(id, true, |enc, dst| head::encode_fields(enc, &t, dst));
                core.end_send();
                turn.ended = true;
            } else if self.end {
                wire.end_stream(id);
                core.end_send();
                turn.ended = true;
            }
        }
        turn
    }

    /// Drops what is left untaken; returns the bytes the producer is owed.
    pub fn discard(&mut self) -> usize {
        let owed = self.queued.saturating_sub(self.credited);
        self.chunks.clear();
        self.next = 0;
        self.offset = 0;
        self.queued = 0;
        self.credited = 0;
        self.trailers = None;
        owed
    }
}

/// What one [`Flow::send_turn`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Turn {
    /// DATA bytes sent.
    pub sent: usize,
    /// Of them, the bytes the producer's connection is owed window for.
    pub owed: usize,
    /// The flow's stream is over on this side (END_STREAM went out).
    pub ended: bool,
}

/// What both sides of a call share.
#[derive(Debug, Default)]
pub struct State {
    queued_client: bool,
    queued_server: bool,
    /// The request head, kept until the call is over (for retries and logs).
    pub req_head: Option<Request<()>>,
    /// The server side has sent the head.
    pub opened: bool,
    /// The stream id on the server connection, once opened.
    pub server_stream: u32,
    pub req: Flow,
    /// The response head, until the client side takes it.
    pub res_head: Option<Response<()>>,
    pub res: Flow,
    pub server_end: Option<ServerEnd>,
    /// The client side went away (its stream was reset, its connection lost).
    pub client_end: Option<Reason>,
}

impl State {
    /// Marks the server side as having news; true if it must be told.
    #[must_use]
    pub fn notify_server(&mut self) -> bool {
        !std::mem::replace(&mut self.queued_server, true)
    }

    #[must_use]
    pub fn notify_client(&mut self) -> bool {
        !std::mem::replace(&mut self.queued_client, true)
    }

    /// The server side starts reading its news.
    pub fn server_turn(&mut self) {
        self.queued_server = false;
    }

    pub fn client_turn(&mut self) {
        self.queued_client = false;
    }
}

/// One call, shared by its client side and its server side.
pub struct Exchange {
    state: Mutex<State>,
    client: Side,
    server: Side,
    /// The client connection's stream id (0 for a bridged call).
    pub client_stream: u32,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("client_stream", &self.client_stream)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// A call whose request head is ready (`end`: and is the whole request).
    pub fn new(
        client_stream: u32,
        client: Side,
        server: Side,
        head: Request<()>,
        end: bool,
    ) -> Arc<Exchange> {
        let state = State {
            req_head: Some(head),
            req: Flow {
                keep: true,
                end,
                ..Flow::default()
            },
            ..State::default()
        };
        Arc::new(Exchange {
            state: Mutex::new(state),
            client,
            server,
            client_stream,
        })
    }

    /// A call whose request is already under way (a replay of another attempt).
    pub fn with_request(
        client_stream: u32,
        client: Side,
        server: Side,
        head: Request<()>,
        req: Flow,
    ) -> Arc<Exchange> {
        Arc::new(Exchange {
            state: Mutex::new(State {
                req_head: Some(head),
                req,
                ..State::default()
            }),
            client,
            server,
            client_stream,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Tells the server side there is news (after `State::notify_server` said so).
    pub fn wake_server(self: &Arc<Self>) -> Result<(), Arc<Exchange>> {
        wake(&self.server, self)
    }

    pub fn wake_client(self: &Arc<Self>) {
        // A client connection's inbox closes only with the connection, whose
        // streams are then gone: nothing to tell.
        let _ = wake(&self.client, self);
    }

    /// Registers the waker of a task-driven client side.
    pub fn register_client(&self, waker: &Waker) {
        if let Side::Task(w) = &self.client {
            w.register(waker);
        }
    }

    pub fn register_server(&self, waker: &Waker) {
        if let Side::Task(w) = &self.server {
            w.register(waker);
        }
    }

    /// Credits the client side's connection with request bytes the server took.
    pub fn credit_client(&self, n: usize) {
        if let (Side::Conn(inbox), true) = (&self.client, n > 0) {
            inbox.release(n);
        }
    }

    /// Credits the server side's connection with response bytes the client took.
    pub fn credit_server(&self, n: usize) {
        if let (Side::Conn(inbox), true) = (&self.server, n > 0) {
            inbox.release(n);
        }
    }

    /// Whether the request's producer is a connection (it wants stream credit).
    pub fn client_is_conn(&self) -> bool {
        matches!(self.client, Side::Conn(_))
    }

    pub fn server_is_conn(&self) -> bool {
        matches!(self.server, Side::Conn(_))
    }

    /// The client side is gone: the server side stops; what either side had not
    /// taken is dropped, and credited back to its connection.
    pub fn cancel(self: &Arc<Self>, reason: Reason) {
        self.stop(reason, true);
    }

    /// The client side gave this attempt up for another, which took the request
    /// over (and with it the credit owed for untaken request data).
    pub fn abandon(self: &Arc<Self>) {
        self.stop(Reason::CANCEL, false);
    }

    fn stop(self: &Arc<Self>, reason: Reason, credit_request: bool) {
        let notify = {
            let mut s = self.lock();
            if s.client_end.is_some() {
                return;
            }
            s.client_end = Some(reason);
            let owed = s.res.discard();
            self.credit_server(owed);
            let owed = s.req.discard();
            if credit_request {
                self.credit_client(owed);
            }
            s.notify_server()
        };
        if notify {
            let _ = self.wake_server();
        }
    }

    /// The server side is gone: the client side hears why; untaken request data
    /// is dropped (and credited back to the client's connection).
    pub fn end_server(self: &Arc<Self>, why: ServerEnd) {
        let notify = {
            let mut s = self.lock();
            if s.server_end.is_some() {
                return;
            }
            s.server_end = Some(why);
            if !matches!(
                s.server_end,
                Some(ServerEnd::Unsent(_) | ServerEnd::Refused)
            ) {
                let owed = s.req.discard();
                self.credit_client(owed);
            }
            s.notify_client()
        };
        if notify {
            self.wake_client();
        }
    }
}

fn wake(side: &Side, x: &Arc<Exchange>) -> Result<(), Arc<Exchange>> {
    match side {
        Side::Conn(inbox) => inbox.push(x.clone()),
        Side::Task(w) => {
            w.wake();
            Ok(())
        }
    }
}

/// The calls with news for one connection task, and its flow credit.
#[derive(Debug, Default)]
pub struct Inbox {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    /// Connection window credit: DATA bytes of this connection other sides took.
    released: AtomicU64,
    /// The task wants waking once `released` reaches this (it is blocked on window).
    wake_at: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    items: Vec<Arc<Exchange>>,
    closed: bool,
}

impl Inbox {
    pub fn new() -> Arc<Inbox> {
        Arc::new(Inbox {
            wake_at: AtomicU64::new(u64::MAX),
            ..Inbox::default()
        })
    }

    /// Queues a call for the task; a closed inbox hands it back.
    pub fn push(&self, x: Arc<Exchange>) -> Result<(), Arc<Exchange>> {
        let first = {
            let mut q = self.queue.lock();
            if q.closed {
                return Err(x);
            }
            q.items.push(x);
            q.items.len() == 1
        };
        // Later pushes find the task already woken and not yet run.
        if first {
            self.waker.wake();
        }
        Ok(())
    }

    /// Swaps the queued calls into `out` (empty), keeping both allocations alive.
    pub fn take(&self, out: &mut Vec<Arc<Exchange>>) {
        let mut q = self.queue.lock();
        std::mem::swap(&mut q.items, out);
    }

    /// Refuses new calls; returns those queued.
    pub fn close(&self) -> Vec<Arc<Exchange>> {
        let mut q = self.queue.lock();
        q.closed = true;
        std::mem::take(&mut q.items)
    }

    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    pub fn wake(&self) {
        self.waker.wake();
    }

    /// `n` bytes of this connection's DATA were taken by the other side.
    pub fn release(&self, n: usize) {
        let total = self.released.fetch_add(n as u64, Ordering::AcqRel) + n as u64;
        if total >= self.wake_at.load(Ordering::Acquire) {
            self.waker.wake();
        }
    }

    /// The credit that came since `seen` (which moves up to now); the task is
    /// woken again once `wake_after` more has come.
    pub fn collect(&self, seen: &mut u64, wake_after: u64) -> usize {
        let total = self.released.load(Ordering::Acquire);
        let n = total - *seen;
        *seen = total;
        self.wake_at.store(total + wake_after, Ordering::Release);
        n as usize
    }
}

impl Mailbox for Inbox {
    type News = Arc<Exchange>;

    fn register(&self, waker: &Waker) {
        Inbox::register(self, waker);
    }

    fn take(&self, into: &mut Vec<Arc<Exchange>>) {
        Inbox::take(self, into);
    }

    fn collect(&self, seen: &mut u64, wake_after: u64) -> usize {
        Inbox::collect(self, seen, wake_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(chunks: &[&'static [u8]], keep: bool) -> Flow {
        let mut f = Flow {
            keep,
            ..Flow::default()
        };
        for c in chunks {
            f.push(Bytes::from_static(c));
        }
        f
    }

    #[test]
    fn take_cuts_chunks_to_the_window() {
        let mut f = flow(&[b"hello", b"world"], false);
        let (a, credit) = f.take(3).unwrap();
        assert_eq!((&a[..], credit), (&b"hel"[..], 3));
        let (b, _) = f.take(100).unwrap();
        assert_eq!(&b[..], b"lo");
        let (c, _) = f.take(100).unwrap();
        assert_eq!(&c[..], b"world");
        assert!(f.take(100).is_none());
        assert_eq!(f.released, 10);
        assert!(f.chunks.is_empty());
    }

    #[test]
    fn a_kept_flow_replays_whole_and_is_not_credited_twice() {
        let mut f = flow(&[b"abc", b"def"], true);
        // A take never spans chunks: "abc", then "d".
        assert_eq!(f.take(4).unwrap().0.len(), 3);
        assert_eq!(f.take(1).unwrap().0.len(), 1);
        f.end = true;
        let mut again = f.replay().unwrap();
        assert_eq!(again.queued, 6);
        let (a, credit) = again.take(100).unwrap();
        assert_eq!((&a[..], credit), (&b"abc"[..], 0));
        let (b, credit) = again.take(100).unwrap();
        // Two of these three bytes were never taken before: the client is owed them.
        assert_eq!((&b[..], credit), (&b"def"[..], 2));
        assert!(again.end);
    }

    #[test]
    fn take_into_joins_chunks_and_keeps_what_a_replay_needs() {
        let mut f = flow(&[b"ab", b"cde", b"f"], true);
        let mut out = Vec::new();
        assert_eq!(f.take_into(4, &mut out), 4);
        assert_eq!(out, b"abcd");
        assert_eq!(f.take_into(10, &mut out), 2);
        assert_eq!(out, b"abcdef");
        assert_eq!(f.queued, 0);
        assert_eq!(f.released, 6);
        let mut again = f.replay().unwrap();
        let mut out = Vec::new();
        // Already credited once: a replay owes nothing.
        assert_eq!(again.take_into(6, &mut out), 0);
        assert_eq!(out, b"abcdef");
        let mut f = flow(&[b"xyz"], false);
        let mut out = Vec::new();
        f.take_into(3, &mut out);
        assert!(f.chunks.is_empty(), "unkept chunks go once taken");
    }

    #[test]
    fn a_flow_past_the_replay_limit_is_forgotten() {
        let big = Bytes::from(vec![0u8; REPLAY_LIMIT + 1]);
        let mut f = Flow {
            keep: true,
            ..Flow::default()
        };
        f.push(big);
        f.take(usize::MAX).unwrap();
        assert!(f.replay().is_none());
        assert!(f.chunks.is_empty());
    }

    #[test]
    fn discard_owes_only_what_was_not_credited() {
        let mut f = flow(&[b"abcd"], false);
        f.take(1).unwrap();
        assert_eq!(f.discard(), 3);
        assert!(f.is_drained());
    }

    #[test]
    fn an_inbox_wakes_once_per_batch_and_refuses_when_closed() {
        let inbox = Inbox::new();
        let x = Exchange::new(1, Side::task(), Side::task(), Request::new(()), true);
        assert!(inbox.push(x.clone()).is_ok());
        assert!(inbox.push(x.clone()).is_ok());
        let mut out = Vec::new();
        inbox.take(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(inbox.close().len(), 0);
        assert!(inbox.push(x).is_err());
    }
}
