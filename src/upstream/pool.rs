//! The connection calls from HTTP/2 clients take to one h2c server.
//!
//! One connection at a time, multiplexed by every call (gRPC servers are built for
//! that). Its handle is read lock-free; the first call that finds none (or finds it
//! closed or going away) makes a new one and starts its task, which dials while
//! calls already queue in its inbox. Two calls racing to make one agree through a
//! compare-and-swap, so a burst to a fresh server dials once.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::conn::{self, Handle};
use super::UpstreamError;
use crate::http2::wire::Limits;

pub struct Pool {
    addr: SocketAddr,
    /// How an https server is dialled; None for h2c.
    tls: Option<crate::tls::TlsDial>,
    limits: Limits,
    current: ArcSwapOption<Handle>,
}

impl Pool {
    pub fn new(addr: SocketAddr, tls: Option<crate::tls::TlsDial>) -> Pool {
        Pool {
            addr,
            tls,
            limits: Limits::upstream(),
            current: ArcSwapOption::empty(),
        }
    }

    /// The connection to hand a call to, dialling one if there is none.
    pub fn handle(&self) -> Arc<Handle> {
        loop {
            let current = self.current.load();
            if let Some(h) = current.as_ref().filter(|h| h.accepting()) {
                return h.clone();
            }
            let fresh = Handle::new();
            let before = self
                .current
                .compare_and_swap(&*current, Some(fresh.clone()));
            let won = match (before.as_ref(), current.as_ref()) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if won {
                tokio::spawn(conn::run(
                    self.addr,
                    fresh.clone(),
                    self.limits,
                    self.tls.clone(),
                ));
                return fresh;
            }
            // Another call made one first: use it (if it still takes calls).
        }
    }

    /// Opens (or keeps) the connection, for a probe: Ok once it is up.
    pub async fn connect(&self) -> Result<(), UpstreamError> {
        let h = self.handle();
        let dialled = h.dialled.notified();
        tokio::pin!(dialled);
        dialled.as_mut().enable();
        if !h.is_open() && !h.is_closed() {
            dialled.await;
        }
        if h.is_open() {
            return Ok(());
        }
        Err(match h.failure.load_full() {
            Some(e) => UpstreamError::Shared(e),
            None => UpstreamError::Closed {
                addr: self.addr,
                why: "the connection closed as it opened".into(),
            },
        })
    }

    /// Closes the connection now; its streams fail. The next call dials again.
    pub fn cut(&self) {
        if let Some(h) = self.current.swap(None) {
            h.cut();
        }
    }

    pub fn is_connected(&self) -> bool {
        self.current.load().as_ref().is_some_and(|h| h.is_open())
    }
}
