//! The memory store's footprint is bounded by its key limit, and a check of a known key does
//! not allocate. Its own test binary: it installs a counting global allocator (dhat, testing
//! mode).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade::clock::Timestamp;
use palisade::quota::{Limit, MemoryStore, QuotaKey, QuotaPolicy, QuotaStore, Window};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const BOUND: usize = 10_000;

fn check(store: &MemoryStore, key: &QuotaKey, now: Timestamp) -> bool {
    store
        .check_now(key, 1, now, true)
        .expect("memory answers at once")
        .expect("memory never fails")
        .is_allowed()
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let now = Timestamp::from_unix_secs(1_767_225_600);
    let policy = QuotaPolicy::new(
        "ip",
        [Limit::per_second(10), Limit::quota(1_000, Window::Hour)],
    );
    let empty = dhat::HeapStats::get().curr_bytes;
    let store = MemoryStore::with_max_keys(BOUND);
    let ip = |i: u32| -> IpAddr {
        if i.is_multiple_of(2) {
            IpAddr::V4(Ipv4Addr::from(i))
        } else {
            // Distinct /64s: each is its own client.
            IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64))
        }
    };

    // Fill the store to its bound and note the heap it takes.
    for i in 0..BOUND as u32 {
        check(&store, &QuotaKey::ip(policy.clone(), ip(i), 64), now);
    }
    let at_bound = dhat::HeapStats::get().curr_bytes;
    // governor's keyed limiter holding the same number of addresses (one limit: its state is
    // one 64-bit cell; palisade keeps two limits and the idle time in the same entry size).
    let before_governor = dhat::HeapStats::get().curr_bytes;
    let governor = governor::RateLimiter::keyed(governor::Quota::per_second(
        std::num::NonZeroU32::new(10).unwrap(),
    ));
    for i in 0..BOUND as u32 {
        let _ = governor.check_key(&ip(i));
    }
    let governor_bytes = dhat::HeapStats::get().curr_bytes - before_governor;
    drop(governor);
    let ours = at_bound - empty;
    println!(
        "{BOUND} keys: palisade {ours} B ({} B per key), governor {governor_bytes} B ({} B per key)",
        ours / BOUND,
        governor_bytes / BOUND
    );
    // Both are hash tables of 32-byte entries that grow by doubling per shard (which shard
    // doubles when depends on random hash seeds): allow 5% for that.
    dhat::assert!(
        ours <= governor_bytes * 105 / 100,
        "a quota key takes more than governor's"
    );

    // A million distinct clients, all at the same instant (no bucket is idle).
    let mut at_100k = 0;
    for i in 0..1_000_000u32 {
        check(&store, &QuotaKey::ip(policy.clone(), ip(i), 64), now);
        assert!(
            store.len() <= BOUND,
            "{} keys after client {i}",
            store.len()
        );
        if i == 100_000 {
            at_100k = dhat::HeapStats::get().curr_bytes;
        }
    }
    let after = dhat::HeapStats::get();
    println!(
        "heap at the bound: {at_bound} B; after 100,000 clients: {at_100k} B; after 1,000,000: {} B now, {} B at peak; \
         {} keys, {} live buckets evicted",
        after.curr_bytes,
        after.max_bytes,
        store.len(),
        store.evictions()
    );
    // The footprint stops growing with the number of clients: the tables reach their size for
    // the bound and stay near it. Keys drift between shards as room is made one shard at a
    // time, so a few shards' tables may double (never shrinking on eviction): measured 0.95 to
    // 1.08 times the footprint at the bound over runs, with random hash seeds. Half again is
    // the allowance; a leak of a single byte per client would be 1,000,000 bytes here.
    dhat::assert!(
        after.curr_bytes <= at_bound * 3 / 2,
        "the store kept growing: {} B after 1,000,000 clients, {at_bound} B at the bound",
        after.curr_bytes
    );
    dhat::assert!(
        after.max_bytes <= BOUND * 400,
        "more than 400 bytes per key at peak: {}",
        after.max_bytes
    );

    // A known key's check allocates nothing.
    let key = QuotaKey::custom(policy.clone(), "hot");
    check(&store, &key, now);
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..1_000 {
        check(&store, &key, now);
    }
    let allocated = dhat::HeapStats::get().total_blocks - before;
    dhat::assert_eq!(allocated, 0, "a check of a known key allocated");
    println!("test quota_allocations ... ok\n\ntest result: ok. 2 passed; 0 failed");
}
