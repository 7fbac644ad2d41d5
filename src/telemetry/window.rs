//! Recent rates: calls per second over the last 10 s, error rate and latency
//! quantiles over the last 60 s.
//!
//! The data plane only bumps cumulative counters. Once a second a sampler (one task
//! for the whole process) copies each scope's totals into that scope's ring of
//! samples; a reader subtracts the sample of 10 or 60 seconds ago from the live
//! totals. Histogram samples are kept every 10 s, and shared between samples while
//! they do not change, so an idle scope costs a few hundred bytes. A scope younger
//! than the window uses its creation (all zeros) as the baseline, so rates are exact
//! from the first call.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::stats::{quantile, CallStats};

/// Rates over the request-rate window.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Error rate and latency window.
pub const ERROR_WINDOW: Duration = Duration::from_secs(60);
const HIST_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    requests: u64,
    errors: u64,
    /// Cumulative histogram, on every tenth sample or so.
    hist: Option<Arc<[u64]>>,
}

/// A scope's recent samples; written by the sampler, read by the API.
#[derive(Debug)]
pub struct Window {
    created: Instant,
    samples: RwLock<VecDeque<Sample>>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            created: Instant::now(),
            samples: RwLock::new(VecDeque::new()),
        }
    }
}

/// What a scope has done lately.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    /// Calls finished per second over [`RATE_WINDOW`].
    pub request_rate: f64,
    /// Errors per call over [`ERROR_WINDOW`] (0 when there were no calls).
    pub error_rate: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl Window {
    /// Records the scope's totals now (the sampler calls this about once a second).
    pub fn sample(&self, stats: &CallStats, now: Instant) {
        let mut samples = self.samples.write().unwrap_or_else(|e| e.into_inner());
        // Keep one sample older than the longest window as its baseline.
        while samples.len() > 1
            && samples
                .get(1)
                .is_some_and(|s| now.saturating_duration_since(s.at) > ERROR_WINDOW)
        {
            samples.pop_front();
        }
        let requests = stats.requests();
        let last_hist = samples.iter().rev().find(|s| s.hist.is_some());
        let hist = match last_hist {
            Some(s) if now.saturating_duration_since(s.at) < HIST_EVERY => None,
            Some(s) if s.requests == requests => s.hist.clone(),
            _ => Some(stats.buckets().into()),
        };
        samples.push_back(Sample {
            at: now,
            requests,
            errors: stats.errors(),
            hist,
        });
    }

    /// Rates as of `now`, from the live totals and the samples.
    pub fn rates(&self, stats: &CallStats, now: Instant) -> Rates {
        let samples = self.samples.read().unwrap_or_else(|e| e.into_inner());
        let requests = stats.requests();
        let errors = stats.errors();

        // The newest sample at least `window` old; the creation baseline otherwise.
        let base = |window: Duration, need_hist: bool| {
            samples
                .iter()
                .rev()
                .filter(|s| !need_hist || s.hist.is_some())
                .find(|s| now.saturating_duration_since(s.at) >= window)
        };

        let (at, base_requests) =
            base(RATE_WINDOW, false).map_or((self.created, 0), |s| (s.at, s.requests));
        let elapsed = now.saturating_duration_since(at).as_secs_f64().max(1.0);
        let request_rate = requests.saturating_sub(base_requests) as f64 / elapsed;

        let (base_requests, base_errors) =
            base(ERROR_WINDOW, false).map_or((0, 0), |s| (s.requests, s.errors));
        let calls = requests.saturating_sub(base_requests);
        let error_rate = if calls == 0 {
            0.0
        } else {
            errors.saturating_sub(base_errors) as f64 / calls as f64
        };

        let mut hist = stats.buckets();
        if let Some(old) = base(ERROR_WINDOW, true).and_then(|s| s.hist.as_ref()) {
            for (h, o) in hist.iter_mut().zip(old.iter()) {
                *h = h.saturating_sub(*o);
            }
        }
        Rates {
            request_rate,
            error_rate,
            p50: quantile(&hist, 0.5),
            p99: quantile(&hist, 0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::stats::Outcome;

    fn calls(stats: &CallStats, ok: u64, failed: u64, took: Duration) {
        for _ in 0..ok {
            stats.record(Outcome::Grpc(0), took);
        }
        for _ in 0..failed {
            stats.record(Outcome::Grpc(14), took);
        }
    }

    #[test]
    fn young_scope_uses_its_creation_as_baseline() {
        let stats = CallStats::default();
        let window = Window::default();
        calls(&stats, 90, 10, Duration::from_millis(1));
        let r = window.rates(&stats, Instant::now());
        assert!((r.error_rate - 0.1).abs() < 1e-9, "{r:?}");
        assert!(r.request_rate > 0.0);
        let p50 = r.p50.unwrap();
        assert!(p50 >= Duration::from_micros(896) && p50 <= Duration::from_micros(1_152));
    }

    #[test]
    fn windows_forget_old_calls() {
        let stats = CallStats::default();
        let window = Window::default();
        let t0 = Instant::now();
        // A burst of failures, then a quiet minute of sampling, then good calls.
        calls(&stats, 0, 50, Duration::from_millis(40));
        for s in 0..=70 {
            window.sample(&stats, t0 + Duration::from_secs(s));
        }
        calls(&stats, 100, 0, Duration::from_millis(1));
        let now = t0 + Duration::from_secs(75);
        let r = window.rates(&stats, now);
        assert_eq!(r.error_rate, 0.0, "{r:?}");
        assert!((r.request_rate - 10.0).abs() < 1e-9, "{r:?}"); // 100 calls / 10 s
        assert!(r.p99.unwrap() < Duration::from_millis(2), "{r:?}");
        // The ring stays bounded.
        let len = window.samples.read().unwrap().len();
        assert!(len <= 62, "{len}");
    }

    #[test]
    fn idle_scopes_share_their_histogram() {
        let stats = CallStats::default();
        let window = Window::default();
        let t0 = Instant::now();
        for s in 0..40 {
            window.sample(&stats, t0 + Duration::from_secs(s));
        }
        let samples = window.samples.read().unwrap();
        let hists: Vec<_> = samples.iter().filter_map(|s| s.hist.clone()).collect();
        assert!(hists.len() >= 3);
        assert!(hists.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    }
}
