//! Smooth weighted round robin, lock-free.
//!
//! The smooth WRR of nginx (`ngx_http_upstream_get_peer`): each round, every server's
//! current weight grows by its weight, the largest is picked and reduced by the total.
//! It spreads a server's turns evenly (weights 5,1,1 give `a a b a c a a`, not
//! `a a a a a b c`). The sequence depends only on the weights, so it is computed once
//! when the table is built; a pick is then one atomic increment and an index, with no
//! lock shared between concurrent calls. Servers that are unavailable are skipped by
//! drawing the next slot, which keeps the others' proportions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::Endpoint;

/// Longest schedule kept; larger weight totals are scaled down to fit.
const MAX_SCHEDULE: u64 = 1 << 14;

/// A service's servers and the order they are picked in.
#[derive(Debug)]
pub struct Wrr {
    endpoints: Vec<Arc<Endpoint>>,
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
}

impl Wrr {
    /// Builds a balancer; servers with weight 0 never get calls.
    pub fn new(servers: Vec<(Arc<Endpoint>, u32)>) -> Wrr {
        let weights: Vec<u64> = servers.iter().map(|(_, w)| u64::from(*w)).collect();
        let schedule = smooth_schedule(&weights);
        Wrr {
            endpoints: servers.into_iter().map(|(e, _)| e).collect(),
            schedule,
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Picks the next available server, or `None` if none is.
    pub fn select(&self) -> Option<&Arc<Endpoint>> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        // A slot of an unavailable server is given up and the next slot drawn, as if
        // the schedule had been built without it: the others keep their proportions.
        for _ in 0..n.min(4) {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            let ep = &self.endpoints[self.schedule[slot] as usize];
            if ep.is_available() {
                return Some(ep);
            }
        }
        // Many are down: walk the schedule once rather than draw slot after slot.
        let start = self.cursor.load(Ordering::Relaxed);
        let walk =
            || (0..n).map(|i| &self.endpoints[self.schedule[start.wrapping_add(i) % n] as usize]);
        walk().find(|ep| ep.is_available()).or_else(|| {
            // Every server the platform allows has failed a dial lately. Rather than
            // refuse the call on old news, try one: a server that came back is found
            // at once, and a dead one fails the call fast (connection refused).
            walk().find(|ep| ep.platform_ok())
        })
    }
}

/// The smooth WRR pick order for these weights, one full cycle.
pub(crate) fn smooth_schedule(weights: &[u64]) -> Box<[u32]> {
    let weights = scale(weights);
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return Box::new([]);
    }
    let mut current: Vec<i64> = vec![0; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        out.push(best as u32);
    }
    out.into_boxed_slice()
}

/// Divides weights by their gcd, and scales them down if their sum is too large
/// (keeping every non-zero weight at least 1).
fn scale(weights: &[u64]) -> Vec<u64> {
    let g = weights.iter().fold(0, |g, w| gcd(g, *w));
    if g == 0 {
        return weights.to_vec();
    }
    let mut w: Vec<u64> = weights.iter().map(|w| w / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SCHEDULE {
        w = w
            .iter()
            .map(|x| {
                if *x == 0 {
                    0
                } else {
                    (x * MAX_SCHEDULE / total).max(1)
                }
            })
            .collect();
    }
    w
}

/// Greatest common divisor (weights are divided by it).
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Lifecycle, TaskHealth};

    fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
        crate::balance::test_endpoints(n)
    }

    fn counts(b: &Wrr, n: usize, picks: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for _ in 0..picks {
            let ep = b.select().map(|e| e.key().address.port() as usize - 1000);
            if let Some(i) = ep {
                c[i] += 1;
            }
        }
        c
    }

    #[test]
    fn schedule_is_smooth() {
        assert_eq!(&*smooth_schedule(&[5, 1, 1]), &[0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(&*smooth_schedule(&[1, 1]), &[0, 1]);
        assert_eq!(&*smooth_schedule(&[3, 1]), &[0, 0, 1, 0]);
        assert_eq!(&*smooth_schedule(&[0, 2]), &[1]);
        assert!(smooth_schedule(&[0, 0]).is_empty());
        assert!(smooth_schedule(&[]).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled_not_dropped() {
        let s = smooth_schedule(&[u32::MAX as u64, 1, 3]);
        assert!(s.len() as u64 <= MAX_SCHEDULE + 3);
        assert!(s.contains(&1) && s.contains(&2));
    }

    #[test]
    fn picks_follow_weights() {
        let eps = endpoints(3);
        let b = Wrr::new(eps.iter().cloned().zip([3, 1, 0]).collect());
        assert_eq!(counts(&b, 3, 400), vec![300, 100, 0]);
    }

    #[test]
    fn unavailable_servers_are_skipped() {
        let eps = endpoints(3);
        let b = Wrr::new(eps.iter().cloned().map(|e| (e, 1)).collect());
        eps[1].observe_platform(TaskHealth::Unhealthy, Lifecycle::Running);
        assert_eq!(counts(&b, 3, 300), vec![150, 0, 150]);
        eps[0].observe_platform(TaskHealth::Healthy, Lifecycle::Stopping);
        eps[2].observe_platform(TaskHealth::Unhealthy, Lifecycle::Running);
        assert!(b.select().is_none());
        eps[1].observe_platform(TaskHealth::Unknown, Lifecycle::Running);
        assert_eq!(counts(&b, 3, 10), vec![0, 10, 0]);
    }

    #[test]
    fn empty_balancer_selects_nothing() {
        assert!(Wrr::new(Vec::new()).select().is_none());
    }
}
