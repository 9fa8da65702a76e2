//! One script per request on a single node: every rule of a request checked and consumed by
//! one `EVALSHA`, all or nothing inside Redis, so a refused request never holds a unit (no
//! refund, no window in which another request finds units taken) and no limit admits more
//! than it allows under any concurrency.

use std::time::Duration;

use http::StatusCode;
use palisade::Palisade;
use palisade::clock::Timestamp;
use palisade::quota::{
    KeyBy, Limit, MemoryStore, OnOutage, QuotaCheck, QuotaKey, QuotaLayer, QuotaPolicy, QuotaRule,
    QuotaStore, RedisStore, Window,
};

use super::redis_server::Redis;
use super::support::{self, TestServer};
use super::{Fixture, T0, store};

/// Redis's own count of the script calls it ran (`EVALSHA`, and `EVAL` for a script it did
/// not know yet).
async fn script_calls(redis: &Redis) -> u64 {
    let mut conn = redis.client().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    support::script_calls_in(&info)
}

/// An instance whose one layer has a per-address, a per-user and a per-tenant-like rule, in
/// `redis`.
async fn three_rules(fx: &Fixture, redis: &Redis, address: u64, user: u64) -> TestServer {
    let layer = QuotaLayer::builder(store(redis, OnOutage::FailClosed))
        .clock(fx.0.clock.clone())
        .rule(QuotaRule::new(
            KeyBy::client_ip(),
            QuotaPolicy::new("address", [Limit::quota(address, Window::Hour)]),
        ))
        .rule(QuotaRule::new(
            KeyBy::Subject,
            QuotaPolicy::new(
                "user",
                [
                    Limit::quota(user, Window::Hour),
                    Limit::quota(user, Window::Day),
                ],
            ),
        ))
        .rule(QuotaRule::new(
            KeyBy::custom(|_| Some("everyone".to_owned())),
            QuotaPolicy::new("service", [Limit::per_second(1_000_000)]),
        ))
        .build()
        .unwrap();
    let guard = Palisade::builder()
        .authenticate(fx.0.authenticator())
        .limit_principals(layer)
        .build()
        .unwrap();
    TestServer::start(guard).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_under_three_rules_costs_exactly_one_script_call() {
    let Some(redis) = Redis::start("a_request_under_three_rules_costs_one_script_call").await
    else {
        return;
    };
    let fx = Fixture::new();
    let server = three_rules(&fx, &redis, 1_000_000, 1_000_000).await;
    let keys: Vec<String> = (0..5).map(|i| fx.issue(&format!("user-{i}"))).collect();
    // The first request loads the script (`NOSCRIPT`, then `EVAL`): counted from the second.
    let first = server.get("/", &[("x-api-key", &keys[0])]).await;
    assert_eq!(first.status, StatusCode::OK);
    let before = script_calls(&redis).await;
    for i in 0..200 {
        let res = server
            .get("/", &[("x-api-key", &keys[i % keys.len()])])
            .await;
        assert_eq!(res.status, StatusCode::OK);
    }
    // Many at once, too: still one script each.
    let statuses = support::at_once(&[&server], &keys, 48).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(script_calls(&redis).await - before, 248);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_the_per_user_rule_takes_no_per_address_unit_and_needs_no_refund() {
    let Some(redis) = Redis::start("a_refusal_by_the_per_user_rule_takes_no_address_unit").await
    else {
        return;
    };
    let fx = Fixture::new();
    let server = three_rules(&fx, &redis, 10, 2).await;
    let alice = fx.issue("alice");
    let bob = fx.issue("bob");
    for _ in 0..2 {
        let ok = server.get("/", &[("x-api-key", &alice)]).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let before = script_calls(&redis).await;
    for _ in 0..5 {
        let refused = server.get("/", &[("x-api-key", &alice)]).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let violated = refused.json()["violated-policies"][0].clone();
        assert!(
            violated.as_str().unwrap().starts_with("user-"),
            "{violated}"
        );
    }
    // One script per refused request, and no refund script: nothing was taken.
    assert_eq!(script_calls(&redis).await - before, 5);
    // Bob, from the same address: 10 - 2 admitted - his own = 7 left.
    let ok = server.get("/", &[("x-api-key", &bob)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let field = ok.headers["ratelimit"].to_str().unwrap();
    assert!(field.contains("\"address\";r=7;"), "{field}");
}

/// Forty users, one request allowed each, behind one address allowed twenty: eighty requests
/// at once through two instances. Each request is one script, so the address admits exactly
/// twenty (never more), and no refusal by a user rule ever holds an address unit that would
/// have turned away another user (never fewer).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_concurrency_one_script_admits_exactly_the_limit_on_a_single_node() {
    let Some(redis) = Redis::start("one_script_admits_exactly_the_limit").await else {
        return;
    };
    let fx = Fixture::new();
    let (a, b) = (
        three_rules(&fx, &redis, 20, 1).await,
        three_rules(&fx, &redis, 20, 1).await,
    );
    let keys: Vec<String> = (0..40).map(|i| fx.issue(&format!("user-{i}"))).collect();
    let statuses = support::at_once(&[&a, &b], &keys, 80).await;
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((admitted, refused), (20, 60), "{statuses:?}");
}

/// The one script answers a batch exactly as the same checks one by one do (the memory
/// store's default batch: each check after the ones before it, then refunds when a binding
/// check refuses): every verdict, and what stays consumed, with shadow checks, checks that
/// only test, and two checks of one key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_script_answers_what_the_checks_one_by_one_answer() {
    let Some(redis) = Redis::start("the_one_script_answers_what_one_by_one_answers").await else {
        return;
    };
    let remote: RedisStore = store(&redis, OnOutage::FailClosed);
    let local = MemoryStore::new();
    let policies = [
        QuotaPolicy::new("a", [Limit::per_second(3).burst(4)]),
        QuotaPolicy::new(
            "b",
            [
                Limit::rate(7, Duration::from_secs(2)).burst(3),
                Limit::quota(9, Window::Every(Duration::from_secs(5))),
            ],
        ),
        QuotaPolicy::new("c", [Limit::quota(6, Window::Minute)]),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    let mut now = Timestamp::from_unix_secs(T0);
    let (mut refused, mut partly) = (0, 0);
    for step in 0..400 {
        now = now.saturating_add(Duration::from_millis(next(600)));
        let keys: Vec<QuotaKey> = (0..1 + next(4))
            .map(|_| {
                let policy = policies[next(3) as usize].clone();
                QuotaKey::custom(policy, format!("caller-{}", next(2)))
            })
            .collect();
        let checks: Vec<QuotaCheck<'_>> = keys
            .iter()
            .map(|k| {
                QuotaCheck::new(k, 1 + next(2))
                    .consume(next(6) != 0)
                    .shadow(next(5) == 0)
            })
            .collect();
        let want = local.check_all(&checks, now).await;
        let got = remote.check_all(&checks, now).await;
        let want: Vec<_> = want.into_iter().map(Result::unwrap).collect();
        let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, want, "step {step}: {checks:?} at {now}");
        let binding_refused = checks
            .iter()
            .zip(&want)
            .any(|(c, v)| !c.shadow && !v.is_allowed());
        refused += usize::from(binding_refused);
        partly += usize::from(binding_refused && want.iter().any(|v| v.is_allowed()));
    }
    // What stays consumed agrees too: a last test of every key in both stores.
    for policy in &policies {
        for caller in 0..2 {
            let key = QuotaKey::custom(policy.clone(), format!("caller-{caller}"));
            let want = local.check(&key, 1, now, false).await.unwrap();
            let got = remote.check(&key, 1, now, false).await.unwrap();
            assert_eq!(got, want, "{key}");
        }
    }
    // The sequence exercises refusals that other checks of the batch would have admitted.
    assert!(
        partly >= 20 && refused < 380,
        "{partly} partial, {refused} refused"
    );
}
