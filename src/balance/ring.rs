//! Consistent hashing: a weighted hash ring with virtual nodes.
//!
//! This module owns the mapping from a request key (a tenant, a session: whatever a
//! route hashes on) to a server such that the same key keeps going to the same
//! server, and a change in the set of servers moves as few keys as possible. It is
//! consistent hashing as described by Karger et al., *Consistent Hashing and Random
//! Trees* (STOC 1997), arranged the way the ketama library of last.fm made common:
//! every server is hashed to many points ("virtual nodes") on a 64-bit circle, in
//! proportion to its weight, and a key belongs to the first point at or after its
//! own hash, going round. Many points per server even out the arcs each one owns;
//! adding a server only takes keys *to* it, and removing one only hands *its* keys
//! to the others, spread over them because its points are scattered.
//!
//! A server that is down is not removed from the ring: [`Ring::pick`] walks past its
//! points, which gives exactly the keys a rebuilt ring without it would give and
//! leaves every other key where it was. The ring depends only on the servers'
//! identities and weights (not their order, except for exact hash ties), and the
//! hash is fixed ([`hash_bytes`]: FNV-1a, then the 64-bit finaliser of MurmurHash3),
//! so every gantry process and restart maps keys the same way.

use super::wrr::gcd;

/// Points per unit of weight (weights are first divided by their common divisor).
pub const VNODES_PER_WEIGHT: u64 = 160;

/// Largest number of points a ring is built with; larger totals are scaled down
/// (keeping at least one point per server with a non-zero weight).
pub const MAX_POINTS: u64 = 1 << 20;

/// Points walked past before checking whether any server is available at all.
const WALK_BEFORE_CHECK: usize = 64;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A fast, stable 64-bit hash of bytes: the same on every run, platform and process.
///
/// FNV-1a 64 over the bytes, then MurmurHash3's `fmix64` finaliser so that inputs
/// differing in one byte (`tenant-1`, `tenant-2`) land far apart.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, bytes))
}

/// FNV-1a: continue the hash `state` over `bytes`.
fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The hash of server `identity`'s point number `replica`: the same as
/// `hash_bytes(identity ++ replica.to_le_bytes())`, with the identity's part computed
/// once by the caller (`prefix = fnv1a(FNV_OFFSET, identity)`).
fn point_hash(prefix: u64, replica: u32) -> u64 {
    fmix64(fnv1a(prefix, &replica.to_le_bytes()))
}

/// An immutable hash ring over a list of servers, built once per routing table.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// Point hashes, sorted ascending.
    hashes: Box<[u64]>,
    /// `owners[k]` is the server index of point `hashes[k]`.
    owners: Box<[u32]>,
    /// The indices of the servers that have points, ascending.
    members: Box<[u32]>,
}

impl Ring {
    /// `servers[i]` is (a stable identity of server i, e.g. "task-id@ip:port", its
    /// weight); weight 0 → no points. Each server gets `VNODES_PER_WEIGHT * weight`
    /// points after the weights are divided by their greatest common divisor, scaled
    /// down if the total would pass [`MAX_POINTS`]. Identities should be distinct:
    /// two servers with the same identity get the same points, and the lower index
    /// wins all of them while it is available.
    pub fn new(servers: &[(&[u8], u32)]) -> Ring {
        let g = servers.iter().fold(0u64, |g, &(_, w)| gcd(g, u64::from(w)));
        if g == 0 {
            return Ring::default();
        }
        let per_server = |w: u32| u128::from(u64::from(w) / g) * u128::from(VNODES_PER_WEIGHT);
        let total: u128 = servers.iter().map(|&(_, w)| per_server(w)).sum();
        let max = u128::from(MAX_POINTS);
        let count = |w: u32| -> u32 {
            let n = per_server(w);
            let n = if n == 0 || total <= max {
                n
            } else {
                (n * max / total).max(1)
            };
            u32::try_from(n).unwrap_or(u32::MAX)
        };

        let mut points: Vec<(u64, u32)> = Vec::new();
        let mut members = Vec::new();
        for (i, &(identity, weight)) in servers.iter().enumerate() {
            let Ok(index) = u32::try_from(i) else {
                break; // more than 4 billion servers: the rest get no points
            };
            let n = count(weight);
            if n == 0 {
                continue;
            }
            members.push(index);
            let prefix = fnv1a(FNV_OFFSET, identity);
            points.extend((0..n).map(|replica| (point_hash(prefix, replica), index)));
        }
        points.sort_unstable();
        Ring {
            hashes: points.iter().map(|&(h, _)| h).collect(),
            owners: points.iter().map(|&(_, s)| s).collect(),
            members: members.into_boxed_slice(),
        }
    }

