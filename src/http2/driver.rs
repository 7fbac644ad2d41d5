//! One poll loop for every connection task, client-facing or server-facing.
//!
//! A connection task does the same things in either role: it reads what the peer
//! sent and hands each frame to its streams, takes the news other tasks left in its
//! mailbox (a call's answer, a request's next bytes), gives the peer back the
//! connection window the other sides consumed, lets the streams with data take
//! turns at the window, and writes the round's frames in one write. [`Driver`] is
//! that loop, once. What differs between the roles, what a frame or a piece of news
//! means, when the connection is over, lives in a [`Handler`].
//!
//! Writes are batched: a task with output puts its write off once ([`Deferral`]),
//! until the tasks that are ready to run have had their turn, so the answers they
//! are about to give it leave in the same write.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite};

use super::stream::Ready;
use super::wire::{ConnError, Frame, Wire};

/// Output a connection holds before it stops reading: a peer that reads slowly
/// slows down what it may send, instead of growing gantry's buffers.
pub const WRITE_HIGH: usize = 256 << 10;

/// Where other tasks leave news for a connection task.
pub trait Mailbox {
    type News;

    /// Wakes the task when news or credit arrives.
    fn register(&self, waker: &Waker);

    /// Moves the news that arrived into `into`.
    fn take(&self, into: &mut Vec<Self::News>);

    /// Connection window the other sides gave back since `seen` (which it moves
    /// on); the task is woken again once at least `wake_after` more is due.
    fn collect(&self, seen: &mut u64, wake_after: u64) -> usize;
}

/// The parts of a connection the driver works on.
pub struct Parts<'a, T> {
    pub io: &'a mut T,
    pub wire: &'a mut Wire,
    /// Streams with data to send, taking turns a frame each.
    pub ready: &'a mut Ready,
}

/// One role's half of a connection task: what its events mean.
pub trait Handler {
    type Io: AsyncRead + AsyncWrite + Unpin;
    type Mail: Mailbox;
    /// What the task resolves to when the connection is over.
    type Output;

    fn parts(&mut self) -> Parts<'_, Self::Io>;
    fn mailbox(&self) -> &Self::Mail;

    /// Whether to read from the peer this round (the handler may decide here
    /// that the connection ends).
    fn reading(&mut self) -> bool;
    /// Bytes fed to the wire before the first read are to be handled first
    /// (asked until it says no).
    fn take_buffered(&mut self) -> bool {
        false
    }
    /// Bytes came from the peer.
    fn on_read(&mut self);
    /// The peer closed its side, or the read failed.
    fn on_read_end(&mut self, error: Option<std::io::Error>);
    fn on_frame(&mut self, f: Frame) -> Result<(), ConnError>;
    /// Every whole frame read so far was handled.
    fn on_frames_done(&mut self);
    /// The peer broke the protocol: the connection ends.
    fn on_conn_error(&mut self, e: ConnError);
    /// News from another task.
    fn on_news(&mut self, news: <Self::Mail as Mailbox>::News);
    /// After the round's reads and news: timers and signals. Whether anything
    /// happened.
    fn tick(&mut self, cx: &mut Context<'_>) -> bool;
    /// A stream's turn at the window; false if the stream is gone.
    fn turn(&mut self, id: u32) -> bool;
    /// Whether the connection is ending (no more reads, news or turns).
    fn ending(&self) -> bool;
    fn on_write_error(&mut self, e: std::io::Error);
    /// After the round's write: `Some` once the connection is over.
    fn over(&mut self, cx: &mut Context<'_>, progress: bool) -> Option<Self::Output>;
    /// No streams and nothing waiting: the buffers can go back to the allocator.
    fn idle(&self) -> bool;
}

/// A connection task: the loop, around its role's [`Handler`].
pub struct Driver<H: Handler> {
    handler: H,
    news: Vec<<H::Mail as Mailbox>::News>,
    /// Connection credit given back so far (see [`Mailbox::collect`]).
    credit_seen: u64,
    /// The write was put off once this round, for other tasks to add to it.
    deferred: bool,
    deferral: Deferral,
}

impl<H: Handler> Driver<H> {
    pub fn new(handler: H) -> Driver<H> {
        Driver {
            handler,
            news: Vec::new(),
            credit_seen: 0,
            deferred: false,
            deferral: Deferral::here(),
        }
    }

    /// Reads what the peer sent, if the handler reads and the output is not
    /// backed up. Whether anything happened.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let h = &mut self.handler;
        if !h.reading() || h.parts().wire.pending() >= WRITE_HIGH {
            return false;
        }
        if h.take_buffered() {
            h.on_read();
            frames(h);
            return true;
        }
        let p = h.parts();
        match p.wire.poll_read(p.io, cx) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) => {
                h.on_read_end(None);
                true
            }
            Poll::Ready(Err(e)) => {
                h.on_read_end(Some(e));
                true
            }
            Poll::Ready(Ok(_)) => {
                h.on_read();
                frames(h);
                true
            }
        }
    }

    /// News from other tasks, and the connection window they gave back.
    fn news(&mut self) -> bool {
        let h = &mut self.handler;
        h.mailbox().take(&mut self.news);
        let any = !self.news.is_empty();
        for news in self.news.drain(..) {
            h.on_news(news);
        }
        let half = u64::from(h.parts().wire.limits.connection_window / 2);
        let n = h.mailbox().collect(&mut self.credit_seen, half);
        if n > 0 {
            h.parts().wire.release(n);
        }
        any
    }
}

