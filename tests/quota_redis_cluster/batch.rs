//! A request's rules on a Cluster: the keys of different identities live in different slots,
//! so each identity's rules are a script of their own, all sent at once, and when one refuses
//! the others give back what they took: a refused request still costs nothing anywhere.

use std::time::Duration;

use http::StatusCode;
use palisade::Palisade;
use palisade::quota::{
    KeyBy, Limit, OnOutage, QuotaLayer, QuotaPolicy, QuotaRule, RedisStore, Window,
};

use super::Fixture;
use super::redis_cluster::{Cluster, Sentinels};
use super::support::{self, TestServer};

/// The script calls (`EVALSHA`, `EVAL`) every node of `cluster` ran.
fn script_calls(cluster: &Cluster) -> u64 {
    cluster
        .nodes
        .iter()
        .map(|n| support::script_calls_in(&n.cli(&["INFO", "commandstats"])))
        .sum()
}

async fn instance(fx: &Fixture, cluster: &Cluster) -> TestServer {
    guarded(fx, RedisStore::cluster(cluster.urls())).await
}

/// An instance whose layer has a per-address rule (12 an hour) and a per-user rule (1 an
/// hour) in the store `store` builds.
async fn guarded(fx: &Fixture, store: palisade::quota::RedisStoreBuilder) -> TestServer {
    let store = store
        .timeout(Duration::from_millis(500))
        .on_outage(OnOutage::FailClosed)
        .build()
        .unwrap();
    let layer = QuotaLayer::builder(store)
        .clock(fx.keys.clock.clone())
        .rule(QuotaRule::new(
            KeyBy::client_ip(),
            QuotaPolicy::new("address", [Limit::quota(12, Window::Hour)]),
        ))
        .rule(QuotaRule::new(
            KeyBy::Subject,
            QuotaPolicy::new("user", [Limit::quota(1, Window::Hour)]),
        ))
        .build()
        .unwrap();
    let guard = Palisade::builder()
        .authenticate(fx.keys.authenticator())
        .limit_principals(layer)
        .build()
        .unwrap();
    TestServer::start(guard).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_a_request_the_per_user_rule_refuses_costs_no_per_address_units() {
    let Some(cluster) = Cluster::start("cluster_all_or_nothing_across_identities").await else {
        return;
    };
    let fx = Fixture::new();
    let users: Vec<String> = (0..13).map(|i| fx.issue(&format!("user-{i}"))).collect();
    let (a, b) = (instance(&fx, &cluster).await, instance(&fx, &cluster).await);
    // Six users take their one request each: six of the address's twelve units.
    for key in &users[..6] {
        assert_eq!(
            a.get("/", &[("x-api-key", key)]).await.status,
            StatusCode::OK
        );
    }
    // A refusal loads the refund script where the address's keys live; from then on each
    // refused request costs its two scripts (one per identity) and one refund.
    let refused = a.get("/", &[("x-api-key", &users[0])]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let before = script_calls(&cluster);
    let refused = a.get("/", &[("x-api-key", &users[1])]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(script_calls(&cluster) - before, 3);
    // Thirty refused requests at once, alternating instances.
    let statuses = support::at_once(&[&a, &b], &users[..6], 30).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The address was charged for the six admitted requests only.
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

/// Behind Sentinel the primary holds every key, so a request's rules are one script there, as
/// on a single server; a refusal by the per-user rule takes no per-address unit and needs no
/// refund script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_a_request_under_two_rules_costs_one_script_call_on_the_primary() {
    let Some(set) = Sentinels::start("sentinel_one_script_per_request").await else {
        return;
    };
    let calls = || {
        support::script_calls_in(
            &set.server(set.primary_port())
                .cli(&["INFO", "commandstats"]),
        )
    };
    let fx = Fixture::new();
    let server = guarded(&fx, RedisStore::sentinel(set.service, set.urls())).await;
    let users: Vec<String> = (0..13).map(|i| fx.issue(&format!("user-{i}"))).collect();
    // The first request loads the script (`NOSCRIPT`, then `EVAL`): counted from the second.
    let first = server.get("/", &[("x-api-key", &users[0])]).await;
    assert_eq!(first.status, StatusCode::OK);
    let before = calls();
    for key in &users[1..6] {
        assert_eq!(
            server.get("/", &[("x-api-key", key)]).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(calls() - before, 5, "one script per admitted request");
    let before = calls();
    for key in &users[..6] {
        let refused = server.get("/", &[("x-api-key", key)]).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(
        calls() - before,
        6,
        "one script per refused request, no refund"
    );
    // The address was charged for the six admitted requests only.
    for key in &users[6..12] {
        assert_eq!(
            server.get("/", &[("x-api-key", key)]).await.status,
            StatusCode::OK
        );
    }
    let over = server.get("/", &[("x-api-key", &users[12])]).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.json()["violated-policies"][0], "address");
}
