use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use palisade::clock::{Clock, SystemClock};
use palisade::quota::{Limit, MemoryStore, QuotaKey, QuotaPolicy, QuotaStore};
fn main() {
    let policy = QuotaPolicy::new("bench", [Limit::per_second(1_000_000)]).unwrap();
    let store = MemoryStore::new();
    let hot = QuotaKey::ip(policy.clone(), IpAddr::V4(Ipv4Addr::new(10,0,0,1)), 32);
    let mut n = 0;
    for _ in 0..200_000 {
        let v = store.check_now(black_box(&hot), 1, SystemClock.now(), true);
        n += usize::from(v.unwrap().unwrap().is_allowed());
    }
    println!("{n}");
}
