//! Counters a demo or test backend keeps about the calls it serves, and the
//! stream wrapper that maintains the streaming counters.
//!
//! Shared by `examples/common` and `tests/support/backend.rs`.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tonic::Status;

/// What a backend has seen so far. All counters only ever go up, except
/// `active_streams`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every RPC received, of any kind and either service.
    pub calls: AtomicU64,
    /// Server-streaming and bidi response streams currently alive.
    pub active_streams: AtomicI64,
    /// Server-streaming and bidi response streams that were dropped before
    /// the backend had sent their end (the client or the connection went
    /// away, or the backend was killed). Counted before `active_streams`
    /// goes down, so once `active_streams` is back to 0 this is final.
    pub cancelled_streams: AtomicU64,
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Extra milliseconds every unary call waits before answering (a slow server).
    pub unary_delay_ms: AtomicU64,
    /// Every n-th unary call answers UNAVAILABLE (0: none; a sick server).
    pub fail_every: AtomicU64,
    /// Unary calls answered so far (for `fail_every`).
    pub unary_calls: AtomicU64,
}

impl Stats {
    /// Counts one RPC.
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts one accepted connection.
    pub fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// RPCs received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Streaming responses alive now.
    pub fn active_streams(&self) -> i64 {
        self.active_streams.load(Ordering::SeqCst)
    }

    /// Streaming responses dropped before their end so far.
    pub fn cancelled_streams(&self) -> u64 {
        self.cancelled_streams.load(Ordering::SeqCst)
    }

    /// Makes every unary call wait `ms` more (0: back to normal).
    pub fn set_unary_delay(&self, ms: u64) {
        self.unary_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Makes every n-th unary call fail with UNAVAILABLE (0: none).
    pub fn set_fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::SeqCst);
    }

    /// Whether this unary call is one `fail_every` makes fail.
    pub fn next_unary_fails(&self) -> bool {
        let n = self.unary_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.fail_every.load(Ordering::SeqCst);
        every != 0 && n % every == 0
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A response stream that keeps [`Stats::active_streams`] and
/// [`Stats::cancelled_streams`] up to date.
///
/// The inner stream's end is either `None` or an `Err` item (tonic stops
/// polling after an error, which it turns into the trailers). Dropping the
/// stream before that end counts as a cancellation.
pub struct Tracked<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>,
    stats: Arc<Stats>,
    finished: bool,
}

impl<T> Tracked<T> {
    /// Wraps `inner` and counts it as active until it is dropped.
    pub fn new(
        stats: Arc<Stats>,
        inner: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> Self {
        stats.active_streams.fetch_add(1, Ordering::SeqCst);
        Tracked {
            inner: Box::pin(inner),
            stats,
            finished: false,
        }
    }
}

impl<T> Stream for Tracked<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None | Some(Err(_))) = &item {
            self.finished = true;
        }
        item
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.cancelled_streams.fetch_add(1, Ordering::SeqCst);
        }
        self.stats.active_streams.fetch_sub(1, Ordering::SeqCst);
    }
}