/// Hands every whole frame in the read buffer to the handler.
fn frames<H: Handler>(h: &mut H) {
    loop {
        match h.parts().wire.next_frame() {
            Ok(Some(f)) => {
                if let Err(e) = h.on_frame(f) {
                    h.on_conn_error(e);
                    return;
                }
            }
            Ok(None) => {
                h.on_frames_done();
                return;
            }
            Err(e) => {
                h.on_conn_error(e);
                return;
            }
        }
    }
}

/// Streams with data take turns, a frame each, while the connection window and
/// the write buffer have room.
fn pump_ready<H: Handler>(h: &mut H) {
    let mut turns = h.parts().ready.len();
    while turns > 0 {
        let p = h.parts();
        if p.wire.sendable(1, WRITE_HIGH) == 0 {
            break;
        }
        let Some(id) = p.ready.pop() else {
            break;
        };
        turns -= 1;
        if h.turn(id) && h.parts().ready.len() > turns {
            // Back in the queue: it gets another turn after the others.
            turns += 1;
        }
    }
}

impl<H> Future for Driver<H>
where
    H: Handler + Unpin,
    <H::Mail as Mailbox>::News: Unpin,
{
    type Output = H::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<H::Output> {
        let this = self.get_mut();
        this.handler.mailbox().register(cx.waker());
        loop {
            let mut progress = this.read(cx);
            if !this.handler.ending() {
                progress |= this.news();
                progress |= this.handler.tick(cx);
                if !this.handler.parts().ready.is_empty() {
                    pump_ready(&mut this.handler);
                }
            }
            let h = &mut this.handler;
            if h.parts().wire.pending() > 0 && !this.deferred && !h.ending() {
                // Other calls' frames may be a task away: write them all at once.
                this.deferred = true;
                this.deferral.defer(cx);
                return Poll::Pending;
            }
            this.deferred = false;
            let p = h.parts();
            match p.wire.poll_write(p.io, cx) {
                Ok(wrote) => {
                    if wrote && p.wire.pending() == 0 && !p.ready.is_empty() {
                        pump_ready(h);
                        progress = true;
                    }
                }
                Err(e) => h.on_write_error(e),
            }
            if let Some(out) = h.over(cx, progress) {
                return Poll::Ready(out);
            }
            if !progress {
                if h.idle() {
                    h.parts().wire.release_buffers();
                }
                return Poll::Pending;
            }
        }
    }
}

/// How a task gets itself polled again after the tasks that are ready now.
///
/// Under load a connection hears of many calls' frames from several other tasks.
/// Writing as soon as the first arrives costs a `sendto` for that one alone, and
/// each pays the whole send path in the kernel. With one deferral, the frames of
/// a scheduler round share one write. When nothing else is runnable the task runs
/// again at once, so an idle connection's answer waits for one trip through the
/// scheduler, not for a timer.
#[derive(Debug, Clone, Copy)]
pub struct Deferral {
    /// tokio's current-thread scheduler queues a task that wakes itself behind the
    /// others; the multi-thread one would run it next (its LIFO slot), so there it
    /// asks the scheduler to defer the wake-up instead (which also polls the I/O
    /// driver first, a syscall the current-thread way saves).
    current_thread: bool,
}

impl Deferral {
    /// For the runtime the caller runs on.
    pub fn here() -> Deferral {
        let current_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        Deferral { current_thread }
    }

    /// Asks to be polled again once the tasks that are ready now have run.
    pub fn defer(self, cx: &mut Context<'_>) {
        if self.current_thread {
            cx.waker().wake_by_ref();
            return;
        }
        let mut once = std::pin::pin!(tokio::task::yield_now());
        // The first poll registers the wake-up and returns Pending; the
        // registration outlives the future.
        let _ = once.as_mut().poll(cx);
    }
}

#[cfg(test)]
mod tests;
