//! A server's round-trip-time estimate: a lock-free "peak EWMA".
//!
//! This module owns the per-server latency estimate that load-aware balancing
//! multiplies by the number of calls in flight. It follows the peak-sensitive moving
//! average of Twitter's Finagle (`PeakEwma` in its load balancers), also used by
//! linkerd and tower:
//!
//! * each observed round trip pulls the estimate toward itself by a weight that grows
//!   with the time since the previous update: `w = exp(-elapsed / tau)` and
//!   `estimate = estimate * w + rtt * (1 - w)`, so the past fades with time constant
//!   `tau` however many calls there are;
//! * a round trip *longer* than the estimate replaces it at once, so a server that
//!   turns slow is avoided immediately and only regains trust gradually;
//! * reading decays the estimate toward zero over the time since the last update (as
//!   if the idle time had been a zero-latency observation). A server that p2c shuns
//!   after a spike therefore looks cheap again after a few `tau` and is retried,
//!   instead of being starved forever by one bad sample. Reading never stores.
//!
//! Before the first observation the estimate is the constructor's `default`, held
//! still (it does not decay). The first observation blends with that default by the
//! time elapsed since construction, like any later one.
//!
//! Concurrency: the value (f64 bits) and the time of the last update (nanoseconds
//! since an `epoch` taken at construction) live in two `AtomicU64`s; the value is
//! changed by compare-and-swap, so two concurrent observations never overwrite each
//! other. A writer loads the value, then advances the time stamp (with `fetch_max`,
//! which also tells it the previous stamp), and only then publishes its new value;
//! readers load the value before the stamp. So whoever sees a value also sees a stamp
//! at least as new as it, and each interval of time is blended in at most once. A
//! writer whose compare-and-swap loses to a rising value (a newer peak) drops its own
//! interval rather than decay that peak by older time. Races thus cost a little
//! decay now and then (the estimate errs high, the safe side), never a fresh peak,
//! and nothing here can panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A peak-sensitive, exponentially weighted moving average of round-trip times,
/// shared by all calls to one server.
#[derive(Debug)]
pub struct PeakEwma {
    /// Origin of the time stamps.
    epoch: Instant,
    /// The time constant, in nanoseconds (at least 1).
    tau_nanos: f64,
    /// The estimate in nanoseconds, as `f64::to_bits`.
    value: AtomicU64,
    /// 0 before the first observation; otherwise 1 + nanoseconds from `epoch` to the
    /// newest update.
    stamp: AtomicU64,
}

impl PeakEwma {
    /// An estimate that reads `default` until the first observation, and then
    /// forgets the past with time constant `tau` (a zero `tau` is taken as 1 ns).
    pub fn new(default: Duration, tau: Duration) -> PeakEwma {
        PeakEwma {
            epoch: Instant::now(),
            tau_nanos: (nanos(tau) as f64).max(1.0),
            value: AtomicU64::new((nanos(default) as f64).to_bits()),
            stamp: AtomicU64::new(0),
        }
    }

