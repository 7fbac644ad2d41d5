//! Call counters for one scope (an entrypoint, a router, a service or a server).
//!
//! Everything is a relaxed atomic: the data plane adds, readers (API, `/metrics`, the
//! window sampler) load. A call is counted once, when it ends, in the slot of its
//! outcome (gRPC status, HTTP class, reset or cancellation) and in a latency histogram.
//! "Requests" is the sum of the slots, so a reader never sees more errors than calls.
//!
//! The histogram is log-linear: four sub-buckets per power of two of microseconds
//! (worst-case quantile error 12.5%, as HdrHistogram-style bucketing gives), exact
//! for the powers of two that `/metrics` exports as Prometheus bucket bounds.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::window::{Rates, Window};

/// gRPC status names, by code (grpc/doc/statuscodes.md).
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A gRPC call with this status code (0–16; anything else counts as UNKNOWN).
    Grpc(u8),
    /// A plain HTTP call with this response status.
    Http(u16),
    /// The response stream broke after it started (reset, connection lost).
    Reset,
    /// The client went away before the response ended (gRPC calls count CANCELLED).
    Cancelled,
}

/// Outcome slots: 17 gRPC codes, HTTP 1xx–5xx, reset, HTTP client cancelled.
pub const SLOTS: usize = 17 + 5 + 2;
const SLOT_HTTP: usize = 17;
const SLOT_RESET: usize = 22;
const SLOT_CANCELLED: usize = 23;

/// The label of an outcome slot, as the API and `/metrics` show it.
pub fn slot_name(slot: usize) -> &'static str {
    const HTTP: [&str; 5] = ["HTTP 1xx", "HTTP 2xx", "HTTP 3xx", "HTTP 4xx", "HTTP 5xx"];
    match slot {
        s if s < SLOT_HTTP => GRPC_CODES[s],
        s if s < SLOT_RESET => HTTP[s - SLOT_HTTP],
        SLOT_RESET => "RESET",
        _ => "CANCELLED",
    }
}

impl Outcome {
    fn slot(self) -> usize {
        match self {
            Outcome::Grpc(code) if (code as usize) < SLOT_HTTP => code as usize,
            Outcome::Grpc(_) => 2,
            Outcome::Http(status) => SLOT_HTTP + (status / 100).clamp(1, 5) as usize - 1,
            Outcome::Reset => SLOT_RESET,
            Outcome::Cancelled => SLOT_CANCELLED,
        }
    }

    /// The same outcome seen by a gRPC client: a cancelled call is CANCELLED.
    pub fn for_grpc(self) -> Outcome {
        match self {
            Outcome::Cancelled => Outcome::Grpc(1),
            other => other,
        }
    }
}

/// Whether a slot counts as a server-side error: gRPC UNKNOWN, DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS; HTTP 5xx;
/// broken streams. Client-side codes (INVALID_ARGUMENT, NOT_FOUND, …) and
/// cancellations are not the server's fault and are not errors here.
pub fn is_error_slot(slot: usize) -> bool {
    matches!(slot, 2 | 4 | 8 | 12 | 13 | 14 | 15) || slot == SLOT_HTTP + 4 || slot == SLOT_RESET
}

/// Histogram buckets: values below 4 µs exactly, then 4 per power of two up to
/// 2^27 µs (~134 s); longer calls land in the last bucket.
pub const BUCKETS: usize = 4 * 27;

/// The bucket of a duration in microseconds.
pub fn bucket_of(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    let msb = 63 - micros.leading_zeros() as usize; // >= 2
    let index = 4 * (msb - 1) + ((micros >> (msb - 2)) & 3) as usize;
    index.min(BUCKETS - 1)
}

/// The exclusive upper bound of a bucket, in microseconds.
pub fn bucket_upper(index: usize) -> u64 {
    if index < 4 {
        return index as u64 + 1;
    }
    let msb = index / 4 + 1;
    let sub = (index % 4) as u64;
    ((4 + sub) << (msb - 2)) + (1 << (msb - 2))
}

/// The inclusive lower bound of a bucket, in microseconds.
pub fn bucket_lower(index: usize) -> u64 {
    if index < 4 {
        return index as u64;
    }
    let msb = index / 4 + 1;
    (4 + (index % 4) as u64) << (msb - 2)
}

/// Counters of one scope.
#[derive(Debug)]
pub struct CallStats {
    in_flight: AtomicI64,
    outcomes: [AtomicU64; SLOTS],
    buckets: [AtomicU64; BUCKETS],
    /// Sum of call durations, microseconds.
    sum_micros: AtomicU64,
    window: Window,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            in_flight: AtomicI64::new(0),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            window: Window::default(),
        }
    }
}

