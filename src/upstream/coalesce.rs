//! Fewer, larger writes: a connection task puts its write off once, until the tasks
//! that are ready to run have had their turn, so the output they are about to give
//! it goes out in the same write.
//!
//! Under load a connection hears of many calls' answers from several other tasks
//! (the server connections they came from). Writing as soon as the first arrives
//! costs a `sendto` for that answer alone, and each pays the whole loopback or
//! network send path in the kernel. With one deferral, the answers of a scheduler
//! round share one write. When nothing else is runnable the task runs again at
//! once, so an idle connection's answer waits for one trip through the scheduler,
//! not for a timer.

use std::task::Context;

/// How a task gets itself polled again after the tasks that are ready now.
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
        use std::future::Future;
        let mut once = std::pin::pin!(tokio::task::yield_now());
        // The first poll registers the wake-up and returns Pending; the
        // registration outlives the future.
        let _ = once.as_mut().poll(cx);
    }
}

#[cfg(test)]
mod tests {
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
}
