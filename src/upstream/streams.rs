//! Streams of one connection by id: a hash map with a hash made for stream ids.
//!
//! Ids are small odd (or even) integers that grow by two; SipHash would spend more
//! time on one than the rest of a lookup. A multiplicative (Fibonacci) hash spreads
//! them over the table's buckets, including the top bits the table's control bytes
//! use.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes one `u32` by multiplying it with 2^64 / φ.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used for ids; anything else still hashes.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A connection's streams, by id.
#[derive(Debug)]
pub struct StreamMap<T> {
    map: HashMap<u32, T, BuildHasherDefault<IdHasher>>,
}

impl<T> Default for StreamMap<T> {
    fn default() -> Self {
        StreamMap {
            map: HashMap::default(),
        }
    }
}

impl<T> StreamMap<T> {
    pub fn insert(&mut self, id: u32, v: T) {
        self.map.insert(id, v);
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.map.get_mut(&id)
    }

    pub fn get(&self, id: u32) -> Option<&T> {
        self.map.get(&id)
    }

    pub fn contains(&self, id: u32) -> bool {
        self.map.contains_key(&id)
    }

    pub fn remove(&mut self, id: u32) -> Option<T> {
        let v = self.map.remove(&id);
        if self.map.is_empty() && self.map.capacity() > 64 {
            // A burst is over: give its table back.
            self.map = HashMap::default();
        }
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.map.iter_mut().map(|(k, v)| (*k, v))
    }

    pub fn ids(&self) -> Vec<u32> {
        self.map.keys().copied().collect()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = (u32, T)> + '_ {
        self.map.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_and_out() {
        let mut m = StreamMap::default();
        for id in (1..2000u32).step_by(2) {
            m.insert(id, id * 10);
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(999), Some(&9990));
        assert_eq!(m.remove(1), Some(10));
        assert!(!m.contains(1));
        assert_eq!(m.drain().count(), 999);
        assert!(m.is_empty());
    }
}