impl CallStats {
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call that started (see [`started`](Self::started)) as finished.
    pub fn finished(&self, outcome: Outcome, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.record(outcome, took);
    }

    /// Counts a finished call that was never counted in flight (router-made answers).
    pub fn record(&self, outcome: Outcome, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.outcomes[outcome.slot()].fetch_add(1, Ordering::Relaxed);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed).max(0) as u64
    }

    /// Calls finished so far.
    pub fn requests(&self) -> u64 {
        self.outcomes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Calls finished with a server-side error so far (see [`is_error_slot`]).
    pub fn errors(&self) -> u64 {
        (0..SLOTS)
            .filter(|&s| is_error_slot(s))
            .map(|s| self.outcomes[s].load(Ordering::Relaxed))
            .sum()
    }

    /// The count of one outcome slot.
    pub fn outcome(&self, slot: usize) -> u64 {
        self.outcomes
            .get(slot)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts per outcome slot.
    pub fn outcomes(&self) -> [u64; SLOTS] {
        std::array::from_fn(|i| self.outcomes[i].load(Ordering::Relaxed))
    }

    /// Histogram counts per bucket.
    pub fn buckets(&self) -> Box<[u64]> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// Sum of call durations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
    }

    /// Takes this second's sample for the recent-rate windows (the sampler's job).
    pub fn sample(&self, now: Instant) {
        self.window.sample(self, now);
    }

    /// Request rate, error rate and latency quantiles of the recent past.
    pub fn rates(&self, now: Instant) -> Rates {
        self.window.rates(self, now)
    }
}

/// The value at quantile `q` (0..=1) of a bucket histogram, interpolated linearly
/// inside its bucket; `None` when the histogram is empty.
pub fn quantile(buckets: &[u64], q: f64) -> Option<Duration> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the wanted call, 1-based.
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if seen + n >= rank {
            let lo = bucket_lower(i) as f64;
            let hi = bucket_upper(i) as f64;
            let within = (rank - seen) as f64 / n as f64;
            return Some(Duration::from_nanos(
                ((lo + (hi - lo) * within) * 1e3) as u64,
            ));
        }
        seen += n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(bucket_upper(i), bucket_lower(i + 1), "bucket {i}");
        }
        for v in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            9,
            100,
            1_000,
            65_535,
            1 << 20,
            100_000_000,
        ] {
            let b = bucket_of(v);
            assert!(bucket_lower(b) <= v && v < bucket_upper(b), "{v} in {b}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn powers_of_two_are_bucket_bounds() {
        // `/metrics` exports these as `le` bounds; they must not split a bucket.
        for p in 2..27 {
            let v = 1u64 << p;
            assert_eq!(bucket_lower(bucket_of(v)), v);
        }
    }

    #[test]
    fn outcomes_and_errors() {
        let s = CallStats::default();
        for _ in 0..90 {
            s.started();
            s.finished(Outcome::Grpc(0), Duration::from_micros(500));
        }
        for _ in 0..10 {
            s.started();
            s.finished(Outcome::Grpc(14), Duration::from_millis(2));
        }
        s.record(Outcome::Grpc(3), Duration::ZERO); // client error: not counted
        s.record(Outcome::Http(503), Duration::ZERO);
        s.record(Outcome::Http(404), Duration::ZERO);
        s.record(Outcome::Cancelled.for_grpc(), Duration::ZERO);
        s.record(Outcome::Reset, Duration::ZERO);
        assert_eq!(s.requests(), 105);
        assert_eq!(s.errors(), 10 + 1 + 1);
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.outcome(1), 1);
        assert_eq!(slot_name(Outcome::Http(503).slot()), "HTTP 5xx");
        assert_eq!(slot_name(Outcome::Reset.slot()), "RESET");
        assert_eq!(slot_name(Outcome::Cancelled.slot()), "CANCELLED");
        assert_eq!(Outcome::Grpc(200).slot(), 2);
    }

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let mut b = vec![0u64; BUCKETS];
        b[bucket_of(1_000)] = 99;
        b[bucket_of(50_000)] = 1;
        let p50 = quantile(&b, 0.5).unwrap().as_micros() as u64;
        let p99 = quantile(&b, 0.99).unwrap().as_micros() as u64;
        let p100 = quantile(&b, 1.0).unwrap().as_micros() as u64;
        assert!((896..=1_152).contains(&p50), "{p50}");
        assert!((896..=1_152).contains(&p99), "{p99}");
        assert!((40_000..=57_344).contains(&p100), "{p100}");
        assert_eq!(quantile(&[0; 4], 0.5), None);
    }
}
