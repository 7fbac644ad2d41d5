//! A request kept to be sent again: its head, and its body frames as they stream
//! (up to [`REPLAY_LIMIT`]), for a call its router retries or one a server never saw.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, Version};

use super::body::RequestBody;

/// The most request body kept for a retry.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// What is kept of a request to send it again.
#[derive(Debug)]
pub struct Kept {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    pub body: Arc<Replay>,
}

impl Kept {
    /// Keeps the head of `req` and starts keeping its body as it streams.
    pub fn keep(req: &mut Request<RequestBody>) -> Kept {
        let body = Arc::new(Replay::default());
        req.body_mut().keep_into(body.clone());
        Kept {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body,
        }
    }

    /// The request again, if its whole body was kept (it stays kept, for the next
    /// attempt).
    pub fn again(&self) -> Option<Request<RequestBody>> {
        let (data, trailers) = self.body.taken()?;
        let mut req = Request::new(RequestBody::replay(data, trailers));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        Some(req)
    }
}

/// Request body frames kept as they stream (one writer: the body being sent).
#[derive(Debug, Default)]
pub struct Replay {
    state: tokio::sync::Mutex<Frames>,
    /// Too big, or the writer and a reader met: never replayed.
    spoiled: AtomicBool,
}

#[derive(Debug, Default)]
struct Frames {
    data: Vec<Bytes>,
    size: usize,
    trailers: Option<HeaderMap>,
    complete: bool,
}

impl Replay {
    pub(crate) fn data(&self, chunk: &Bytes) {
        self.with(|f| {
            f.size += chunk.len();
            if f.size > REPLAY_LIMIT {
                return false;
            }
            f.data.push(chunk.clone());
            true
        });
    }

    pub(crate) fn trailers(&self, trailers: &HeaderMap) {
        self.with(|f| {
            f.trailers = Some(trailers.clone());
            true
        });
    }

    pub(crate) fn complete(&self) {
        self.with(|f| {
            f.complete = true;
            true
        });
    }

    fn with(&self, f: impl FnOnce(&mut Frames) -> bool) {
        if self.spoiled.load(Ordering::Relaxed) {
            return;
        }
        // Never contended: one body writes, and a retry reads only after the attempt.
        let ok = match self.state.try_lock() {
            Ok(mut frames) => f(&mut frames),
            Err(_) => false,
        };
        if !ok {
            self.spoiled.store(true, Ordering::Relaxed);
        }
    }

    /// The whole body, if it was read to its end and kept.
    fn taken(&self) -> Option<(Vec<Bytes>, Option<HeaderMap>)> {
        if self.spoiled.load(Ordering::Relaxed) {
            return None;
        }
        let frames = self.state.try_lock().ok()?;
        frames
            .complete
            .then(|| (frames.data.clone(), frames.trailers.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_replayed_only_whole_and_small_enough() {
        let r = Replay::default();
        r.data(&Bytes::from_static(b"abc"));
        assert!(r.taken().is_none(), "not complete yet");
        r.complete();
        assert_eq!(r.taken().unwrap().0, vec![Bytes::from_static(b"abc")]);

        let big = Replay::default();
        big.data(&Bytes::from(vec![0u8; REPLAY_LIMIT + 1]));
        big.complete();
        assert!(big.taken().is_none());
    }
}
