//! One quota check: palisade's `MemoryStore` next to `governor`'s keyed limiter (on a hot key
//! and spread over 100,000 client addresses), the whole layer next to `tower_governor` in an
//! axum router, and one check on `RedisStore` over loopback (when `redis-server` is
//! installed), in the same run.
//!
//! Run with: `cargo bench --bench quota --features redis`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use http::Request;
use palisade::clock::{Clock, SystemClock};
use palisade::quota::{
    KeyBy, Limit, MemoryStore, QuotaKey, QuotaLayer, QuotaPolicy, QuotaRule, QuotaStore,
    RateLimitHeaders,
};
use tower::ServiceExt;

const SPREAD: u32 = 100_000;

/// A limit no benchmark exhausts: a million per second, a burst of a million.
fn policy() -> QuotaPolicy {
    QuotaPolicy::new("bench", [Limit::per_second(1_000_000)])
}

fn governor_quota() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000).unwrap())
}

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn stores(c: &mut Criterion) {
    let mut g = c.benchmark_group("quota/check");
    let policy = policy();

    let store = MemoryStore::new();
    let hot = QuotaKey::ip(policy.clone(), ip(1), 32);
    g.bench_function("palisade MemoryStore, hot key", |b| {
        b.iter(|| {
            let v = store.check_now(black_box(&hot), 1, SystemClock.now(), true);
            black_box(v.unwrap().unwrap().is_allowed())
        });
    });
    // The same check with the clock read outside the timing (criterion's batched setup), to
    // separate the store's work from the cost of `SystemTime::now`.
    g.bench_function("palisade MemoryStore, hot key, clock read untimed", |b| {
        b.iter_batched(
            || SystemClock.now(),
            |now| {
                let v = store.check_now(black_box(&hot), 1, now, true);
                black_box(v.unwrap().unwrap().is_allowed())
            },
            criterion::BatchSize::SmallInput,
        );
    });
    g.bench_function("SystemClock::now alone", |b| {
        b.iter(|| black_box(SystemClock.now()));
    });
    let limiter = RateLimiter::keyed(governor_quota());
    let hot_ip = ip(1);
    g.bench_function("governor keyed (dashmap), hot key", |b| {
        b.iter(|| black_box(limiter.check_key(black_box(&hot_ip)).is_ok()));
    });

    let store = MemoryStore::with_max_keys(2 * SPREAD as usize);
    let mut i = 0;
    g.bench_function("palisade MemoryStore, 100k keys", |b| {
        b.iter(|| {
            i = (i + 1) % SPREAD;
            let key = QuotaKey::ip(policy.clone(), ip(i), 32);
            let v = store.check_now(&key, 1, SystemClock.now(), true);
            black_box(v.unwrap().unwrap().is_allowed())
        });
    });
    let limiter = RateLimiter::keyed(governor_quota());
    let mut i = 0;
    g.bench_function("governor keyed (dashmap), 100k keys", |b| {
        b.iter(|| {
            i = (i + 1) % SPREAD;
            black_box(limiter.check_key(&ip(i)).is_ok())
        });
    });
    g.finish();
}

fn request(peer: SocketAddr) -> Request<Body> {
    let mut req = Request::get("/v1/items").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("quota/layer");
    let peer: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let app = || Router::new().route("/v1/items", get(|| async { "ok" }));

    let bare = app();
    g.bench_function("bare axum router", |b| {
        b.to_async(&rt).iter(|| async {
            let res = bare.clone().oneshot(request(peer)).await.unwrap();
            assert!(res.status().is_success());
        });
    });

    for (name, headers) in [
        (
            "palisade QuotaLayer, no fields on 200",
            RateLimitHeaders::new().only_on_refusals(),
        ),
        (
            "palisade QuotaLayer, RateLimit fields on 200",
            RateLimitHeaders::new(),
        ),
    ] {
        let quota = QuotaLayer::builder(MemoryStore::new())
            .rule(QuotaRule::new(KeyBy::client_ip(), policy()))
            .headers(headers)
            .build()
            .unwrap();
        let palisade = app().layer(quota);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let res = palisade.clone().oneshot(request(peer)).await.unwrap();
                assert!(res.status().is_success());
            });
        });
    }

    let config = Arc::new(
        tower_governor::governor::GovernorConfigBuilder::default()
            .per_nanosecond(1_000)
            .burst_size(1_000_000)
            .finish()
            .unwrap(),
    );
    let governed = app().layer(tower_governor::GovernorLayer::new(config));
    g.bench_function("tower_governor, no fields on 200", |b| {
        b.to_async(&rt).iter(|| async {
            let res = governed.clone().oneshot(request(peer)).await.unwrap();
            assert!(res.status().is_success());
        });
    });
    let config = Arc::new(
        tower_governor::governor::GovernorConfigBuilder::default()
            .per_nanosecond(1_000)
            .burst_size(1_000_000)
            .use_headers()
            .finish()
            .unwrap(),
    );
    let governed = app().layer(tower_governor::GovernorLayer::new(config));
    g.bench_function("tower_governor, x-ratelimit fields on 200", |b| {
        b.to_async(&rt).iter(|| async {
            let res = governed.clone().oneshot(request(peer)).await.unwrap();
            assert!(res.status().is_success());
        });
    });
    g.finish();
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    use std::process::{Command, Stdio};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(mut child) = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("*** SKIPPED quota/redis: redis-server is not installed ***");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        let store = palisade::quota::RedisStore::builder(format!("redis://127.0.0.1:{port}/"))
            .timeout(std::time::Duration::from_secs(1))
            .build()
            .unwrap();
        let key = QuotaKey::ip(policy(), ip(1), 32);
        for _ in 0..100 {
            if store.check(&key, 1, SystemClock.now(), false).await.is_ok() {
                return store;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("redis-server did not answer");
    });
    let mut g = c.benchmark_group("quota/redis");
    let key = QuotaKey::ip(policy(), ip(1), 32);
    g.bench_function("palisade RedisStore, one check over loopback", |b| {
        b.to_async(&rt).iter(|| async {
            let v = store.check(&key, 1, SystemClock.now(), true).await.unwrap();
            assert!(v.is_allowed());
        });
    });
    g.finish();
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {
    eprintln!("*** SKIPPED quota/redis: build with --features redis ***");
}

criterion_group!(benches, stores, layers, redis);
criterion_main!(benches);
