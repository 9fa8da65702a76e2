//! [`MemoryStore`]: counters in this process, on `dashmap`, with a hard bound on keys.

use std::future::{Future, ready};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::limit::{Limit, MAX_LIMITS, Verdict, apply, give_back};
use super::policy::QuotaKey;
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
/// - **No global lock** on the hot path: `dashmap` shards the keys; a check of a known key
///   locks one shard for a few dozen nanoseconds and allocates nothing.
/// - **Bounded**: at most `max_keys` buckets (default [`DEFAULT_MAX_KEYS`], 32 bytes each for
///   policies of one or two limits, 48 for wider ones, plus the hash tables' slack: as small
///   as governor's keyed state for an IP address).
///   A bucket whose state equals a fresh one (its rate refilled, its windows over) is idle and
///   may be dropped without changing any answer; when the store is full, idle buckets go
///   first. If every bucket is still live (a flood of distinct keys) a random eighth of them
///   is dropped, which forgives those callers their recent use: memory stays bounded and the
///   [`evictions`](Self::evictions) counter and a warning tell the operator to raise the bound.
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
type Map<const N: usize> = DashMap<u64, Bucket<N>, BuildHasherDefault<PreHashed>>;

/// The widest policy `narrow` holds.
const NARROW: usize = 2;

struct Inner {
    narrow: Map<NARROW>,
    wide: Map<MAX_LIMITS>,
    seed: RandomState,
    max_keys: usize,
    len: AtomicUsize,
    sweep: Mutex<u64>,
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
                narrow: DashMap::with_capacity_and_hasher(
                    max_keys.min(4_096),
                    BuildHasherDefault::default(),
                ),
                wide: DashMap::with_hasher(BuildHasherDefault::default()),
                seed: RandomState::new(),
                max_keys,
                len: AtomicUsize::new(0),
                sweep: Mutex::new(0),
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
        let now = now.as_unix_nanos();
        let before = self.len();
        let len = &self.inner.len;
        let idle = |idle_at: u64| {
            let keep = idle_at > now;
            if !keep {
                len.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        };
        self.inner.narrow.retain(|_, b| idle(b.idle_at));
        self.inner.wide.retain(|_, b| idle(b.idle_at));
        before.saturating_sub(self.len())
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
            if let Some(mut bucket) = self.inner.narrow.get_mut(&id) {
                bucket.idle_at = give_back(limits, &mut bucket.cells, now, cost).as_unix_nanos();
            }
        } else if let Some(mut bucket) = self.inner.wide.get_mut(&id) {
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
        if let Some(mut bucket) = map.get_mut(&id) {
            return run(limits, &mut bucket, now, cost, consume);
        }
        if !consume {
            // A peek at an unknown key: answer as a fresh bucket, store nothing.
            let mut fresh = Bucket::<N>::FRESH;
            return run(limits, &mut fresh, now, cost, false);
        }
        self.reserve(now);
        match map.entry(id) {
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

    fn make_room(&self, now: Timestamp) {
        let inner = &*self.inner;
        // One sweeper at a time; the others wait here and find room when it is done.
        let mut round = inner.sweep.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.len.load(Ordering::Relaxed) < inner.max_keys {
            return;
        }
        let freed = self.sweep(now);
        // Keep an eighth of the bound free so a full store does not sweep on every new key.
        let target = inner.max_keys - inner.max_keys / 8;
        let mut evicted = 0u64;
        while inner.len.load(Ordering::Relaxed) >= target.max(1) {
            // Every bucket is live: drop the eighth whose (random) id falls in this round's
            // class. Eight rounds empty the store, so this ends.
            let class = (*round % 8) as u8;
            *round = round.wrapping_add(1);
            let mut spare = |id: u64| {
                let keep = (id as u8) & 7 != class;
                if !keep {
                    inner.len.fetch_sub(1, Ordering::Relaxed);
                    evicted += 1;
                }
                keep
            };
            inner.narrow.retain(|id, _| spare(*id));
            inner.wide.retain(|id, _| spare(*id));
        }
        if evicted > 0 {
            inner.evictions.fetch_add(evicted, Ordering::Relaxed);
            tracing::warn!(
                layer = "quota",
                evicted,
                idle_dropped = freed,
                max_keys = inner.max_keys,
                "quota memory store is full of live buckets: dropped some (raise max_keys)"
            );
        }
    }
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

/// The map's keys are already uniform random 64-bit hashes: use them as they are.
#[derive(Default)]
struct PreHashed(u64);

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
        assert_eq!(store.len(), 2);
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
}