    /// Records a call that took `rtt` and finished at `now`.
    ///
    /// An `rtt` above the current estimate replaces it; a lower one is blended in by
    /// the time elapsed since the last update. A `now` older than the last update
    /// counts as no time elapsed.
    pub fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = nanos(rtt) as f64;
        let now = self.since_epoch(now);
        // Load the value, then advance the stamp: the stamp we replace is at least as
        // new as the value we loaded (its writer advanced the stamp before publishing
        // it), so the interval we blend by can only be too short, never stale. And
        // whoever later sees our value also sees our stamp.
        let mut current = self.value.load(Ordering::Acquire);
        let prev = self
            .stamp
            .fetch_max(now.saturating_add(1), Ordering::AcqRel);
        // The time since the previous update (or since construction before the first
        // one); 0 when the previous is as new as ours.
        let mut elapsed = now.saturating_sub(prev.saturating_sub(1));
        loop {
            let estimate = f64::from_bits(current);
            let next = if rtt > estimate {
                rtt
            } else {
                let w = (-(elapsed as f64) / self.tau_nanos).exp();
                estimate * w + rtt * (1.0 - w)
            };
            match self.value.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    // Someone changed the value since we loaded it. Our interval is
                    // ours alone (`fetch_max` hands out disjoint ones), so it is still
                    // to be applied, unless the value went up: then a peak newer than
                    // our (older) interval came in, and decaying it by that interval
                    // would wrongly erode it. Under that race we blend no further and
                    // keep the estimate high.
                    if f64::from_bits(actual) > f64::from_bits(current) {
                        elapsed = 0;
                    }
                    current = actual;
                }
            }
        }
    }

    /// The estimate in nanoseconds as of `now`: the stored value decayed toward zero
    /// by the time since the last update (reading does not store). Exactly the
    /// constructor's default until the first observation.
    pub fn estimate_nanos(&self, now: Instant) -> f64 {
        // Value first, then stamp: the stamp is then at least as new as the value.
        let value = f64::from_bits(self.value.load(Ordering::Acquire));
        let stamp = self.stamp.load(Ordering::Acquire);
        if stamp == 0 {
            return value;
        }
        let elapsed = self.since_epoch(now).saturating_sub(stamp - 1);
        value * (-(elapsed as f64) / self.tau_nanos).exp()
    }

    /// Nanoseconds from the epoch to `t` (0 if `t` is before it).
    fn since_epoch(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.epoch))
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    const MS: f64 = 1e6;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn default_until_first_observation_and_not_decayed() {
        let e = PeakEwma::new(ms(1), Duration::from_secs(10));
        assert!(close(e.estimate_nanos(e.epoch), MS));
        assert!(close(e.estimate_nanos(e.epoch + ms(600_000)), MS));
    }

    #[test]
    fn peak_replaces_at_once() {
        let e = PeakEwma::new(ms(1), Duration::from_secs(10));
        let t = e.epoch + ms(5);
        e.observe(ms(50), t);
        assert!(close(e.estimate_nanos(t), 50.0 * MS));
        // A higher one again replaces, even right after.
        e.observe(ms(80), t + Duration::from_nanos(1));
        assert!(close(
            e.estimate_nanos(t + Duration::from_nanos(1)),
            80.0 * MS
        ));
    }

    #[test]
    fn lower_observation_blends_by_elapsed_time() {
        let tau = Duration::from_secs(10);
        let e = PeakEwma::new(ms(1), tau);
        let t0 = e.epoch + ms(1);
        e.observe(ms(100), t0);
        let t1 = t0 + tau; // one tau later: weight of the past is 1/e
        e.observe(ms(10), t1);
        let w = (-1.0f64).exp();
        let want = 100.0 * MS * w + 10.0 * MS * (1.0 - w);
        assert!(
            close(e.estimate_nanos(t1), want),
            "{}",
            e.estimate_nanos(t1)
        );
    }

    #[test]
    fn decays_toward_lower_value_over_a_few_tau() {
        let tau = Duration::from_secs(10);
        let e = PeakEwma::new(ms(1), tau);
        let mut t = e.epoch + ms(1);
        e.observe(ms(100), t);
        let mut last = e.estimate_nanos(t);
        for _ in 0..50 {
            t += tau / 10;
            e.observe(ms(10), t);
            let now = e.estimate_nanos(t);
            assert!(now < last, "must keep falling: {now} !< {last}");
            assert!(now >= 10.0 * MS);
            last = now;
        }
        // Five tau later the 90 ms excess has shrunk by e^-5 (to about 0.6 ms).
        let excess = last - 10.0 * MS;
        assert!(close(excess, 90.0 * MS * (-5.0f64).exp()), "{excess}");
    }

    #[test]
    fn reading_decays_toward_zero_without_storing() {
        let tau = Duration::from_secs(10);
        let e = PeakEwma::new(ms(1), tau);
        let t = e.epoch + ms(1);
        e.observe(ms(100), t);
        let later = e.estimate_nanos(t + 2 * tau);
        assert!(close(later, 100.0 * MS * (-2.0f64).exp()), "{later}");
        // Reading stored nothing: the value as of `t` is unchanged.
        assert!(close(e.estimate_nanos(t), 100.0 * MS));
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let e = PeakEwma::new(ms(1), Duration::from_secs(10));
        let t = e.epoch + ms(1000);
        e.observe(ms(100), t);
        e.observe(ms(1), t - ms(500)); // older than the last update
        assert!(close(e.estimate_nanos(t), 100.0 * MS));
        // An Instant before the epoch is clamped to the epoch, not a panic.
        if let Some(before) = e.epoch.checked_sub(ms(10)) {
            e.observe(ms(1), before);
            assert!(e.estimate_nanos(before).is_finite());
        }
    }

    #[test]
    fn zero_tau_and_extreme_inputs_stay_finite() {
        let e = PeakEwma::new(Duration::ZERO, Duration::ZERO);
        let t = e.epoch + ms(1);
        e.observe(Duration::MAX, t);
        assert!(e.estimate_nanos(t).is_finite());
        e.observe(Duration::ZERO, t + ms(1));
        let v = e.estimate_nanos(t + ms(1));
        assert!(v.is_finite() && v >= 0.0, "{v}");
    }

    #[test]
    fn concurrent_observers_do_not_lose_the_peak() {
        for round in 0..20u64 {
            let e = Arc::new(PeakEwma::new(ms(1), Duration::from_secs(10)));
            // Everyone reports at the same instant, a while after construction, so a
            // low observation applied with a stale interval *would* erase the peak.
            let t = e.epoch + Duration::from_secs(30);
            let threads: Vec<_> = (0..8u64)
                .map(|id| {
                    let e = Arc::clone(&e);
                    thread::spawn(move || {
                        for i in 0..2_000u64 {
                            let rtt = if id == 3 && i == 1_000 + round {
                                ms(500) // the one peak
                            } else {
                                Duration::from_micros(100 + (i * 7 + id) % 900)
                            };
                            e.observe(rtt, t);
                        }
                    })
                })
                .collect();
            for th in threads {
                assert!(th.join().is_ok());
            }
            let got = e.estimate_nanos(t);
            assert!(
                close(got, 500.0 * MS),
                "round {round}: peak lost, got {got}"
            );
        }
    }

    #[test]
    fn a_peak_is_never_decayed_by_a_racing_older_observation() {
        // One thread reports ever higher peaks at ever later times; the others keep
        // reporting low round trips stamped with the latest time they have seen. With
        // a tiny tau, a low report applied with the interval since the *previous*
        // peak would wipe out the new one; so after each peak the estimate (read at
        // the peak's own time) must be exactly that peak until the next one.
        use std::sync::atomic::AtomicBool;
        let e = Arc::new(PeakEwma::new(ms(1), Duration::from_micros(1)));
        let clock = Arc::new(AtomicU64::new(0)); // ms since the epoch
        let stop = Arc::new(AtomicBool::new(false));
        let start = Arc::new(std::sync::Barrier::new(4));
        let lows: Vec<_> = (0..3u64)
            .map(|id| {
                let (e, clock, stop) = (Arc::clone(&e), Arc::clone(&clock), Arc::clone(&stop));
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let t = e.epoch + ms(clock.load(Ordering::Acquire));
                        e.observe(Duration::from_nanos(1 + id), t);
                    }
                })
            })
            .collect();
        start.wait();
        let mut failure = None;
        for k in 1..=20_000u64 {
            clock.store(k, Ordering::Release);
            let t = e.epoch + ms(k);
            let peak = Duration::from_millis(1) + Duration::from_nanos(k);
            e.observe(peak, t);
            for _ in 0..50 {
                let got = e.estimate_nanos(t);
                if got != nanos(peak) as f64 {
                    failure = Some((k, got));
                }
            }
            if failure.is_some() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for th in lows {
            assert!(th.join().is_ok());
        }
        assert_eq!(failure, None, "a peak was lost (round, estimate)");
    }

    #[test]
    fn concurrent_observers_with_advancing_time_stay_in_range() {
        let e = Arc::new(PeakEwma::new(ms(1), Duration::from_millis(50)));
        let base = e.epoch;
        let threads: Vec<_> = (0..4u64)
            .map(|id| {
                let e = Arc::clone(&e);
                thread::spawn(move || {
                    for i in 0..5_000u64 {
                        let t = base + Duration::from_micros(i * 100 + id);
                        e.observe(Duration::from_micros(200 + id * 100), t);
                        let v = e.estimate_nanos(t);
                        assert!(v.is_finite() && v >= 0.0);
                    }
                })
            })
            .collect();
        for th in threads {
            assert!(th.join().is_ok());
        }
        let end = base + Duration::from_micros(5_000 * 100);
        let v = e.estimate_nanos(end);
        // Every sample was 0.2-0.5 ms; the peak rule keeps it near the top.
        assert!((0.2 * MS..=0.5 * MS + 1.0).contains(&v), "{v}");
    }
}
