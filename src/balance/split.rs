//! Version traffic splits: a service that is a weighted set of other services (blue
//! 90, green 10), picked per call by the same smooth weighted round robin as servers.
//!
//! The proportions hold whatever the number of tasks each version runs. A split is
//! rebuilt with the table, so new weights move the next calls; a call already in
//! flight keeps its server and its connection, so no stream is cut. When the picked
//! version has no server available, the call spills to the next version in the
//! schedule that has one rather than fail.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::wrr::smooth_schedule;
use super::Balancer;

/// The services of a split and their pick order.
#[derive(Debug)]
pub struct Split {
    /// Indices of the services, as the table numbers them.
    services: Box<[usize]>,
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
}

impl Split {
    /// `services` are (table index, weight).
    pub fn new(services: &[(usize, u32)]) -> Split {
        let weights: Vec<u64> = services.iter().map(|(_, w)| u64::from(*w)).collect();
        Split {
            services: services.iter().map(|(i, _)| *i).collect(),
            schedule: smooth_schedule(&weights),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The table index of the service for the next call; `balancer(i)` gives service
    /// `i`'s balancer, to skip versions with no server available.
    pub fn pick<'a>(&self, balancer: impl Fn(usize) -> Option<&'a Balancer>) -> Option<usize> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let first = self.services[self.schedule[start % n] as usize];
        let has_server =
            |i: usize| balancer(i).is_some_and(|b| b.endpoints().iter().any(|e| e.is_available()));
        if has_server(first) {
            return Some(first);
        }
        (1..n)
            .map(|k| self.services[self.schedule[start.wrapping_add(k) % n] as usize])
            .find(|&i| has_server(i))
            .or(Some(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_weights_exactly_per_cycle() {
        let split = Split::new(&[(7, 9), (3, 1)]);
        let mut counts = [0; 2];
        for _ in 0..1_000 {
            // No balancers: every version counts as without servers, so the first
            // pick of the schedule is kept (the call then fails in that version).
            match split.pick(|_| None) {
                Some(7) => counts[0] += 1,
                Some(3) => counts[1] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(counts, [900, 100]);
        assert_eq!(Split::new(&[(1, 0), (2, 5)]).pick(|_| None), Some(2));
        assert_eq!(Split::new(&[(1, 0)]).pick(|_| None), None);
    }
}
