//! All or nothing across rules and stages: a request one quota rule refuses costs nothing under
//! any other, in one layer and across the client-address stage outside authentication; and
//! under concurrency no limit ever admits more than it allows.

use std::sync::Arc;

use http::StatusCode;
use palisade::Palisade;
use palisade::authn::api_key::KeySpec;
use palisade::quota::{KeyBy, Limit, QuotaRule, Window};

use super::support::TestServer;
use super::{Fixture, get, header, policy};

/// The `r` (remaining) parameter of `name`'s item in a `RateLimit` field.
fn remaining(field: &str, name: &str) -> u64 {
    let item = field
        .split(", ")
        .find(|i| i.starts_with(&format!("\"{name}\";")))
        .unwrap_or_else(|| panic!("no {name} in {field}"));
    let r = item.split(';').find_map(|p| p.strip_prefix("r=")).unwrap();
    r.parse().unwrap()
}

fn per_address() -> QuotaRule {
    QuotaRule::new(
        KeyBy::client_ip(),
        policy("address", [Limit::quota(10, Window::Hour)]),
    )
}

fn per_user() -> QuotaRule {
    QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::quota(2, Window::Hour)]),
    )
}

#[tokio::test]
async fn a_request_the_per_user_rule_refuses_costs_no_per_address_units() {
    let fx = Fixture::new();
    let alice = fx.issue(KeySpec::new("alice"));
    let bob = fx.issue(KeySpec::new("bob"));
    // The address rule first: it has admitted (and taken a unit) when the user rule refuses.
    let server = fx
        .serve_principals(fx.layer([per_address(), per_user()]))
        .await;
    for _ in 0..2 {
        assert_eq!(get(&server, "/", &alice).await.status, StatusCode::OK);
    }
    for _ in 0..4 {
        let refused = get(&server, "/", &alice).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    }
    // Bob, from the same address: 10 - 2 admitted - his own = 7 left, as if the four refusals
    // had never happened.
    let ok = get(&server, "/", &bob).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(remaining(header(&ok, "ratelimit").unwrap(), "address"), 7);
}

#[tokio::test]
async fn a_request_an_inner_stage_refuses_costs_nothing_in_the_client_stage() {
    let fx = Fixture::new();
    let alice = fx.issue(KeySpec::new("alice"));
    let guard = Palisade::builder()
        .limit_clients(fx.layer([per_address()]))
        .authenticate(fx.authenticator())
        .limit_principals(fx.layer([per_user()]))
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;
    for _ in 0..2 {
        assert_eq!(get(&server, "/", &alice).await.status, StatusCode::OK);
    }
    for _ in 0..4 {
        let refused = get(&server, "/", &alice).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.json()["violated-policies"][0], "user");
    }
    // The address stage has 10 - 2 = 8 units left for other users: the four refusals cost
    // none. (Without the refund, only 4 would be left.)
    let others = |n: usize| (0..n).map(|i| fx.issue(KeySpec::new(format!("other-{i}"))));
    let others: Vec<String> = others(9).collect();
    for key in &others[..7] {
        assert_eq!(get(&server, "/", key).await.status, StatusCode::OK);
    }
    // A request refused for another reason (no credential) still counts for the address:
    // that stage exists to slow down callers who authenticate badly.
    let anonymous = server.get("/", &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let refused = get(&server, "/", &others[7]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["violated-policies"][0], "address");
}

/// The bound under concurrency: many users behind one address, each allowed one request, the
/// address allowed 20. Whatever the interleaving, the address never admits more than 20 (no
/// over-admission: each rule checks and consumes atomically), no user more than one, and once
/// the burst is over the address has been charged exactly for the requests admitted (the
/// refused ones gave their units back).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_concurrency_no_limit_over_admits_and_refusals_leave_no_charge() {
    let fx = Fixture::new();
    let users: Vec<String> = (0..40)
        .map(|i| fx.issue(KeySpec::new(format!("user-{i}"))))
        .collect();
    let address = QuotaRule::new(
        KeyBy::client_ip(),
        policy("address", [Limit::quota(20, Window::Hour)]),
    );
    let user = QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::quota(1, Window::Hour)]),
    );
    let server = Arc::new(fx.serve_principals(fx.layer([address, user])).await);
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..4 {
        for (u, key) in users.iter().enumerate() {
            let (server, key) = (server.clone(), key.clone());
            tasks.spawn(async move { (u, round, get(&server, "/", &key).await.status) });
        }
    }
    let results = tasks.join_all().await;
    let admitted: Vec<usize> = results
        .iter()
        .filter(|(_, _, s)| *s == StatusCode::OK)
        .map(|(u, _, _)| *u)
        .collect();
    assert!(
        results
            .iter()
            .all(|(_, _, s)| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS)
    );
    assert!(
        admitted.len() <= 20,
        "the address admitted {}",
        admitted.len()
    );
    let mut per_user = admitted.clone();
    per_user.sort_unstable();
    per_user.dedup();
    assert_eq!(per_user.len(), admitted.len(), "a user was admitted twice");
    assert_eq!(server.hits(), admitted.len());
    // A fresh user now: the address has exactly 20 - admitted units left (if any).
    let probe = fx.issue(KeySpec::new("probe"));
    let last = get(&server, "/", &probe).await;
    if admitted.len() < 20 {
        assert_eq!(last.status, StatusCode::OK);
        let left = remaining(header(&last, "ratelimit").unwrap(), "address");
        assert_eq!(left as usize, 20 - admitted.len() - 1);
    } else {
        assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS);
    }
}
