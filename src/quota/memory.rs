//! [`MemoryStore`]: counters in this process, in locked shards, with a hard bound on keys.

use std::collections::hash_map::Entry;
use std::future::{Future, ready};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::limit::{Limit, MAX_LIMITS, Verdict, apply, give_back};
use super::policy::QuotaKey;
use super::shards::Shards;
use super::store::{QuotaStore, StoreStats};
use crate::clock::Timestamp;
use crate::error::StoreError;

/// The default bound on keys: at most about 11 MB (an entry is 32 bytes for a policy of one or
/// two limits, 48 for a wider one, about 110 at worst with the hash tables' slack;
/// `tests/quota_allocations.rs` measures it beside governor).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Counters in memory, for one process (or as the local fallback of a shared store).
///
/// - **Exact under concurrency**: a key's check and consume happen under its shard's lock, so
///   no interleaving admits more than the limits allow.
/// - **No global lock** on the hot path: the keys are spread over shards, each behind its own
///   lock; a check of a known key locks one shard for a few dozen nanoseconds and allocates
///   nothing.
/// - **Bounded**: at most `max_keys` buckets (default [`DEFAULT_MAX_KEYS`], 32 bytes each for
///   policies of one or two limits, 48 for wider ones, plus the hash tables' slack: as small
///   as governor's keyed state for an IP address).
///   A bucket whose state equals a fresh one (its rate refilled, its windows over) is idle and
///   may be dropped without changing any answer. When the store is full, a new key makes room
///   in the next few shards in turn (about 256 keys each, whatever the bound: no request
///   pays for the whole map): idle buckets go first; if every bucket there is still live (a
///   flood of distinct keys) a random eighth of one shard is dropped, which forgives those
///   callers their recent use. Memory stays bounded, and the [`evictions`](Self::evictions)
///   counter and a warning tell the operator to raise the bound.
///
/// Keys are stored as 64-bit SipHash values under a per-process random seed, so a bucket's size
/// does not depend on the caller's identity and no identity is kept in memory. Two callers
/// share a bucket only if their hashes collide: about one chance in 36 million with a million
/// keys, and not something a caller can aim for without the seed.
///
/// Cloning shares the counters.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

/// Buckets by width: a policy of one or two limits (most of them) keeps its key in `narrow`,
/// 32 bytes an entry (what governor's keyed state takes for an IP address), a wider one in
/// `wide`. A key's policy is part of its hash, so a key lives in one of them only.
type Map<const N: usize> = Shards<Bucket<N>>;

/// The widest policy `narrow` holds.
const NARROW: usize = 2;

struct Inner {
    narrow: Map<NARROW>,
    wide: Map<MAX_LIMITS>,
    seed: RandomState,
    max_keys: usize,
    len: AtomicUsize,
    /// The next shard to make room in, and (above the shard bits) the round: held by one
    /// request at a time.
    cursor: Mutex<u64>,
    evictions: AtomicU64,
}

struct Bucket<const N: usize> {
    /// When the state becomes equal to a fresh bucket's (Unix nanoseconds).
    idle_at: u64,
    cells: [u64; N],
}