    /// The server owning `key_hash`: the first point clockwise (the first with a hash
    /// `>= key_hash`, wrapping round) whose server `available(i)` says yes, walking
    /// on past unavailable servers' points; `None` when none is available.
    ///
    /// Does not allocate. One binary search and one `available` call when the owner
    /// is up; after 64 unavailable points it checks that some server is up at all
    /// (one call per server) before walking on, and it never walks more than once
    /// round.
    pub fn pick(&self, key_hash: u64, available: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.hashes.len();
        if n == 0 {
            return None;
        }
        let start = self.hashes.partition_point(|&h| h < key_hash);
        for step in 0..n {
            let mut k = start + step;
            if k >= n {
                k -= n;
            }
            let server = self.owners[k] as usize;
            if available(server) {
                return Some(server);
            }
            if step == WALK_BEFORE_CHECK && !self.members.iter().any(|&s| available(s as usize)) {
                return None;
            }
        }
        None
    }

    /// Whether the ring has no points (no server with a non-zero weight).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// How many points the ring has.
    pub fn point_count(&self) -> usize {
        self.hashes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const KEYS: usize = 10_000;

    fn keys() -> Vec<u64> {
        (0..KEYS)
            .map(|i| hash_bytes(format!("tenant-{i}").as_bytes()))
            .collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("task-{i:04}@10.0.{}.{}:50051", i / 200, i % 200 + 1))
            .collect()
    }

    fn ring(ids: &[String], weights: &[u32]) -> Ring {
        let servers: Vec<(&[u8], u32)> = ids
            .iter()
            .zip(weights)
            .map(|(id, &w)| (id.as_bytes(), w))
            .collect();
        Ring::new(&servers)
    }

    fn owners(ring: &Ring, keys: &[u64], up: impl Fn(usize) -> bool + Copy) -> Vec<usize> {
        keys.iter()
            .map(|&k| ring.pick(k, up).expect("a server is available"))
            .collect()
    }

    fn tally(owners: &[usize], n: usize) -> Vec<usize> {
        let mut t = vec![0; n];
        for &o in owners {
            t[o] += 1;
        }
        t
    }

