use super::*;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

/// A task that defers runs again only after the tasks already runnable.
async fn deferred_task_runs_after_the_others() {
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let deferral = Deferral::here();
    let mut deferred = false;
    let log = order.clone();
    let a = tokio::spawn(poll_fn(move |cx| {
        if !deferred {
            deferred = true;
            log.lock().push("a defers");
            deferral.defer(cx);
            return Poll::Pending;
        }
        log.lock().push("a again");
        Poll::Ready(())
    }));
    let log = order.clone();
    let b = tokio::spawn(async move { log.lock().push("b") });
    let _ = a.await;
    let _ = b.await;
    assert_eq!(*order.lock(), vec!["a defers", "b", "a again"]);
}

#[tokio::test(flavor = "current_thread")]
async fn on_the_current_thread_scheduler() {
    assert!(Deferral::here().current_thread);
    deferred_task_runs_after_the_others().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn on_the_multi_thread_scheduler() {
    assert!(!Deferral::here().current_thread);
    deferred_task_runs_after_the_others().await;
}

/// A connection task whose news are PINGs to send, over a socket that counts
/// its writes.
struct Pinger {
    io: Counting,
    wire: Wire,
    ready: Ready,
    mail: Arc<Pings>,
}

#[derive(Default)]
struct Pings {
    queue: parking_lot::Mutex<Vec<u8>>,
    waker: atomic_waker::AtomicWaker,
}

impl Pings {
    fn push(&self, n: u8) {
        self.queue.lock().push(n);
        self.waker.wake();
    }
}

impl Mailbox for Pings {
    type News = u8;

    fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    fn take(&self, into: &mut Vec<u8>) {
        std::mem::swap(&mut *self.queue.lock(), into);
    }

    fn collect(&self, _seen: &mut u64, _wake_after: u64) -> usize {
        0
    }
}

/// Never has anything to read; keeps every write whole.
#[derive(Default)]
struct Counting {
    writes: Arc<parking_lot::Mutex<Vec<Vec<u8>>>>,
}

impl AsyncRead for Counting {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.lock().push(buf.to_vec());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Handler for Pinger {
    type Io = Counting;
    type Mail = Pings;
    type Output = ();

    fn parts(&mut self) -> Parts<'_, Counting> {
        Parts {
            io: &mut self.io,
            wire: &mut self.wire,
            ready: &mut self.ready,
        }
    }

    fn mailbox(&self) -> &Pings {
        &self.mail
    }

    fn reading(&mut self) -> bool {
        false
    }

    fn on_read(&mut self) {}

    fn on_read_end(&mut self, _error: Option<std::io::Error>) {}

    fn on_frame(&mut self, _f: Frame) -> Result<(), ConnError> {
        Ok(())
    }

    fn on_frames_done(&mut self) {}

    fn on_conn_error(&mut self, _e: ConnError) {}

    fn on_news(&mut self, n: u8) {
        self.wire.ping([n; 8]);
    }

    fn tick(&mut self, _cx: &mut Context<'_>) -> bool {
        false
    }

    fn turn(&mut self, _id: u32) -> bool {
        false
    }

    fn ending(&self) -> bool {
        false
    }

    fn on_write_error(&mut self, _e: std::io::Error) {}

    fn over(&mut self, _cx: &mut Context<'_>, _progress: bool) -> Option<()> {
        None
    }

    fn idle(&self) -> bool {
        true
    }
}

/// News left by a task that runs between the news that woke the connection and
/// its write goes out in the same write: one syscall for the round, not one each.
#[tokio::test(flavor = "current_thread")]
async fn news_from_tasks_ready_in_the_same_round_share_one_write() {
    let io = Counting::default();
    let writes = io.writes.clone();
    let mail = Arc::new(Pings::default());
    let driver = tokio::spawn(Driver::new(Pinger {
        io,
        wire: Wire::client(crate::http2::wire::Limits::default()),
        ready: Ready::default(),
        mail: mail.clone(),
    }));
    // The preface and SETTINGS go out first, in a write of their own.
    for _ in 0..100 {
        if !writes.lock().is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(writes.lock().len(), 1, "the preface was not written");

    mail.push(1);
    let other = mail.clone();
    let b = tokio::spawn(async move { other.push(2) });
    b.await.expect("task b");
    for _ in 0..100 {
        if writes.lock().len() > 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let writes = writes.lock().clone();
    assert_eq!(
        writes.len(),
        2,
        "the two PINGs took {} writes",
        writes.len() - 1
    );
    // Two PING frames of 9 + 8 bytes, one from each task.
    assert_eq!(writes[1].len(), 34);
    assert_eq!(&writes[1][9..17], &[1; 8]);
    assert_eq!(&writes[1][26..34], &[2; 8]);
    driver.abort();
}
