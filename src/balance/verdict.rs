//! One server's verdict from its active health checks, as the data plane and the API
//! read it: [`HealthState`] turns single probe results into a verdict with
//! [`Thresholds`], so one lost probe does not take a server out and one good answer
//! does not bring a sick one back. The probes themselves are the health layer's
//! ([`crate::health`]); the state lives here, on the server's
//! [`Endpoint`](super::Endpoint), because picking a server reads it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

/// How many results in a row flip a verdict: `unhealthy` failures take a healthy
/// server out, `healthy` successes bring an unhealthy one back (0 counts as 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// One server's health as the checks see it; shared, and read lock-free by the data
/// plane and the API.
///
/// A new server counts as healthy: calls flow to it until checks say otherwise.
pub struct HealthState {
    /// Verdict and current streak, packed so that one compare-and-swap updates both
    /// (see [`Streak`]).
    streak: AtomicU64,
    checks: AtomicU64,
    failures: AtomicU64,
    /// The last failure's reason.
    reason: ArcSwapOption<String>,
}

impl HealthState {
    pub fn new() -> HealthState {
        HealthState {
            streak: AtomicU64::new(Streak::INITIAL.pack()),
            checks: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            reason: ArcSwapOption::empty(),
        }
    }

    pub fn is_healthy(&self) -> bool {
        Streak::unpack(self.streak.load(Ordering::Acquire)).healthy
    }

    /// Why the server is unhealthy (the last failed probe), or `None` while healthy.
    pub fn reason(&self) -> Option<String> {
        if self.is_healthy() {
            return None;
        }
        self.reason.load_full().map(|r| r.as_ref().clone())
    }

    /// Probes recorded so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Failed probes recorded so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Applies one probe result: the server turns unhealthy after
    /// `unhealthy_threshold` consecutive failures and healthy again after
    /// `healthy_threshold` consecutive successes. Returns `Some(new verdict)` when this
    /// result changed the verdict, `None` otherwise.
    pub fn record(&self, result: Result<(), String>, thresholds: Thresholds) -> Option<bool> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let ok = result.is_ok();
        if let Err(reason) = result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            // Stored before the verdict flips, so whoever sees "unhealthy" finds a reason.
            self.reason.store(Some(Arc::new(reason)));
        }
        let mut flipped = None;
        let update = self
            .streak
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let before = Streak::unpack(packed);
                let after = before.step(ok, thresholds);
                flipped = (after.healthy != before.healthy).then_some(after.healthy);
                Some(after.pack())
            });
        // The closure always returns Some, so the update cannot be refused.
        debug_assert!(update.is_ok());
        flipped
    }
}

impl Default for HealthState {
    fn default() -> HealthState {
        HealthState::new()
    }
}

impl std::fmt::Debug for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthState")
            .field("healthy", &self.is_healthy())
            .field("reason", &self.reason())
            .field("checks", &self.checks())
            .field("failures", &self.failures())
            .finish()
    }
}

/// The verdict plus the run of identical results that led to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streak {
    healthy: bool,
    /// Whether the current run is of successes (else of failures).
    of_successes: bool,
    /// Length of the current run.
    len: u32,
}

impl Streak {
    const INITIAL: Streak = Streak {
        healthy: true,
        of_successes: true,
        len: 0,
    };
    const HEALTHY_BIT: u64 = 1 << 33;
    const SUCCESS_BIT: u64 = 1 << 32;

    fn pack(self) -> u64 {
        let mut packed = u64::from(self.len);
        if self.healthy {
            packed |= Self::HEALTHY_BIT;
        }
        if self.of_successes {
            packed |= Self::SUCCESS_BIT;
        }
        packed
    }

    fn unpack(packed: u64) -> Streak {
        Streak {
            healthy: packed & Self::HEALTHY_BIT != 0,
            of_successes: packed & Self::SUCCESS_BIT != 0,
            len: (packed & u64::from(u32::MAX)) as u32,
        }
    }

    fn step(self, ok: bool, thresholds: Thresholds) -> Streak {
        let len = if ok == self.of_successes {
            self.len.saturating_add(1)
        } else {
            1
        };
        let healthy = if ok {
            self.healthy || len >= thresholds.healthy.max(1)
        } else {
            self.healthy && len < thresholds.unhealthy.max(1)
        };
        Streak {
            healthy,
            of_successes: ok,
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(reason: &str) -> Result<(), String> {
        Err(reason.to_string())
    }

    #[test]
    fn starts_healthy_with_no_reason() {
        let state = HealthState::new();
        assert!(state.is_healthy());
        assert_eq!(state.reason(), None);
        assert_eq!((state.checks(), state.failures()), (0, 0));
    }

    #[test]
    fn flips_after_the_thresholds_and_not_before() {
        let cfg = Thresholds {
            healthy: 2,
            unhealthy: 3,
        };
        let state = HealthState::new();
        // (result, flip expected, healthy after)
        let script: &[(Result<(), String>, Option<bool>, bool)] = &[
            (Ok(()), None, true),
            (fail("a"), None, true),
            (fail("b"), None, true),
            (Ok(()), None, true), // breaks the run of failures
            (fail("c"), None, true),
            (fail("d"), None, true),
            (fail("e"), Some(false), false),
            (fail("f"), None, false),
            (Ok(()), None, false),
            (fail("g"), None, false), // breaks the run of successes
            (Ok(()), None, false),
            (Ok(()), Some(true), true),
            (Ok(()), None, true),
        ];
        for (i, (result, flip, healthy)) in script.iter().enumerate() {
            assert_eq!(state.record(result.clone(), cfg), *flip, "step {i}");
            assert_eq!(state.is_healthy(), *healthy, "step {i}");
        }
        assert_eq!(state.checks(), script.len() as u64);
        assert_eq!(state.failures(), 7);
    }

    #[test]
    fn reason_is_the_last_failure_while_unhealthy() {
        let cfg = Thresholds {
            healthy: 1,
            unhealthy: 2,
        };
        let state = HealthState::new();
        state.record(fail("first"), cfg);
        assert_eq!(state.reason(), None, "still healthy after one failure");
        state.record(fail("second"), cfg);
        assert_eq!(state.reason().as_deref(), Some("second"));
        state.record(fail("third"), cfg);
        assert_eq!(state.reason().as_deref(), Some("third"));
        assert_eq!(state.record(Ok(()), cfg), Some(true));
        assert_eq!(state.reason(), None);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let cfg = Thresholds {
            healthy: 0,
            unhealthy: 0,
        };
        let state = HealthState::new();
        assert_eq!(state.record(fail("x"), cfg), Some(false));
        assert_eq!(state.record(Ok(()), cfg), Some(true));
    }

    #[test]
    fn streak_packing_round_trips() {
        for healthy in [false, true] {
            for of_successes in [false, true] {
                for len in [0, 1, 7, u32::MAX] {
                    let s = Streak {
                        healthy,
                        of_successes,
                        len,
                    };
                    assert_eq!(Streak::unpack(s.pack()), s);
                }
            }
        }
    }

    #[test]
    fn concurrent_records_lose_no_update() {
        let cfg = Thresholds {
            healthy: 2,
            unhealthy: u32::MAX,
        };
        let state = Arc::new(HealthState::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        state.record(fail("x"), cfg);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(state.checks(), 4000);
        assert_eq!(state.failures(), 4000);
        let streak = Streak::unpack(state.streak.load(Ordering::SeqCst));
        assert_eq!((streak.of_successes, streak.len), (false, 4000));
    }
}
