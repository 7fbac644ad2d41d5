//! Fewer, larger writes: a socket wrapper that holds a connection's output until the
//! tasks that are ready to run have had their turn, then writes it in one call.
//!
//! An HTTP/2 connection task flushes every time it is polled. Under load it is polled
//! once per call or so (each stream's task wakes it), and every flush was a `writev`:
//! about 1.1 per proxied unary call, each paying the whole loopback or network send
//! path in the kernel. Here the first flush of a batch only wakes the task again and
//! returns `Pending`; the wake-up queues it behind the tasks already runnable (the
//! other streams of this round), which add their frames; the next flush writes all of
//! them. When nothing else is runnable the task runs again at once, so an idle
//! connection's answer waits for one trip through the scheduler, not for a timer.
//!
//! Output is copied into one buffer of up to [`LIMIT`] bytes; a write that would pass
//! it sends the buffer first, so a blocked peer still pushes back. Reads pass through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held at most before they are written whatever the flush state.
pub const LIMIT: usize = 64 * 1024;

/// A byte stream whose flushes are coalesced (see the module documentation).
#[derive(Debug)]
pub struct Coalesce<T> {
    io: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
    /// A flush was deferred once: the next one writes.
    deferred: bool,
}

impl<T> Coalesce<T> {
    pub fn new(io: T) -> Coalesce<T> {
        Coalesce {
            io,
            buf: Vec::new(),
            written: 0,
            deferred: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        // A burst may have grown the buffer far beyond what an idle connection needs.
        if self.buf.capacity() > LIMIT {
            self.buf.shrink_to(LIMIT);
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes, writing out what is held if it must.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.pending() > 0 && self.pending() + len > LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx, data.len()))?;
        if this.pending() == 0 && data.len() >= LIMIT {
            // Big enough on its own: no copy.
            return Pin::new(&mut this.io).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(this.poll_room(cx, len))?;
        if this.pending() == 0 && len >= LIMIT {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending() > 0 {
            if !this.deferred {
                // Let the other runnable tasks add their output first.
                this.deferred = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_drain(cx))?;
        }
        this.deferred = false;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_second_flush_and_go_out_together() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut out = Coalesce::new(near);
        out.write_all(b"one ").await.unwrap();
        // The first flush defers (and wakes its task), writing nothing.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut out).poll_flush(cx))).await;
        assert!(first.is_pending());
        out.write_all(b"two").await.unwrap();
        let mut got = [0u8; 16];
        let nothing = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut got);
            Poll::Ready(
                Pin::new(&mut far)
                    .poll_read(cx, &mut rb)
                    .map(|_| rb.filled().len()),
            )
        })
        .await;
        assert!(
            nothing.is_pending(),
            "nothing is written before the flush completes"
        );
        out.flush().await.unwrap();
        let n = far.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"one two");
        // After a completed flush, the next batch defers again.
        out.write_all(b"x").await.unwrap();
        let again = poll_fn(|cx| Poll::Ready(Pin::new(&mut out).poll_flush(cx))).await;
        assert!(again.is_pending());
    }

    #[tokio::test]
    async fn a_full_buffer_is_written_without_a_flush_and_a_slow_peer_pushes_back() {
        // The peer takes 4 KiB at most until it reads.
        let (near, mut far) = tokio::io::duplex(4096);
        let mut out = Coalesce::new(near);
        let chunk = vec![7u8; 1000];
        for _ in 0..LIMIT / 1000 {
            out.write_all(&chunk).await.unwrap();
        }
        // One more chunk does not fit: the held bytes must go, and the peer is full.
        let blocked = poll_fn(|cx| Poll::Ready(Pin::new(&mut out).poll_write(cx, &chunk))).await;
        assert!(
            blocked.is_pending(),
            "a peer that reads nothing pushes back"
        );
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            far.read_to_end(&mut all).await.unwrap();
            all
        });
        out.write_all(&chunk).await.unwrap();
        out.shutdown().await.unwrap();
        drop(out);
        let all = reader.await.unwrap();
        assert_eq!(all.len(), (LIMIT / 1000 + 1) * 1000);
        assert!(all.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn vectored_writes_keep_their_order() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut out = Coalesce::new(near);
        let parts = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
        let n = poll_fn(|cx| Pin::new(&mut out).poll_write_vectored(cx, &parts))
            .await
            .unwrap();
        assert_eq!(n, 4);
        out.write_all(b"ef").await.unwrap();
        out.flush().await.unwrap();
        let mut got = [0u8; 6];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");
    }
}
