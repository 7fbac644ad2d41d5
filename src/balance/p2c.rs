//! Power of two choices: pick the less loaded of two random servers.
//!
//! This module owns the choice among a service's servers when balancing by load. The
//! method is the "power of two random choices" analysed by Michael Mitzenmacher in
//! *The Power of Two Choices in Randomized Load Balancing* (IEEE TPDS, 2001): draw
//! two distinct candidates uniformly at random and send the call to the one with the
//! lower load. Compared with one random draw this shrinks the worst backlog
//! exponentially, and compared with always taking the global minimum it avoids the
//! herd effect of every balancer piling on the same momentarily idle server (the
//! loads read here are stale by the time the call lands). Finagle, linkerd and
//! Envoy's "least request" balancer use the same rule.
//!
//! What "load" means is the caller's business ([`Candidate::load`]); gantry uses the
//! peak-EWMA latency times (in-flight calls + 1). Candidates that are not available
//! are never drawn. The pick is uniform over the available candidates (the first
//! draw uniform over all of them, the second uniform over the rest), and it never
//! allocates: a few random draws are tried first, which is enough when most servers
//! are up, and only when they keep hitting unavailable servers does it count the
//! available ones in one pass and take the chosen ones by rank in another.

use rand::Rng;

/// Random draws tried per choice before falling back to counting.
const DRAWS: usize = 8;

/// Something p2c can choose among.
pub trait Candidate {
    /// Whether it may be given a call at all.
    fn is_available(&self) -> bool;
    /// Lower is better (gantry: ewma_nanos * (in_flight + 1)).
    fn load(&self) -> f64;
}

impl<C: Candidate + ?Sized> Candidate for &C {
    fn is_available(&self) -> bool {
        (**self).is_available()
    }
    fn load(&self) -> f64 {
        (**self).load()
    }
}

/// Picks an index: two distinct random AVAILABLE candidates, the lower load wins
/// (ties, and loads that do not compare such as NaN: the first drawn). One available
/// → it; none → `None`. Does not allocate; draws with `rng`.
///
/// Availability is read as it is at the moment; if it changes during the pick the
/// result is still an index that was available when looked at, or `None`.
pub fn pick<C: Candidate, R: Rng + ?Sized>(items: &[C], rng: &mut R) -> Option<usize> {
    let n = items.len();
    match n {
        0 => return None,
        1 => return items[0].is_available().then_some(0),
        _ => {}
    }
    let Some(first) = draw(items, rng, None) else {
        return by_rank(items, rng);
    };
    let Some(second) = draw(items, rng, Some(first)) else {
        // Few others are up: take the second uniformly among them by rank.
        let others = count_available(items, Some(first));
        if others == 0 {
            return Some(first);
        }
        let rank = rng.random_range(0..others);
        return Some(match nth_available(items, Some(first), rank) {
            Some(second) => better(items, first, second),
            None => first,
        });
    };
    Some(better(items, first, second))
}

/// `a` unless `b` is strictly less loaded.
fn better<C: Candidate>(items: &[C], a: usize, b: usize) -> usize {
    if items[b].load() < items[a].load() {
        b
    } else {
        a
    }
}

/// Up to [`DRAWS`] uniform draws for an available index other than `except`.
fn draw<C: Candidate, R: Rng + ?Sized>(
    items: &[C],
    rng: &mut R,
    except: Option<usize>,
) -> Option<usize> {
    let n = items.len();
    for _ in 0..DRAWS {
        let i = match except {
            // Uniform over the n - 1 indices other than `e`.
            Some(e) => {
                let i = rng.random_range(0..n - 1);
                if i >= e {
                    i + 1
                } else {
                    i
                }
            }
            None => rng.random_range(0..n),
        };
        if items[i].is_available() {
            return Some(i);
        }
    }
    None
}

/// The fallback when the first draws all failed: count the available candidates,
/// choose two distinct ranks uniformly, and find them.
fn by_rank<C: Candidate, R: Rng + ?Sized>(items: &[C], rng: &mut R) -> Option<usize> {
    let count = count_available(items, None);
    match count {
        0 => return None,
        1 => return nth_available(items, None, 0),
        _ => {}
    }
    let r1 = rng.random_range(0..count);
    let mut r2 = rng.random_range(0..count - 1);
    if r2 >= r1 {
        r2 += 1;
    }
    match (
        nth_available(items, None, r1),
        nth_available(items, None, r2),
    ) {
        (Some(a), Some(b)) => Some(better(items, a, b)),
        // Availability changed under us: take whatever is still there.
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => nth_available(items, None, 0),
    }
}