impl<const N: usize> Bucket<N> {
    const FRESH: Self = Self {
        idle_at: 0,
        cells: [0; N],
    };
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_KEYS`] keys.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// A store holding at most `max_keys` keys (at least 1).
    #[must_use]
    pub fn with_max_keys(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        Self {
            inner: Arc::new(Inner {
                narrow: Shards::for_bound(max_keys),
                wide: Shards::for_bound(max_keys),
                seed: RandomState::new(),
                max_keys,
                len: AtomicUsize::new(0),
                cursor: Mutex::new(0),
                evictions: AtomicU64::new(0),
            }),
        }
    }

    /// The number of keys held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on keys.
    #[must_use]
    pub fn max_keys(&self) -> usize {
        self.inner.max_keys
    }

    /// How many live buckets were dropped because the store was full (each one forgave a
    /// caller's recent use). Non-zero means `max_keys` is too small for the traffic.
    #[must_use]
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.load(Ordering::Relaxed)
    }

    /// Drops every bucket that is idle at `now` (its state equal to a fresh one). The store
    /// does this by itself when full; hosts may also call it from a timer to return memory.
    pub fn sweep(&self, now: Timestamp) -> usize {
        (0..self.inner.narrow.count())
            .map(|i| self.sweep_shard(i, now))
            .sum()
    }

    /// Drops the idle buckets of shard `i` (of both widths); returns how many.
    fn sweep_shard(&self, i: usize, now: Timestamp) -> usize {
        let now = now.as_unix_nanos();
        let inner = &*self.inner;
        let mut dropped = retain(&mut inner.narrow.lock_shard(i), |_, b| b.idle_at > now);
        dropped += retain(&mut inner.wide.lock_shard(i), |_, b| b.idle_at > now);
        inner.len.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// Drops the buckets of shard `i` whose (random) id falls in `class` of eight, live or
    /// not; returns how many.
    fn evict_shard(&self, i: usize, class: u8) -> usize {
        let inner = &*self.inner;
        // Truncation intended: the low three bits pick the class.
        #[allow(clippy::cast_possible_truncation)]
        let spare = |id: &u64| (*id as u8) & 7 != class;
        let mut dropped = retain(&mut inner.narrow.lock_shard(i), |id, _| spare(id));
        dropped += retain(&mut inner.wide.lock_shard(i), |id, _| spare(id));
        inner.len.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    fn hash(&self, key: &QuotaKey) -> u64 {
        self.inner.seed.hash_one(key)
    }

    /// Checks `cost` against `limits` for `key`: the synchronous core of [`QuotaStore::check`],
    /// also used with scaled-down limits by a shared store's local fallback.
    pub(crate) fn check_limits(
        &self,
        key: &QuotaKey,
        limits: &[Limit],
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Verdict {
        let id = self.hash(key);
        if limits.len() <= NARROW {
            self.check_in(&self.inner.narrow, id, limits, cost, now, consume)
        } else {
            self.check_in(&self.inner.wide, id, limits, cost, now, consume)
        }
    }

    /// Gives back `cost` units a check at `now` took from `key` (nothing if the key was
    /// evicted since: a fresh key owes nothing).
    pub(crate) fn refund_limits(
        &self,
        key: &QuotaKey,
        limits: &[Limit],
        cost: u64,
        now: Timestamp,
    ) {
        let id = self.hash(key);
        if limits.len() <= NARROW {
            if let Some(bucket) = self.inner.narrow.lock(id).get_mut(&id) {
                bucket.idle_at = give_back(limits, &mut bucket.cells, now, cost).as_unix_nanos();
            }
        } else if let Some(bucket) = self.inner.wide.lock(id).get_mut(&id) {
            bucket.idle_at = give_back(limits, &mut bucket.cells, now, cost).as_unix_nanos();
        }
    }

    fn check_in<const N: usize>(
        &self,
        map: &Map<N>,
        id: u64,
        limits: &[Limit],
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Verdict {
        if let Some(bucket) = map.lock(id).get_mut(&id) {
            return run(limits, bucket, now, cost, consume);
        }
        if !consume {
            // A peek at an unknown key: answer as a fresh bucket, store nothing.
            let mut fresh = Bucket::<N>::FRESH;
            return run(limits, &mut fresh, now, cost, false);
        }
        self.reserve(now);
        match map.lock(id).entry(id) {
            Entry::Occupied(mut o) => {
                // Another check inserted it first: give the reservation back.
                self.inner.len.fetch_sub(1, Ordering::Relaxed);
                run(limits, o.get_mut(), now, cost, consume)
            }
            Entry::Vacant(v) => {
                let mut bucket = Bucket::<N>::FRESH;
                let verdict = run(limits, &mut bucket, now, cost, consume);
                v.insert(bucket);
                verdict
            }
        }
    }

    /// Reserves room for one more key, making room when the store is full. Never holds a shard
    /// lock while sweeping.
    fn reserve(&self, now: Timestamp) {
        let inner = &*self.inner;
        loop {
            let n = inner.len.load(Ordering::Relaxed);
            if n >= inner.max_keys {
                self.make_room(now);
                continue;
            }
            if inner
                .len
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Frees at least one bucket's room, one shard at a time from the cursor: idle buckets
    /// in up to [`IDLE_SHARDS`] shards, then, if none was idle, an eighth of one shard.
    fn make_room(&self, now: Timestamp) {
        let inner = &*self.inner;
        // One request makes room at a time; the others wait here and find room when it is
        // done.
        let mut cursor = inner.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let shards = inner.narrow.count() as u64;
        let (mut idle, mut evicted, mut live_shards) = (0, 0, 0);
        while inner.len.load(Ordering::Relaxed) >= inner.max_keys {
            // Truncation intended: the index is taken modulo the (power-of-two) shard count.
            #[allow(clippy::cast_possible_truncation)]
            let i = *cursor as usize;
            *cursor = cursor.wrapping_add(1);
            let freed = self.sweep_shard(i, now);
            idle += freed;
            live_shards = if freed > 0 { 0 } else { live_shards + 1 };
            if live_shards < IDLE_SHARDS {
                continue;
            }
            // Every bucket of the last shards was live: drop the eighth of this shard whose
            // id falls in this pass's class (the class moves on with each pass over the
            // shards, so every bucket's class comes up within eight passes, and this ends).
            #[allow(clippy::cast_possible_truncation)]
            let class = ((*cursor / shards) % 8) as u8;
            evicted += self.evict_shard(i, class);
        }
        if evicted > 0 {
            inner.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
            tracing::warn!(
                layer = "quota",
                evicted,
                idle_dropped = idle,
                max_keys = inner.max_keys,
                "quota memory store is full of live buckets: dropped some (raise max_keys)"
            );
        }
    }
}

/// How many shards a full store looks in for idle buckets before it drops live ones.
const IDLE_SHARDS: usize = 4;

/// `HashMap::retain` that reports how many entries it dropped. A shard that dropped some is
/// moved into a fresh table: removal leaves markers behind in a hash table that count as used
/// until it is rebuilt, and a table that keeps losing and gaining keys would otherwise double
/// its size again and again to make room.
fn retain<V>(shard: &mut super::shards::Shard<V>, keep: impl FnMut(&u64, &mut V) -> bool) -> usize {
    let before = shard.len();
    shard.retain(keep);
    let dropped = before - shard.len();
    if dropped > 0 {
        *shard = std::mem::take(shard).into_iter().collect();
    }
    dropped
}

fn run<const N: usize>(
    limits: &[Limit],
    bucket: &mut Bucket<N>,
    now: Timestamp,
    cost: u64,
    consume: bool,
) -> Verdict {
    let (verdict, idle_at) = apply(limits, &mut bucket.cells, now, cost, consume);
    bucket.idle_at = idle_at.as_unix_nanos();
    verdict
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("max_keys", &self.inner.max_keys)
            .field("evictions", &self.evictions())
            .finish()
    }
}

impl QuotaStore for MemoryStore {
    fn check(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> impl Future<Output = Result<Verdict, StoreError>> + Send {
        if let Err(e) = key.policy().usable() {
            return ready(Err(e));
        }
        ready(Ok(self.check_limits(
            key,
            key.policy().limits(),
            cost,
            now,
            consume,
        )))
    }

    fn check_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Option<Result<Verdict, StoreError>> {
        if let Err(e) = key.policy().usable() {
            return Some(Err(e));
        }
        Some(Ok(self.check_limits(
            key,
            key.policy().limits(),
            cost,
            now,
            consume,
        )))
    }

    fn refund(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.refund_now(key, cost, now).unwrap_or(Ok(())))
    }

    fn refund_now(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
    ) -> Option<Result<(), StoreError>> {
        self.refund_limits(key, key.policy().limits(), cost, now);
        Some(Ok(()))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            keys: Some(self.len()),
            max_keys: Some(self.max_keys()),
            evictions: Some(self.evictions()),
            ..StoreStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::quota::{QuotaPolicy, Window};

    fn now() -> Timestamp {
        Timestamp::from_unix_secs(1_767_225_600)
    }

    #[test]
    fn eight_threads_on_one_key_admit_exactly_the_limit() {
        let store = MemoryStore::new();
        let policy = QuotaPolicy::new("hot", [Limit::quota(10_000, Window::Day)]);
        let key = QuotaKey::custom(policy, "shared");
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..5_000 {
                        if store
                            .check_limits(&key, key.policy().limits(), 1, now(), true)
                            .is_allowed()
                        {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        // 40,000 attempts, 10,000 admitted: never one more.
        assert_eq!(admitted.load(Ordering::Relaxed), 10_000);
    }

    #[test]
    fn eight_threads_on_one_rate_admit_exactly_the_burst() {
        let store = MemoryStore::new();
        let policy = QuotaPolicy::new("burst", [Limit::per_hour(1).burst(777)]);
        let key = QuotaKey::custom(policy, "shared");
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        if store
                            .check_limits(&key, key.policy().limits(), 1, now(), true)
                            .is_allowed()
                        {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 777);
    }

    fn ip_key(policy: &QuotaPolicy, i: u32) -> QuotaKey {
        QuotaKey::ip(policy.clone(), IpAddr::V4(Ipv4Addr::from(i)), 32)
    }

    #[test]
    fn a_million_distinct_clients_stay_within_the_bound() {
        let store = MemoryStore::with_max_keys(10_000);
        let policy = QuotaPolicy::new("ip", [Limit::per_minute(10)]);
        // No time passes: every bucket stays live, so room comes from eviction.
        for i in 0..1_000_000u32 {
            assert!(
                store
                    .check_limits(&ip_key(&policy, i), policy.limits(), 1, now(), true)
                    .is_allowed()
            );
            assert!(store.len() <= 10_000);
        }
        assert!(store.evictions() > 0);
        assert_eq!(
            store.inner.narrow.len() + store.inner.wide.len(),
            store.len()
        );
    }

    #[test]
    fn narrow_and_wide_policies_share_one_bound_and_each_is_enforced() {
        let store = MemoryStore::with_max_keys(1_000);
        let narrow = QuotaPolicy::new(
            "n",
            [
                Limit::per_minute(3).named("minute"),
                Limit::per_hour(100).named("hour"),
            ],
        );
        let wide = QuotaPolicy::new(
            "w",
            [
                Limit::per_minute(100).named("minute"),
                Limit::per_hour(2).named("hour"),
                Limit::quota(1_000, Window::Day).named("day"),
            ],
        );
        let admitted = |policy: &QuotaPolicy, i: u32| {
            (0..10)
                .filter(|_| {
                    let key = ip_key(policy, i);
                    store
                        .check_limits(&key, policy.limits(), 1, now(), true)
                        .is_allowed()
                })
                .count()
        };
        assert_eq!(
            admitted(&narrow, 1),
            3,
            "the per-minute limit of a two-limit policy"
        );
        assert_eq!(
            admitted(&wide, 1),
            2,
            "the second limit of a three-limit policy"
        );
        assert_eq!((store.inner.narrow.len(), store.inner.wide.len()), (1, 1));
        for i in 2..3_000 {
            admitted(if i % 2 == 0 { &narrow } else { &wide }, i);
            assert!(store.len() <= 1_000);
        }
        assert_eq!(
            store.inner.narrow.len() + store.inner.wide.len(),
            store.len()
        );
        assert!(
            store.inner.wide.len() > 100,
            "wide keys are evicted, not starved"
        );
        // Everything is idle a day later.
        let held = store.len();
        let later = Timestamp::from_unix_secs(1_767_225_600 + 2 * 86_400);
        assert_eq!(store.sweep(later), held);
        assert!(store.is_empty());
        assert_eq!((store.inner.narrow.len(), store.inner.wide.len()), (0, 0));
    }

    #[test]
    fn idle_buckets_go_first_and_live_ones_stay() {
        let store = MemoryStore::with_max_keys(100);
        let policy = QuotaPolicy::new("ip", [Limit::per_second(1)]);
        let hot = QuotaKey::custom(policy.clone(), "hot");
        for i in 0..99 {
            store.check_limits(&ip_key(&policy, i), policy.limits(), 1, now(), true);
        }
        // 2s later the 99 are idle (their one-second rate refilled); "hot" is used now.
        let later = now().saturating_add(Duration::from_secs(2));
        assert!(
            store
                .check_limits(&hot, policy.limits(), 1, later, true)
                .is_allowed()
        );
        store.check_limits(&ip_key(&policy, 1_000), policy.limits(), 1, later, true);
        assert_eq!(store.evictions(), 0, "only idle buckets were dropped");
        assert!(store.len() < 100, "room was made");
        assert!(
            !store
                .check_limits(&hot, policy.limits(), 1, later, true)
                .is_allowed()
        );
    }

    #[test]
    fn peeking_an_unknown_key_stores_nothing() {
        let store = MemoryStore::new();
        let policy = QuotaPolicy::new("p", [Limit::per_second(1)]);
        let v = store.check_limits(&ip_key(&policy, 1), policy.limits(), 1, now(), false);
        assert!(v.is_allowed());
        assert!(store.is_empty());
    }

    #[test]
    fn a_bound_of_one_still_works() {
        let store = MemoryStore::with_max_keys(1);
        let policy = QuotaPolicy::new("p", [Limit::per_second(1)]);
        for i in 0..10 {
            assert!(
                store
                    .check_limits(&ip_key(&policy, i), policy.limits(), 1, now(), true)
                    .is_allowed()
            );
            assert_eq!(store.len(), 1);
        }
    }

    #[test]
    fn a_full_store_makes_room_in_a_few_shards_not_the_whole_map() {
        let store = MemoryStore::with_max_keys(100_000);
        let policy = QuotaPolicy::new("ip", [Limit::per_second(1)]);
        for i in 0..100_000 {
            store.check_limits(&ip_key(&policy, i), policy.limits(), 1, now(), true);
        }
        assert_eq!(store.len(), 100_000);
        // All live: one new key drops an eighth of one shard (about 200 keys), not an eighth
        // of the store (12,500).
        store.check_limits(&ip_key(&policy, 100_000), policy.limits(), 1, now(), true);
        let evicted = store.evictions();
        assert!((1..200).contains(&evicted), "{evicted}");
        // All idle later: one new key sweeps a shard (about 200 keys), not the store.
        let later = now().saturating_add(Duration::from_secs(2));
        store.check_limits(&ip_key(&policy, 200_000), policy.limits(), 1, later, true);
        assert!(store.len() > 99_000, "{}", store.len());
        assert_eq!(store.evictions(), evicted, "idle ones went first");
        let held = store.len();
        assert_eq!(store.sweep(later), held - 1, "all but the new key");
    }
}
