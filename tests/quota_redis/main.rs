//! `RedisStore` against a real `redis-server` process on a free loopback port: exact limits
//! across two instances, outages (fail closed, fail open, degraded) and recovery.
//!
//! The tests start `redis-server` themselves. When it is not installed they print a loud
//! SKIPPED line and pass, unless `PALISADE_REQUIRE_REDIS` is set (CI sets it), in which case
//! they fail.

#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../support/mod.rs"]
mod support;

mod batch;

use std::time::Duration;

use http::StatusCode;
use palisade::Palisade;
use palisade::authn::api_key::KeySpec;
use palisade::clock::Timestamp;
use palisade::quota::{
    KeyBy, Limit, OnOutage, QuotaLayer, QuotaMode, QuotaPolicy, QuotaRule, RedisStore, Window,
};
use redis_server::Redis;
use support::{Keys, TestServer};
use tokio::time::Instant;

const T0: u64 = Keys::T0;

/// Keys and a manual clock shared by every "instance".
struct Fixture(Keys);

impl Fixture {
    fn new() -> Self {
        Self(Keys::new())
    }

    fn issue(&self, subject: &str) -> String {
        self.0.issue(KeySpec::new(subject))
    }

    /// An "instance": a stack of its own with a `RedisStore` of its own.
    async fn instance(&self, store: RedisStore, policy: QuotaPolicy) -> TestServer {
        let layer = QuotaLayer::builder(store)
            .clock(self.0.clock.clone())
            .rule(QuotaRule::new(KeyBy::Subject, policy))
            .build()
            .unwrap();
        let guard = Palisade::builder()
            .authenticate(self.0.authenticator())
            .limit_principals(layer)
            .build()
            .unwrap();
        TestServer::start(guard).await
    }
}

fn store(redis: &Redis, on_outage: OnOutage) -> RedisStore {
    RedisStore::builder(redis.url())
        .timeout(Duration::from_millis(250))
        .on_outage(on_outage)
        .build()
        .unwrap()
}