/// How many candidates other than `except` are available.
fn count_available<C: Candidate>(items: &[C], except: Option<usize>) -> usize {
    available(items, except).count()
}

/// The index of the `rank`-th (from 0) available candidate other than `except`.
fn nth_available<C: Candidate>(items: &[C], except: Option<usize>, rank: usize) -> Option<usize> {
    available(items, except).nth(rank)
}

/// Indices of the available candidates other than `except`, in order.
fn available<C: Candidate>(items: &[C], except: Option<usize>) -> impl Iterator<Item = usize> + '_ {
    items
        .iter()
        .enumerate()
        .filter(move |&(i, c)| Some(i) != except && c.is_available())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::cell::Cell;

    struct Srv {
        up: bool,
        load: f64,
    }

    impl Candidate for Srv {
        fn is_available(&self) -> bool {
            self.up
        }
        fn load(&self) -> f64 {
            self.load
        }
    }

    fn srv(up: bool, load: f64) -> Srv {
        Srv { up, load }
    }

    fn counts(items: &[Srv], picks: usize, seed: u64) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0; items.len()];
        for _ in 0..picks {
            let i = pick(items, &mut rng).expect("some candidate is available");
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn none_and_empty() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(pick::<Srv, _>(&[], &mut rng), None);
        assert_eq!(pick(&[srv(false, 1.0)], &mut rng), None);
        let down: Vec<Srv> = (0..50).map(|_| srv(false, 1.0)).collect();
        for _ in 0..100 {
            assert_eq!(pick(&down, &mut rng), None);
        }
    }

    #[test]
    fn single_available_is_always_picked() {
        let mut rng = StdRng::seed_from_u64(2);
        assert_eq!(pick(&[srv(true, 5.0)], &mut rng), Some(0));
        // Even when it is the heaviest.
        let items = [srv(false, 1.0), srv(true, 100.0), srv(false, 0.0)];
        for _ in 0..1_000 {
            assert_eq!(pick(&items, &mut rng), Some(1));
        }
    }

    #[test]
    fn never_picks_unavailable() {
        let items: Vec<Srv> = (0..20).map(|i| srv(i % 3 != 0, (i % 5) as f64)).collect();
        let c = counts(&items, 10_000, 3);
        for (i, n) in c.iter().enumerate() {
            if !items[i].up {
                assert_eq!(*n, 0, "picked unavailable {i}");
            }
        }
    }

    #[test]
    fn heavy_candidate_gets_far_fewer_picks() {
        // Two candidates: both are always drawn, so the lighter always wins.
        let c = counts(&[srv(true, 1.0), srv(true, 10.0)], 10_000, 4);
        eprintln!("p2c 2 candidates (1.0, 10.0): {c:?}");
        assert_eq!(c, [10_000, 0]);

        // Four: the heaviest can never win a pair; the three light ones (tied) win
        // whenever drawn first or paired with the heavy one: a third each.
        let items = [
            srv(true, 1.0),
            srv(true, 10.0),
            srv(true, 1.0),
            srv(true, 1.0),
        ];
        let c = counts(&items, 10_000, 5);
        eprintln!("p2c 4 candidates (1, 10, 1, 1): {c:?}");
        assert_eq!(c[1], 0);
        for i in [0, 2, 3] {
            assert!((3_000..3_700).contains(&c[i]), "{c:?}");
        }

        // Distinct loads 1, 2, 3, 10: the k-th lightest of n wins with probability
        // 2(n-k)/(n(n-1)) = 1/2, 1/3, 1/6, 0.
        let items = [
            srv(true, 10.0),
            srv(true, 2.0),
            srv(true, 1.0),
            srv(true, 3.0),
        ];
        let c = counts(&items, 12_000, 6);
        eprintln!("p2c 4 candidates (10, 2, 1, 3): {c:?}");
        assert_eq!(c[0], 0);
        assert!((5_500..6_500).contains(&c[2]), "{c:?}");
        assert!((3_500..4_500).contains(&c[1]), "{c:?}");
        assert!((1_600..2_400).contains(&c[3]), "{c:?}");
    }

    #[test]
    fn heavy_but_not_heaviest_still_gets_some() {
        // Five candidates, one 10x loaded among equal others plus a 20x: the 10x one
        // wins only against the 20x one, i.e. about 2/20 = 10% of picks.
        let items = [
            srv(true, 1.0),
            srv(true, 1.0),
            srv(true, 10.0),
            srv(true, 1.0),
            srv(true, 20.0),
        ];
        let c = counts(&items, 10_000, 7);
        eprintln!("p2c 5 candidates (1, 1, 10, 1, 20): {c:?}");
        assert!((700..1_300).contains(&c[2]), "{c:?}");
        assert_eq!(c[4], 0);
    }

    #[test]
    fn equal_loads_are_spread_uniformly() {
        let items: Vec<Srv> = (0..10).map(|_| srv(true, 1.0)).collect();
        let c = counts(&items, 20_000, 8);
        for n in &c {
            assert!((1_700..2_300).contains(n), "{c:?}");
        }
    }

    #[test]
    fn ties_go_to_the_first_drawn() {
        // Equal loads: over many picks both must win (if ties went to, say, the lower
        // index, index 1 would never be picked).
        let c = counts(&[srv(true, 7.0), srv(true, 7.0)], 10_000, 9);
        assert!((4_500..5_500).contains(&c[0]), "{c:?}");
        // NaN compares as not-less: the first drawn wins, no panic.
        let c = counts(&[srv(true, f64::NAN), srv(true, 1.0)], 1_000, 10);
        assert_eq!(c.iter().sum::<usize>(), 1_000);
    }

    #[test]
    fn thousand_candidates_mostly_unavailable() {
        let up = [17usize, 500, 999];
        let items: Vec<Srv> = (0..1_000).map(|i| srv(up.contains(&i), 1.0)).collect();
        let c = counts(&items, 9_000, 11);
        eprintln!(
            "p2c 1000 candidates, 3 up: {:?}",
            up.iter().map(|&i| c[i]).collect::<Vec<_>>()
        );
        for (i, n) in c.iter().enumerate() {
            if up.contains(&i) {
                assert!((2_600..3_400).contains(n), "{i}: {n}");
            } else {
                assert_eq!(*n, 0);
            }
        }
        // With loads, the lightest of the three wins 2/3 of the time.
        let items: Vec<Srv> = (0..1_000)
            .map(|i| srv(up.contains(&i), if i == 500 { 0.5 } else { 1.0 }))
            .collect();
        let c = counts(&items, 9_000, 12);
        assert!((5_600..6_400).contains(&c[500]), "{}", c[500]);

        // Only one up among a thousand.
        let items: Vec<Srv> = (0..1_000).map(|i| srv(i == 321, 1.0)).collect();
        let mut rng = StdRng::seed_from_u64(13);
        for _ in 0..1_000 {
            assert_eq!(pick(&items, &mut rng), Some(321));
        }
    }

    #[test]
    fn half_unavailable_still_uniform_over_the_rest() {
        let items: Vec<Srv> = (0..100).map(|i| srv(i % 2 == 0, 1.0)).collect();
        let c = counts(&items, 50_000, 14);
        for (i, n) in c.iter().enumerate() {
            if i % 2 == 0 {
                assert!((700..1_300).contains(n), "{i}: {n}");
            } else {
                assert_eq!(*n, 0);
            }
        }
    }

    /// A candidate whose availability flips on every look: the pick must still
    /// return quickly with something that was available when looked at, or None.
    struct Flaky {
        looks: Cell<u32>,
    }

    impl Candidate for Flaky {
        fn is_available(&self) -> bool {
            let n = self.looks.get();
            self.looks.set(n + 1);
            n % 2 == 0
        }
        fn load(&self) -> f64 {
            1.0
        }
    }

    #[test]
    fn availability_changing_during_the_pick_is_harmless() {
        let items: Vec<Flaky> = (0..30)
            .map(|_| Flaky {
                looks: Cell::new(1),
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(15);
        for _ in 0..1_000 {
            if let Some(i) = pick(&items, &mut rng) {
                assert!(i < items.len());
            }
        }
    }

    #[test]
    fn works_through_references_and_dyn_rng() {
        let a = srv(true, 3.0);
        let b = srv(true, 1.0);
        let refs = [&a, &b];
        let mut rng = StdRng::seed_from_u64(16);
        let rng: &mut dyn rand::RngCore = &mut rng;
        assert_eq!(pick(&refs, rng), Some(1));
    }
}
