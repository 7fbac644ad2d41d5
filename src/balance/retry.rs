//! A retry budget: retries may add at most a fifth to a service's calls, plus a small
//! floor per second so a quiet service can still retry (the budget of Finagle and
//! linkerd: "deposit a fraction per request, withdraw one per retry").
//!
//! Calls a server never saw are retried, and answered calls only where their router
//! says they are idempotent (see `proxy`); the budget keeps a failing cluster from
//! turning each call into two.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// Milli-tokens: a call deposits 200 (20%), a retry costs 1,000.
const DEPOSIT: i64 = 200;
const COST: i64 = 1_000;
/// At most this many retries' worth saved up.
const CAP: i64 = 100 * COST;
/// Retries allowed per second whatever the balance.
const FLOOR_PER_SECOND: u64 = 10;

/// One service's budget.
#[derive(Debug)]
pub struct RetryBudget {
    epoch: Instant,
    balance: AtomicI64,
    /// The second of the floor's window (since `epoch`) and retries taken from it.
    floor_second: AtomicU64,
    floor_used: AtomicU64,
    retries: AtomicU64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            epoch: Instant::now(),
            balance: AtomicI64::new(0),
            floor_second: AtomicU64::new(0),
            floor_used: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }
}

impl RetryBudget {
    /// Every call pays in.
    pub fn deposit(&self) {
        if self.balance.load(Ordering::Relaxed) < CAP {
            self.balance.fetch_add(DEPOSIT, Ordering::Relaxed);
        }
    }

    /// Whether one retry may happen now (and pays for it if so).
    pub fn withdraw(&self, now: Instant) -> bool {
        let ok = self.spend() || self.take_floor(now);
        if ok {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn spend(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= COST).then_some(b - COST)
            })
            .is_ok()
    }

    fn take_floor(&self, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.epoch).as_secs();
        if self.floor_second.swap(second, Ordering::Relaxed) != second {
            self.floor_used.store(0, Ordering::Relaxed);
        }
        self.floor_used.fetch_add(1, Ordering::Relaxed) < FLOOR_PER_SECOND
    }

    /// Retries granted so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fifth_of_calls_plus_a_floor() {
        let b = RetryBudget::default();
        let t = b.epoch;
        // With no calls, only the floor: 10 in this second, 10 more in the next.
        assert_eq!((0..50).filter(|_| b.withdraw(t)).count(), 10);
        assert_eq!(
            (0..50)
                .filter(|_| b.withdraw(t + Duration::from_secs(1)))
                .count(),
            10
        );
        // 400 calls buy 80 retries (plus the floor of a fresh second).
        for _ in 0..400 {
            b.deposit();
        }
        let later = t + Duration::from_secs(5);
        assert_eq!((0..1_000).filter(|_| b.withdraw(later)).count(), 90);
        assert_eq!(b.retries(), 110);
        // Savings are capped: a long quiet spell does not buy a retry storm.
        for _ in 0..100_000 {
            b.deposit();
        }
        let much_later = t + Duration::from_secs(9);
        assert_eq!(
            (0..1_000).filter(|_| b.withdraw(much_later)).count(),
            100 + 10
        );
    }
}