    #[test]
    fn hash_is_stable_and_spreads() {
        // Fixed values: these must never change, or every deployed ring reshuffles.
        assert_eq!(hash_bytes(b""), fmix64(FNV_OFFSET));
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c); // FNV-1a 64 of "a"
        assert_eq!(hash_bytes(b"tenant-0"), hash_bytes(b"tenant-0"));
        assert_ne!(hash_bytes(b"tenant-1"), hash_bytes(b"tenant-2"));
        // Point hashes are hash_bytes of identity ++ replica (LE).
        let prefix = fnv1a(FNV_OFFSET, b"srv");
        assert_eq!(point_hash(prefix, 7), hash_bytes(b"srv\x07\0\0\0"));
        // Avalanche: neighbouring keys differ in about half their bits.
        let flips: u32 = (0..1_000u32)
            .map(|i| {
                let a = hash_bytes(format!("tenant-{i}").as_bytes());
                let b = hash_bytes(format!("tenant-{}", i + 1).as_bytes());
                (a ^ b).count_ones()
            })
            .sum();
        let mean = f64::from(flips) / 1_000.0;
        assert!((30.0..34.0).contains(&mean), "{mean}");
    }

    #[test]
    fn empty_rings() {
        assert!(Ring::new(&[]).is_empty());
        assert_eq!(Ring::new(&[]).pick(42, |_| true), None);
        let zero = Ring::new(&[(b"a".as_slice(), 0), (b"b".as_slice(), 0)]);
        assert!(zero.is_empty());
        assert_eq!(zero.pick(42, |_| true), None);
    }

    #[test]
    fn all_unavailable_is_none_and_bounded() {
        let ids = ids(50);
        let r = ring(&ids, &[1; 50]);
        let calls = Cell::new(0usize);
        for k in keys().iter().take(100) {
            let got = r.pick(*k, |_| {
                calls.set(calls.get() + 1);
                false
            });
            assert_eq!(got, None);
        }
        // Each pick: at most WALK_BEFORE_CHECK + 1 points, then one look per server.
        assert!(
            calls.get() <= 100 * (WALK_BEFORE_CHECK + 1 + 50),
            "{}",
            calls.get()
        );
    }

    #[test]
    fn weight_zero_server_gets_nothing() {
        let ids = ids(3);
        let r = ring(&ids, &[1, 0, 1]);
        assert_eq!(r.point_count(), 2 * VNODES_PER_WEIGHT as usize);
        let t = tally(&owners(&r, &keys(), |_| true), 3);
        assert_eq!(t[1], 0);
    }

    #[test]
    fn deterministic_and_rebuilds_identically() {
        let ids = ids(5);
        let keys = keys();
        let a = ring(&ids, &[1; 5]);
        let b = ring(&ids, &[1; 5]);
        let first = owners(&a, &keys, |_| true);
        assert_eq!(first, owners(&a, &keys, |_| true));
        assert_eq!(first, owners(&b, &keys, |_| true));
        // Listing the servers in another order changes indices, not ownership.
        let rev: Vec<String> = ids.iter().rev().cloned().collect();
        let c = ring(&rev, &[1; 5]);
        let reversed: Vec<usize> = owners(&c, &keys, |_| true).iter().map(|o| 4 - o).collect();
        assert_eq!(first, reversed);
    }

    #[test]
    fn equal_servers_are_balanced() {
        let r = ring(&ids(5), &[1; 5]);
        let t = tally(&owners(&r, &keys(), |_| true), 5);
        eprintln!("ring 5 equal servers, keys per server: {t:?}");
        for n in &t {
            assert!((1_500..=2_500).contains(n), "{t:?}");
        }
    }

    #[test]
    fn weights_are_respected() {
        let r = ring(&ids(2), &[3, 1]);
        let t = tally(&owners(&r, &keys(), |_| true), 2);
        let ratio = t[0] as f64 / t[1] as f64;
        eprintln!("ring weights 3:1, keys: {t:?}, ratio {ratio:.3}");
        assert!((2.4..=3.6).contains(&ratio), "{t:?}");
        // Common factors do not change the ring: 300:100 is 3:1.
        let same = ring(&ids(2), &[300, 100]);
        assert_eq!(same.point_count(), r.point_count());
        assert_eq!(
            owners(&same, &keys(), |_| true),
            owners(&r, &keys(), |_| true)
        );
    }

    #[test]
    fn huge_weights_are_capped() {
        let r = ring(&ids(4), &[u32::MAX, u32::MAX - 1, 1, 7]);
        assert!(
            r.point_count() as u64 <= MAX_POINTS + 4,
            "{}",
            r.point_count()
        );
        // Everyone with a non-zero weight keeps at least one point.
        let mut seen = [false; 4];
        for &o in r.owners.iter() {
            seen[o as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
        assert!(r.pick(12_345, |_| true).is_some());
    }

    #[test]
    fn adding_a_server_moves_keys_only_to_it() {
        let ids = ids(5);
        let keys = keys();
        let four = ring(&ids[..4], &[1; 4]);
        let five = ring(&ids, &[1; 5]);
        let before = owners(&four, &keys, |_| true);
        let after = owners(&five, &keys, |_| true);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                assert_eq!(*a, 4, "a key moved between old servers");
            }
        }
        let frac = moved as f64 / KEYS as f64;
        eprintln!("ring 4 -> 5 servers: {moved} of {KEYS} keys moved ({frac:.4}; ideal 0.2)");
        assert!(moved <= KEYS / 4, "{moved}");
        assert!(moved >= KEYS / 10, "{moved}");
    }

    #[test]
    fn unavailable_server_hands_only_its_keys_to_the_others() {
        let ids = ids(5);
        let keys = keys();
        let r = ring(&ids, &[1; 5]);
        let before = owners(&r, &keys, |_| true);
        let down = 2;
        let after = owners(&r, &keys, |i| i != down);
        let mut moved = vec![0; 5];
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(*a, down);
            if b != a {
                assert_eq!(*b, down, "a key of an available server moved");
                moved[*a] += 1;
            }
        }
        let total: usize = moved.iter().sum();
        eprintln!("ring server {down} of 5 down: {total} keys moved, to each: {moved:?}");
        assert_eq!(total, before.iter().filter(|&&o| o == down).count());
        // Spread over all the others, none getting the lion's share.
        for (i, m) in moved.iter().enumerate() {
            if i != down {
                assert!(*m > total / 10, "{moved:?}");
                assert!(*m < total / 2, "{moved:?}");
            }
        }
        // Same as a ring rebuilt without it.
        let without: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != down)
            .map(|(_, s)| s.clone())
            .collect();
        let rebuilt = ring(&without, &[1; 4]);
        let remap = |o: usize| if o >= down { o + 1 } else { o };
        let rebuilt_owners: Vec<usize> = owners(&rebuilt, &keys, |_| true)
            .into_iter()
            .map(remap)
            .collect();
        assert_eq!(after, rebuilt_owners);
    }

    #[test]
    fn mostly_unavailable_still_finds_the_survivor() {
        let ids = ids(200);
        let r = ring(&ids, &[1; 200]);
        for k in keys().iter().take(500) {
            assert_eq!(r.pick(*k, |i| i == 137), Some(137));
        }
    }
}
