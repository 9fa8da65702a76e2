//! The memory store's buckets in independently locked shards: a check locks one shard, and
//! making room in a full store looks at one shard at a time, never at the whole map.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One shard's buckets, by key hash.
pub(super) type Shard<V> = HashMap<u64, V, BuildHasherDefault<PreHashed>>;

/// How many keys a shard holds at most on average: the work of making room for one key is
/// bounded by it, whatever the store's bound.
const KEYS_PER_SHARD: usize = 256;

/// The most shards (a bound of 262,144 keys or more spreads over this many).
const MAX_SHARDS: usize = 1024;

/// Buckets of type `V` in a power-of-two number of shards, each behind its own lock and on its
/// own cache lines.
pub(super) struct Shards<V> {
    shards: Box<[Padded<V>]>,
    mask: usize,
}

#[repr(align(128))]
struct Padded<V>(Mutex<Shard<V>>);

impl<V> Shards<V> {
    /// Enough shards that a store bounded at `max_keys` holds about [`KEYS_PER_SHARD`] in each.
    pub(super) fn for_bound(max_keys: usize) -> Self {
        let n = (max_keys / KEYS_PER_SHARD)
            .next_power_of_two()
            .clamp(2, MAX_SHARDS);
        Self {
            shards: (0..n)
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            mask: n - 1,
        }
    }

    /// The number of shards.
    pub(super) fn count(&self) -> usize {
        self.shards.len()
    }

    /// Locks the shard of key hash `id`. The shard is picked by middle bits of the hash: the
    /// shard's own table uses the low bits (its slot) and the top seven (its control bytes).
    pub(super) fn lock(&self, id: u64) -> MutexGuard<'_, Shard<V>> {
        // Truncation intended: only the bits under the mask are used.
        #[allow(clippy::cast_possible_truncation)]
        let i = (id >> 32) as usize & self.mask;
        self.lock_shard(i)
    }

    /// Locks shard `i` (taken modulo the number of shards).
    pub(super) fn lock_shard(&self, i: usize) -> MutexGuard<'_, Shard<V>> {
        // A panic while holding a shard leaves whole buckets behind (each update is a plain
        // store of numbers): the data stays usable.
        self.shards[i & self.mask]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys held, shard by shard (not atomic across shards).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        (0..self.count()).map(|i| self.lock_shard(i).len()).sum()
    }
}

/// The map's keys are already uniform random 64-bit hashes: use them as they are.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; this path is never taken but must be correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_scale_with_the_bound_within_limits() {
        assert_eq!(Shards::<u8>::for_bound(1).count(), 2);
        assert_eq!(Shards::<u8>::for_bound(10_000).count(), 64);
        assert_eq!(Shards::<u8>::for_bound(100_000).count(), 512);
        assert_eq!(Shards::<u8>::for_bound(usize::MAX / 2).count(), MAX_SHARDS);
    }

    #[test]
    fn a_key_always_lands_in_one_shard() {
        let shards = Shards::<u32>::for_bound(10_000);
        for id in [0u64, 1, u64::MAX, 0xdead_beef_0000_0000, 42 << 32] {
            shards.lock(id).insert(id, 1);
            *shards.lock(id).get_mut(&id).unwrap() += 1;
            assert_eq!(shards.lock(id)[&id], 2);
        }
        assert_eq!(shards.len(), 5);
    }
}