/// Fires `n` requests at once, alternating between `servers`; returns the statuses.
async fn burst(servers: &[&TestServer], key: &str, n: usize) -> Vec<StatusCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let addr = servers[i % servers.len()].addr;
        let key = key.to_owned();
        tasks.spawn(async move {
            let req = http::Request::get("/v1/things")
                .header("host", addr.to_string())
                .header("x-api-key", key)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            support::send(addr, req).await.status
        });
    }
    tasks.join_all().await
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_admit_exactly_the_limit() {
    let Some(redis) = Redis::start("two_instances_sharing_redis_admit_exactly_the_limit").await
    else {
        return;
    };
    let fx = Fixture::new();
    let key = fx.issue("alice");
    let policy = QuotaPolicy::new(
        "shared",
        [
            Limit::per_minute(600).burst(100),
            Limit::quota(20, Window::Hour),
        ],
    );
    let a = fx
        .instance(store(&redis, OnOutage::FailClosed), policy.clone())
        .await;
    let b = fx
        .instance(store(&redis, OnOutage::FailClosed), policy)
        .await;

    // One at a time, alternating: each instance sees the other's requests.
    let mut statuses = Vec::new();
    for i in 0..26 {
        let server = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            server
                .get("/", &[("x-api-key", &key)])
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses[..20], [200; 20]);
    assert_eq!(statuses[20..], [429; 6]);
    assert_eq!((a.hits(), b.hits()), (10, 10));

    // All at once, on both: never one more than the limit.
    let zoe = fx.issue("zoe");
    let statuses = burst(&[&a, &b], &zoe, 60).await;
    assert_eq!(count(&statuses, StatusCode::OK), 20, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 40);

    // The GCRA burst is shared the same way.
    let bob = fx.issue("bob");
    let rate = QuotaPolicy::new("rate", [Limit::per_hour(1).burst(7)]);
    let c = fx
        .instance(store(&redis, OnOutage::FailClosed), rate.clone())
        .await;
    let d = fx.instance(store(&redis, OnOutage::FailClosed), rate).await;
    let statuses = burst(&[&c, &d], &bob, 30).await;
    assert_eq!(count(&statuses, StatusCode::OK), 7, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_ttls_one_hash_tag_and_a_fixed_length_whatever_the_subject() {
    let Some(redis) = Redis::start("keys_carry_ttls_and_one_hash_tag").await else {
        return;
    };
    let fx = Fixture::new();
    // A 4 KiB subject: its keys are no longer than anyone's, and do not hold it.
    let subject = "carol-".repeat(700)[..4096].to_owned();
    let key = fx.issue(&subject);
    let policy = QuotaPolicy::new(
        "ttl",
        [Limit::per_second(10), Limit::quota(100, Window::Minute)],
    );
    let server = fx
        .instance(store(&redis, OnOutage::FailClosed), policy)
        .await;
    assert_eq!(
        server.get("/", &[("x-api-key", &key)]).await.status,
        StatusCode::OK
    );

    let mut conn = redis.client().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let window = (T0 / 60) as u32;
    // `palisade:{<32 hex digits>}:0` and `...:1:<window>`, one hash tag for both.
    let tag = &keys[0]["palisade:".len().."palisade:".len() + 34];
    assert!(tag.starts_with('{') && tag.ends_with('}'), "{keys:?}");
    assert!(
        tag[1..33].bytes().all(|c| c.is_ascii_hexdigit()),
        "{keys:?}"
    );
    assert_eq!(
        keys,
        [
            format!("palisade:{tag}:0"),
            format!("palisade:{tag}:1:{window}")
        ]
    );
    for k in &keys {
        assert!(k.len() <= RedisStore::MAX_KEY_LEN, "{k}");
        assert!(!k.contains("carol") && !k.contains("ttl:"), "{k}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Every key expires: the rate's once refilled, the window's once over (plus 1s slack).
        assert!(ttl > 0 && ttl <= 61_000, "{k} has PTTL {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_answers_503_within_the_timeout_and_recovers_by_itself() {
    let Some(mut redis) = Redis::start("fail_closed_answers_503").await else {
        return;
    };
    let fx = Fixture::new();
    let key = fx.issue("dave");
    let policy = QuotaPolicy::new("closed", [Limit::quota(1_000, Window::Hour)]);
    let server = fx
        .instance(store(&redis, OnOutage::FailClosed), policy)
        .await;
    let get = async || server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(get().await.status, StatusCode::OK);

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let r = get().await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.json()["code"], "temporarily_unavailable");
        // The store's timeout is 250 ms: the answer comes well within a second.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let hits = server.hits();

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = get().await.status;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.hits(), hits + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_and_marks_the_request_for_audit() {
    let Some(mut redis) = Redis::start("fail_open_admits").await else {
        return;
    };
    let fx = Fixture::new();
    let key = fx.issue("erin");
    let policy = QuotaPolicy::new("open", [Limit::quota(1, Window::Hour)]);
    let server = fx.instance(store(&redis, OnOutage::FailOpen), policy).await;
    let get = async || server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(get().await.status, StatusCode::OK);
    assert_eq!(get().await.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(server.quota_modes.lock().unwrap().is_empty());

    redis.kill();
    for _ in 0..3 {
        let r = get().await;
        assert_eq!(r.status, StatusCode::OK);
        // Nothing was counted, so no rate-limit fields are claimed.
        assert!(r.headers.get("ratelimit").is_none());
    }
    let modes = server.quota_modes.lock().unwrap().clone();
    assert_eq!(modes, [QuotaMode::FailOpen; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_draft12_5_2_degraded_mode_keeps_limiting_with_the_local_share() {
    let Some(mut redis) = Redis::start("degraded_mode_keeps_limiting").await else {
        return;
    };
    let fx = Fixture::new();
    let key = fx.issue("frank");
    let policy = QuotaPolicy::new("local", [Limit::quota(10, Window::Hour)]);
    let server = fx
        .instance(store(&redis, OnOutage::Local { instances: 2 }), policy)
        .await;
    let get = async || server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(get().await.status, StatusCode::OK);

    redis.kill();
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let r = get().await;
        statuses.push(r.status.as_u16());
        last = Some(r);
    }
    // Two instances share the limit: this one enforces half of it, 5 an hour, by itself. A
    // request over that share meets a capacity the outage reduced, not the caller's quota:
    // RateLimit fields draft-12 §5.2, 503 `temporary-reduced-capacity` with Retry-After.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
    let last = last.unwrap();
    assert_eq!(
        last.json()["type"],
        palisade::rejection::TEMPORARY_REDUCED_CAPACITY
    );
    assert_eq!(last.json()["violated-policies"][0], "local");
    assert!(last.headers.contains_key("retry-after"));
    let modes = server.quota_modes.lock().unwrap().clone();
    assert_eq!(modes, [QuotaMode::Degraded; 8]);
    assert_eq!(
        server.last_refusal().unwrap().reason(),
        "temporary_reduced_capacity"
    );
}

/// The Lua script and the in-memory arithmetic are one algorithm: the same sequence of checks
/// gets the same answers from both (admitted, retry time, remaining and reset of every limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_memory_stores_agree_on_every_answer() {
    use palisade::quota::{MemoryStore, QuotaKey, QuotaStore};
    let Some(redis) = Redis::start("redis_and_memory_stores_agree").await else {
        return;
    };
    let remote = store(&redis, OnOutage::FailClosed);
    let local = MemoryStore::new();
    let policies = [
        QuotaPolicy::new("a", [Limit::per_second(3).burst(4)]),
        QuotaPolicy::new(
            "b",
            [
                Limit::rate(7, Duration::from_secs(2)).burst(3),
                Limit::quota(9, Window::Every(Duration::from_secs(5))),
                Limit::quota(40, Window::Minute),
            ],
        ),
    ];
    // A fixed linear congruential sequence: reproducible, no extra dependency.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let mut now = Timestamp::from_unix_secs(T0);
    let mut refused = 0;
    for step in 0..600 {
        now = now.saturating_add(Duration::from_millis(next(700)));
        let policy = &policies[next(2) as usize];
        let key = QuotaKey::custom(policy.clone(), format!("caller-{}", next(3)));
        let cost = 1 + next(3);
        let consume = next(5) != 0;
        let want = local.check(&key, cost, now, consume).await.unwrap();
        let got = remote.check(&key, cost, now, consume).await.unwrap();
        assert_eq!(got, want, "step {step}: {key} cost {cost} at {now}");
        refused += usize::from(!want.is_allowed());
    }
    // The sequence exercises both answers.
    assert!((30..500).contains(&refused), "{refused} refusals");
}

/// A Redis that accepts the connection but does not answer (paused) is an outage too: the
/// request is refused within the timeout instead of hanging with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_answers_503_within_the_timeout() {
    let Some(redis) = Redis::start("a_hung_redis_answers_503_within_the_timeout").await else {
        return;
    };
    let fx = Fixture::new();
    let key = fx.issue("gina");
    let policy = QuotaPolicy::new("hung", [Limit::quota(100, Window::Hour)]);
    let server = fx
        .instance(store(&redis, OnOutage::FailClosed), policy)
        .await;
    let get = async || server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(get().await.status, StatusCode::OK);

    let mut admin = redis.client().await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2_000)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let started = Instant::now();
    let r = get().await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(1_500),
        "answered after {waited:?} with a 250 ms timeout"
    );
    assert_eq!(server.hits(), 1);
}

/// `rediss://` (feature `redis-tls`) against a `redis-server` serving TLS only, on the test CA's
/// certificate: the store counts through it when it trusts that CA, and fails closed (503),
/// never falling back to plain TCP, when it does not.
#[cfg(feature = "redis-tls")]
mod tls {
    use super::*;
    use palisade::quota::{QuotaKey, QuotaStore};

    fn ca(name: &str) -> Vec<u8> {
        std::fs::read(Redis::fixture(name)).unwrap()
    }

    fn tls_store(url: &str, ca_file: Option<&str>) -> RedisStore {
        let mut b = RedisStore::builder(url).timeout(Duration::from_millis(500));
        if let Some(file) = ca_file {
            b = b.tls_ca(ca(file));
        }
        b.build().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_trusts_the_servers_ca_counts_over_tls() {
        let Some(redis) =
            Redis::start_tls("a_store_that_trusts_the_servers_ca_counts_over_tls").await
        else {
            return;
        };
        assert!(redis.url().starts_with("rediss://"));
        let fx = Fixture::new();
        let policy = QuotaPolicy::new("tls", [Limit::per_hour(3).burst(3)]);
        let server = fx
            .instance(tls_store(&redis.url(), Some("ca.crt")), policy)
            .await;
        let key = fx.issue("alice");
        let statuses = burst(&[&server], &key, 5).await;
        assert_eq!(count(&statuses, StatusCode::OK), 3, "{statuses:?}");
        assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_outside_the_trusted_roots_is_refused_and_the_store_fails_closed() {
        let Some(redis) = Redis::start_tls("a_server_outside_the_trusted_roots_is_refused").await
        else {
            return;
        };
        let fx = Fixture::new();
        let policy = QuotaPolicy::new("tls", [Limit::per_hour(3).burst(3)]);
        let key = fx.issue("alice");
        // Another CA, and the Mozilla roots alone: neither signed the test server's certificate.
        for store in [
            tls_store(&redis.url(), Some("other-ca.crt")),
            tls_store(&redis.url(), None),
        ] {
            let server = fx.instance(store, policy.clone()).await;
            let statuses = burst(&[&server], &key, 2).await;
            assert_eq!(statuses, [StatusCode::SERVICE_UNAVAILABLE; 2]);
            assert_eq!(server.hits(), 0);
        }
        // Plain TCP to the TLS port does not reach Redis either.
        let plain = redis.url().replace("rediss://", "redis://");
        let store = RedisStore::builder(plain)
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let answer = store
            .check(
                &QuotaKey::custom(policy, "k"),
                1,
                Timestamp::from_unix_secs(T0),
                true,
            )
            .await;
        assert!(answer.is_err(), "{answer:?}");
    }

    #[test]
    fn turning_certificate_verification_off_is_refused() {
        let err = RedisStore::builder("rediss://127.0.0.1:6380/#insecure")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("#insecure"), "{err}");
    }
}

/// All or nothing across rules in Redis: requests the per-user rule refuses give back the
/// units the per-address rule took (the refund script), across two instances, thirty at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_the_per_user_rule_refuses_costs_no_per_address_units_in_redis() {
    // A window quota and a GCRA rate (the manual clock stands still: no unit refills).
    all_or_nothing_in_redis("all_or_nothing_window", Limit::quota(12, Window::Hour)).await;
    all_or_nothing_in_redis("all_or_nothing_rate", Limit::per_hour(1).burst(12)).await;
}

async fn all_or_nothing_in_redis(test: &str, address: Limit) {
    let Some(redis) = Redis::start(test).await else {
        return;
    };
    let fx = Fixture::new();
    let users: Vec<String> = (0..13).map(|i| fx.issue(&format!("user-{i}"))).collect();
    let instance = || async {
        let layer = QuotaLayer::builder(store(&redis, OnOutage::FailClosed))
            .clock(fx.0.clock.clone())
            .rule(QuotaRule::new(
                KeyBy::client_ip(),
                QuotaPolicy::new("address", [address.clone()]),
            ))
            .rule(QuotaRule::new(
                KeyBy::Subject,
                QuotaPolicy::new("user", [Limit::quota(1, Window::Hour)]),
            ))
            .build()
            .unwrap();
        let guard = Palisade::builder()
            .authenticate(fx.0.authenticator())
            .limit_principals(layer)
            .build()
            .unwrap();
        TestServer::start(guard).await
    };
    let (a, b) = (instance().await, instance().await);
    // Six users take their one request each: six of the address's twelve units.
    for key in &users[..6] {
        assert_eq!(
            a.get("/", &[("x-api-key", key)]).await.status,
            StatusCode::OK
        );
    }
    // Then each tries five more times at once, alternating instances: thirty requests the
    // per-user rule refuses. Without all or nothing, the address rule would have given its
    // last six units to six of them.
    let statuses = support::at_once(&[&a, &b], &users[..6], 30).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The address was charged for the six admitted requests only: six units remain, which
    // six other users now take, and not one more.
    for key in &users[6..12] {
        assert_eq!(
            b.get("/", &[("x-api-key", key)]).await.status,
            StatusCode::OK
        );
    }
    let over = a.get("/", &[("x-api-key", &users[12])]).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.json()["violated-policies"][0], "address");
}
