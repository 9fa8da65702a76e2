//! The bounded cache of checked tokens, by a keyed hash of their bytes.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use crate::clock::Timestamp;

/// A bounded map from a token (by a 128-bit keyed hash, never the token itself) to what
/// checking it concluded, each entry valid until a given instant. It is a `quick_cache` cache
/// (S3-FIFO-like eviction, sharded locks): full, an insert evicts in O(1), never a scan; an
/// entry found expired is dropped on lookup.
pub(crate) struct TokenCache<V> {
    map: quick_cache::sync::Cache<u128, (V, Timestamp), quick_cache::UnitWeighter, BuildPrehashed>,
    /// The `cache` label of its lookups in the metrics.
    name: &'static str,
    capacity: usize,
    hasher: siphasher::sip128::SipHasher13,
}

impl<V: Clone> fmt::Debug for TokenCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl<V: Clone> TokenCache<V> {
    pub(crate) fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            // The table grows as entries come (sized for the capacity, a default cache would
            // take megabytes before its first token).
            map: quick_cache::sync::Cache::with(
                capacity.min(1024),
                capacity as u64,
                quick_cache::UnitWeighter,
                BuildPrehashed,
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            name,
            capacity,
            hasher: random_sip128(),
        }
    }

    /// The cache key of `token`: 128-bit SipHash-1-3 under a key random per process, so a
    /// client can neither aim a token at another token's entry nor tell two apart by timing.
    pub(crate) fn key(&self, token: &[u8]) -> u128 {
        self.hasher.hash(token).as_u128()
    }

    /// The cached answer for `key` if it is still valid at `now`.
    pub(crate) fn get(&self, key: u128, now: Timestamp) -> Option<V> {
        let Some((value, until)) = self.map.get(&key) else {
            crate::telemetry::cache_lookup(self.name, false);
            return None;
        };
        if until > now {
            crate::telemetry::cache_lookup(self.name, true);
            return Some(value);
        }
        // Expired: dropped unless a fresh answer replaced it meanwhile.
        self.map.remove_if(&key, |(_, until)| *until <= now);
        crate::telemetry::cache_lookup(self.name, false);
        None
    }

    /// Remembers `value` for `key` until `until`.
    pub(crate) fn insert(&self, key: u128, value: V, until: Timestamp, now: Timestamp) {
        if until <= now || self.capacity == 0 {
            return;
        }
        self.map.insert(key, (value, until));
    }

    /// Forgets everything (a signing key was withdrawn).
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        self.map.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// A SipHash-1-3 (128-bit) keyed from the OS generator; from the standard library's
/// `RandomState` keys if the OS generator fails (they are random per process too).
fn random_sip128() -> siphasher::sip128::SipHasher13 {
    let mut key = [0u8; 16];
    if getrandom::fill(&mut key).is_err() {
        let a = RandomState::new().hash_one(0u8);
        let b = RandomState::new().hash_one(1u8);
        key[..8].copy_from_slice(&a.to_le_bytes());
        key[8..].copy_from_slice(&b.to_le_bytes());
    }
    siphasher::sip128::SipHasher13::new_with_key(&key)
}

/// The keys are keyed hashes already: the map uses their low bits as they are.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BuildPrehashed;

#[derive(Debug, Default)]
pub(crate) struct Prehashed(u64);

impl BuildHasher for BuildPrehashed {
    type Hasher = Prehashed;
    fn build_hasher(&self) -> Prehashed {
        Prehashed(0)
    }
}

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        // Truncation intended: the low half is already uniformly distributed.
        #[allow(clippy::cast_possible_truncation)]
        {
            self.0 = n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_end_at_their_instant_and_capacity_holds() {
        let cache = TokenCache::new("test", 16);
        let t = Timestamp::from_unix_nanos(1_000);
        let k = cache.key(b"token");
        assert_ne!(k, cache.key(b"token2"));
        cache.insert(k, 1, Timestamp::from_unix_nanos(2_000), t);
        assert_eq!(cache.get(k, t), Some(1));
        assert_eq!(cache.get(k, Timestamp::from_unix_nanos(2_000)), None);
        for i in 0..100 {
            let k = cache.key(i.to_string().as_bytes());
            cache.insert(k, i, Timestamp::from_unix_nanos(5_000), t);
            assert!(cache.len() <= 16);
        }
    }

    #[test]
    fn a_full_cache_admits_new_tokens_within_its_capacity() {
        // Every entry expires at its own instant and the cache is full: each insert evicts
        // one entry (in O(1), no scan) and the new token is served from then on.
        let capacity = 1_000;
        let cache = TokenCache::new("test", capacity);
        let at = |n: u64| Timestamp::from_unix_nanos(1_000 + n);
        for i in 0..capacity as u64 {
            cache.insert(cache.key(&i.to_be_bytes()), i, at(i + 1), at(0));
        }
        for i in 0..10 * capacity as u64 {
            let now = at(i + 1);
            let key = cache.key(&(capacity as u64 + i).to_be_bytes());
            cache.insert(key, i, at(1_000_000), now);
            assert_eq!(cache.get(key, now), Some(i));
            assert!(cache.len() <= capacity, "{} entries", cache.len());
        }
    }

    #[test]
    fn a_flood_of_one_time_tokens_does_not_evict_a_token_in_use() {
        // A client sending a new token on every request (a scan) must not push out the
        // token that a busy client presents again and again.
        let cache = TokenCache::new("test", 1_000);
        let (now, later) = (Timestamp::from_unix_nanos(1), Timestamp::from_unix_nanos(9));
        let hot = cache.key(b"the busy client's token");
        cache.insert(hot, u64::MAX, later, now);
        for i in 0..20_000u64 {
            cache.insert(cache.key(&i.to_be_bytes()), i, later, now);
            if i % 100 == 0 {
                assert_eq!(cache.get(hot, now), Some(u64::MAX), "evicted after {i}");
            }
        }
    }
}
