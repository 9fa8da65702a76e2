//! Quotas over real HTTP on loopback, in memory, with a manual clock: bursts, windows, tiers,
//! route costs, failed-authentication limits, spoofed addresses and the rate-limit fields.

#[path = "../support/mod.rs"]
mod support;

mod all_or_nothing;

use std::time::Duration;

use http::StatusCode;
use palisade::Palisade;
use palisade::authn::api_key::KeySpec;
use palisade::clock::Timestamp;
use palisade::error::{StoreError, StoreErrorKind};
use palisade::quota::{
    Counting, KeyBy, Limit, MemoryStore, QuotaKey, QuotaLayer, QuotaPolicy, QuotaRule, QuotaStore,
    RateLimitHeaders, TierBy, Verdict, Window,
};
use palisade::rejection::QUOTA_EXCEEDED;
use support::{Keys, Reply, TestServer};

/// Keys and a manual clock, and quota layers on that clock.
struct Fixture(Keys);

impl std::ops::Deref for Fixture {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        &self.0
    }
}

impl Fixture {
    fn new() -> Self {
        Self(Keys::new())
    }

    /// A server behind API keys with `layer` as the per-principal quota stage.
    async fn serve_principals<St: palisade::quota::QuotaStore>(
        &self,
        layer: QuotaLayer<St>,
    ) -> TestServer {
        let guard = Palisade::builder()
            .authenticate(self.authenticator())
            .limit_principals(layer)
            .build()
            .unwrap();
        TestServer::start(guard).await
    }

    fn layer(&self, rules: impl IntoIterator<Item = QuotaRule>) -> QuotaLayer<MemoryStore> {
        self.layer_with(rules, |b| b)
    }

    fn layer_with(
        &self,
        rules: impl IntoIterator<Item = QuotaRule>,
        f: impl FnOnce(
            palisade::quota::QuotaBuilder<MemoryStore>,
        ) -> palisade::quota::QuotaBuilder<MemoryStore>,
    ) -> QuotaLayer<MemoryStore> {
        let mut b = QuotaLayer::builder(MemoryStore::new()).clock(self.clock.clone());
        for r in rules {
            b = b.rule(r);
        }
        f(b).build().unwrap()
    }
}

fn policy(name: &str, limits: impl IntoIterator<Item = Limit>) -> QuotaPolicy {
    QuotaPolicy::new(name, limits)
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

async fn get(server: &TestServer, path: &str, key: &str) -> Reply {
    server.get(path, &[("x-api-key", key)]).await
}

#[tokio::test]
async fn burst_then_429_with_retry_after_and_ratelimit_fields() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::per_second(1).burst(3)]),
    );
    let server = fx.serve_principals(fx.layer([rule])).await;

    for remaining in [2, 1, 0] {
        let ok = get(&server, "/v1/things", &key).await;
        assert_eq!(ok.status, StatusCode::OK);
        // IETF RateLimit fields draft §3 and §4: the policy and the remaining quota on
        // admitted responses too.
        assert_eq!(header(&ok, "ratelimit-policy"), Some(r#""user";q=3;w=3"#));
        // `t`: the next unit refills in a second.
        assert_eq!(
            header(&ok, "ratelimit").unwrap(),
            format!(r#""user";r={remaining};t=1"#)
        );
    }
    let refused = get(&server, "/v1/things", &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // RFC 6585 §4 and RFC 9110 §10.2.3: Retry-After in seconds, here the refill of one unit.
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    assert_eq!(header(&refused, "ratelimit"), Some(r#""user";r=0;t=1"#));
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        Some(r#""user";q=3;w=3"#)
    );
    assert_eq!(
        header(&refused, "content-type"),
        Some("application/problem+json")
    );
    let body = refused.json();
    // IETF RateLimit fields draft §5.1: the quota-exceeded problem type names the policies.
    assert_eq!(body["type"], QUOTA_EXCEEDED);
    assert_eq!(body["status"], 429);
    assert_eq!(body["violated-policies"], serde_json::json!(["user"]));
    assert_eq!(
        server.hits(),
        3,
        "the refused request never reached the handler"
    );
    let rejection = server.last_refusal().unwrap();
    assert_eq!(
        (rejection.layer(), rejection.reason()),
        ("quota", "quota_exceeded")
    );

    // A second later one unit has refilled: one request, not two.
    fx.clock.advance(Duration::from_secs(1));
    assert_eq!(
        get(&server, "/v1/things", &key).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&server, "/v1/things", &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn callers_have_buckets_of_their_own() {
    let fx = Fixture::new();
    let alice = fx.issue(KeySpec::new("alice"));
    let bob = fx.issue(KeySpec::new("bob"));
    let alice_second_key = fx.issue(KeySpec::new("alice"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::quota(2, Window::Hour)]),
    );
    let per_key = QuotaRule::new(
        KeyBy::KeyId,
        policy("key", [Limit::quota(100, Window::Hour)]),
    );
    let server = fx.serve_principals(fx.layer([rule, per_key])).await;
    assert_eq!(get(&server, "/", &alice).await.status, StatusCode::OK);
    assert_eq!(
        get(&server, "/", &alice_second_key).await.status,
        StatusCode::OK
    );
    // Two keys of one subject share the per-subject bucket.
    assert_eq!(
        get(&server, "/", &alice).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let bob_ok = get(&server, "/", &bob).await;
    assert_eq!(bob_ok.status, StatusCode::OK);
    // Both rules report: the fields are lists with one item per limit.
    assert_eq!(
        header(&bob_ok, "ratelimit").unwrap(),
        r#""user";r=1;t=3600, "key";r=99;t=3600"#
    );
    assert_eq!(bob_ok.headers.get_all("ratelimit-policy").iter().count(), 2);
}

#[tokio::test]
async fn window_quota_resets_at_the_boundary() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("daily", [Limit::quota(2, Window::Day)]),
    );
    let server = fx.serve_principals(fx.layer([rule])).await;
    fx.clock.advance(Duration::from_secs(86_400 - 10)); // 23:59:50
    assert_eq!(get(&server, "/", &key).await.status, StatusCode::OK);
    assert_eq!(get(&server, "/", &key).await.status, StatusCode::OK);
    let refused = get(&server, "/", &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), Some("10"));
    fx.clock.advance(Duration::from_secs(10)); // midnight UTC: a new day
    let ok = get(&server, "/", &key).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(header(&ok, "ratelimit"), Some(r#""daily";r=1;t=86400"#));
}

#[tokio::test]
async fn tiers_choose_the_principal_policy() {
    let fx = Fixture::new();
    let free = fx.issue(KeySpec::new("free-user"));
    let pro = fx.issue(KeySpec::new("pro-user").tier("pro"));
    let unknown_tier = fx.issue(KeySpec::new("odd-user").tier("platinum"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("free", [Limit::quota(1, Window::Hour)]),
    )
    .tier("pro", policy("pro", [Limit::quota(3, Window::Hour)]));
    let server = fx.serve_principals(fx.layer([rule])).await;
    let admitted = async |key: &str| {
        let mut n = 0;
        for _ in 0..5 {
            if get(&server, "/", key).await.status == StatusCode::OK {
                n += 1;
            }
        }
        n
    };
    assert_eq!(admitted(&free).await, 1);
    assert_eq!(admitted(&pro).await, 3);
    // A tier without a policy gets the default one, not an unlimited pass.
    assert_eq!(admitted(&unknown_tier).await, 1);
}

#[tokio::test]
async fn tiers_by_role_take_the_first_matching_tier() {
    let fx = Fixture::new();
    let partner = fx.issue(KeySpec::new("p").role("reader").role("partner"));
    let reader = fx.issue(KeySpec::new("r").role("reader"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("base", [Limit::quota(1, Window::Hour)]),
    )
    .tier(
        "partner",
        policy("partner", [Limit::quota(4, Window::Hour)]),
    )
    .tier("reader", policy("reader", [Limit::quota(2, Window::Hour)]))
    .tier_by(TierBy::Role);
    let server = fx.serve_principals(fx.layer([rule])).await;
    let ok = get(&server, "/", &partner).await;
    assert_eq!(
        header(&ok, "ratelimit-policy"),
        Some(r#""partner";q=4;w=3600"#)
    );
    let ok = get(&server, "/", &reader).await;
    assert_eq!(
        header(&ok, "ratelimit-policy"),
        Some(r#""reader";q=2;w=3600"#)
    );
}

#[tokio::test]
async fn routes_cost_what_they_are_declared_to() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::quota(5, Window::Hour)]),
    );
    let layer = fx.layer_with([rule], |b| {
        b.cost("/v1/search", 3).cost("/v1/reports/{id}", 5)
    });
    let server = fx.serve_principals(layer).await;
    let search = get(&server, "/v1/search", &key).await;
    assert_eq!(search.status, StatusCode::OK);
    assert_eq!(header(&search, "ratelimit"), Some(r#""user";r=2;t=3600"#));
    // 2 left: another search (3) is refused, a report (5) too, a plain call (1) is not.
    assert_eq!(
        get(&server, "/v1/search", &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get(&server, "/v1/reports/9", &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get(&server, "/v1/other", &key).await.status, StatusCode::OK);
}

#[test]
fn a_cost_no_policy_can_admit_is_a_config_error() {
    let rule = QuotaRule::new(KeyBy::Subject, policy("user", [Limit::per_second(2)]));
    let err = QuotaLayer::builder(MemoryStore::new())
        .rule(rule)
        .cost("/v1/export", 3)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("cost 3"), "{err}");
}

#[test]
fn principal_keys_before_authentication_are_a_config_error() {
    let fx = Fixture::new();
    let rule = QuotaRule::new(KeyBy::Subject, policy("user", [Limit::per_second(2)]));
    let Err(err) = Palisade::builder()
        .authenticate(fx.authenticator())
        .limit_clients(fx.layer([rule]))
        .build()
    else {
        panic!("a per-subject rule before authentication was accepted");
    };
    assert!(err.to_string().contains("limit_principals"), "{err}");
}

/// OWASP Authentication Cheat Sheet, "Protect against automated attacks": failed attempts per
/// client address are limited, so credential stuffing stops after a few guesses.
#[tokio::test]
async fn ratelimit_draft12_5_3_failed_authentications_per_ip_lock_out_even_a_valid_key() {
    let fx = Fixture::new();
    let valid = fx.issue(KeySpec::new("alice"));
    let rule = QuotaRule::new(
        KeyBy::client_ip(),
        policy(
            "auth-failures",
            [Limit::quota(3, Window::Every(Duration::from_secs(900)))],
        ),
    )
    .counting(Counting::failed_authentication());
    let guard = Palisade::builder()
        .limit_clients(fx.layer([rule]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;

    // Successes and missing credentials do not count.
    for _ in 0..10 {
        assert_eq!(get(&server, "/", &valid).await.status, StatusCode::OK);
        assert_eq!(server.get("/", &[]).await.status, StatusCode::UNAUTHORIZED);
    }
    let wrong = fx.keys.generate(KeySpec::new("ghost")).unwrap();
    let wrong = wrong.plaintext.expose_secret();
    for _ in 0..3 {
        assert_eq!(
            get(&server, "/", wrong).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = get(&server, "/", &valid).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        locked.json()["violated-policies"],
        serde_json::json!(["auth-failures"])
    );
    // RateLimit fields draft-12 §5.3: too many failed attempts are abnormal usage.
    assert_eq!(
        locked.json()["type"],
        palisade::rejection::ABNORMAL_USAGE_DETECTED
    );
    assert_eq!(locked.json()["code"], "abnormal_usage_detected");
    assert_eq!(header(&locked, "retry-after"), Some("900"));
    let hits = server.hits();
    assert_eq!(
        get(&server, "/", wrong).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(server.hits(), hits);

    // The window ends: the address may try again.
    fx.clock.advance(Duration::from_secs(900));
    let ok = get(&server, "/", &valid).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(header(&ok, "ratelimit").is_none());
}

/// A client behind no trusted proxy cannot escape its per-address bucket by sending a fresh
/// `X-Forwarded-For` with every request (OWASP: do not trust client-supplied addresses).
#[tokio::test]
async fn spoofed_forwarded_for_does_not_escape_the_per_ip_limit() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = || {
        QuotaRule::new(
            KeyBy::client_ip(),
            policy("ip", [Limit::quota(2, Window::Hour)]),
        )
    };
    let untrusted = Palisade::builder()
        .trust_proxy("10.0.0.0/8".parse().unwrap())
        .limit_clients(fx.layer([rule()]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(untrusted).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let spoofed = format!("198.51.100.{i}");
        let r = server
            .get("/", &[("x-api-key", &key), ("x-forwarded-for", &spoofed)])
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);

    // Behind a trusted proxy the forwarded address is the client: distinct buckets.
    let trusted = Palisade::builder()
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .limit_clients(fx.layer([rule()]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(trusted).await;
    for i in 0..4 {
        let forwarded = format!("198.51.100.{i}");
        let r = server
            .get("/", &[("x-api-key", &key), ("x-forwarded-for", &forwarded)])
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn ipv6_clients_are_grouped_by_their_64() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = QuotaRule::new(
        KeyBy::client_ip(),
        policy("ip", [Limit::quota(2, Window::Hour)]),
    );
    let guard = Palisade::builder()
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .limit_clients(fx.layer([rule]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;
    let from = async |ip: &str| {
        server
            .get("/", &[("x-api-key", &key), ("x-forwarded-for", ip)])
            .await
            .status
    };
    assert_eq!(from("2001:db8:0:1::1").await, StatusCode::OK);
    assert_eq!(from("2001:db8:0:1:ffff::2").await, StatusCode::OK);
    // A third address in the same /64 shares the bucket; the next /64 does not.
    assert_eq!(
        from("2001:db8:0:1:dead::3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(from("2001:db8:0:2::1").await, StatusCode::OK);
}

#[tokio::test]
async fn legacy_fields_on_request_and_fields_only_on_refusals() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = || {
        QuotaRule::new(
            KeyBy::Subject,
            policy("user", [Limit::quota(1, Window::Minute)]),
        )
    };
    let legacy = fx.layer_with([rule()], |b| {
        b.headers(RateLimitHeaders::new().with_legacy())
    });
    let server = fx.serve_principals(legacy).await;
    let ok = get(&server, "/", &key).await;
    assert_eq!(header(&ok, "x-ratelimit-limit"), Some("1"));
    assert_eq!(header(&ok, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&ok, "x-ratelimit-reset"), Some("60"));
    let refused = get(&server, "/", &key).await;
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&refused, "retry-after"), Some("60"));

    let quiet = fx.layer_with([rule()], |b| {
        b.headers(RateLimitHeaders::new().only_on_refusals())
    });
    let server = fx.serve_principals(quiet).await;
    let ok = get(&server, "/", &key).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(header(&ok, "ratelimit").is_none());
    assert!(header(&ok, "ratelimit-policy").is_none());
    let refused = get(&server, "/", &key).await;
    assert_eq!(header(&refused, "ratelimit"), Some(r#""user";r=0;t=60"#));
}

/// A store that always fails, to check that quota fails closed.
struct Broken;

impl QuotaStore for Broken {
    async fn check(
        &self,
        _: &QuotaKey,
        _: u64,
        _: Timestamp,
        _: bool,
    ) -> Result<Verdict, StoreError> {
        Err(StoreError::new(
            StoreErrorKind::Unavailable,
            "redis://:hunter2@db down",
        ))
    }
}

#[tokio::test]
async fn a_failing_store_fails_closed_without_leaking_its_error() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let layer = QuotaLayer::builder(Broken)
        .rule(QuotaRule::new(
            KeyBy::Subject,
            policy("user", [Limit::per_second(5)]),
        ))
        .build()
        .unwrap();
    let server = fx.serve_principals(layer).await;
    let r = get(&server, "/", &key).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "temporarily_unavailable");
    assert!(!r.visible_text().contains("hunter2"));
    assert_eq!(server.hits(), 0);
    assert_eq!(
        server.last_refusal().unwrap().reason(),
        "quota_store_unavailable"
    );
}

#[tokio::test]
async fn route_keys_share_one_bucket_per_route() {
    let fx = Fixture::new();
    let alice = fx.issue(KeySpec::new("alice"));
    let bob = fx.issue(KeySpec::new("bob"));
    let rule = QuotaRule::new(
        KeyBy::Route,
        policy("route", [Limit::quota(2, Window::Hour)]),
    );
    let layer = fx.layer_with([rule], |b| b.cost("/v1/expensive/{id}", 1));
    let server = fx.serve_principals(layer).await;
    assert_eq!(
        get(&server, "/v1/expensive/1", &alice).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&server, "/v1/expensive/2", &bob).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&server, "/v1/expensive/3", &alice).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_configuration_file_sets_up_both_quota_stages() {
    use palisade::config::{Config, Format};
    let config = Config::parse(
        r#"
routes:
  - path: /v1/search
  - path: /v1/items
quota:
  policies:
    ip: [{rate: 100, per: 1s}]
    user: [{quota: 4, window: hour}]
  clients:
    - {key: client_ip, policy: ip}
  principals:
    - {key: subject, policy: user}
  costs:
    - {path: /v1/search, cost: 3}
"#,
        Format::Yaml,
    )
    .unwrap();
    let store = config.key_store().unwrap();
    let issued = config
        .api_keys()
        .unwrap()
        .generate(KeySpec::new("alice"))
        .unwrap();
    store.insert(issued.record);
    let key = issued.plaintext.expose_secret();
    let server = TestServer::start(config.palisade(store).unwrap()).await;

    let search = get(&server, "/v1/search", key).await;
    assert_eq!(search.status, StatusCode::OK);
    // Both stages report: the per-address rate and the per-user quota (3 of 4 used).
    let fields = search
        .headers
        .get_all("ratelimit")
        .iter()
        .collect::<Vec<_>>();
    assert_eq!(fields.len(), 2, "{fields:?}");
    // (The system clock: `t` is whatever is left of this hour.)
    assert!(
        fields
            .iter()
            .any(|v| v.to_str().unwrap().starts_with(r#""user";r=1;t="#)),
        "{fields:?}"
    );
    assert_eq!(get(&server, "/v1/items", key).await.status, StatusCode::OK);
    assert_eq!(
        get(&server, "/v1/items", key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// OWASP Authentication Cheat Sheet: a sensitive endpoint gets a stricter limit of its own,
/// beside the general one.
#[tokio::test]
async fn a_rule_limited_to_some_routes_leaves_the_others_alone() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let strict = QuotaRule::new(
        KeyBy::client_ip(),
        policy("login", [Limit::quota(2, Window::Minute)]),
    )
    .on_routes(["/v1/login", "/v1/password/{user}"]);
    let general = QuotaRule::new(KeyBy::client_ip(), policy("ip", [Limit::per_second(100)]));
    let guard = Palisade::builder()
        .limit_clients(fx.layer([strict, general]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;
    assert_eq!(get(&server, "/v1/login", &key).await.status, StatusCode::OK);
    assert_eq!(
        get(&server, "/v1/password/alice", &key).await.status,
        StatusCode::OK
    );
    let refused = get(&server, "/v1/login", &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.json()["violated-policies"],
        serde_json::json!(["login"])
    );
    for _ in 0..5 {
        let ok = get(&server, "/v1/items", &key).await;
        assert_eq!(ok.status, StatusCode::OK);
        // Only the general rule reports on other routes.
        assert_eq!(ok.headers.get_all("ratelimit-policy").iter().count(), 1);
    }
}

/// A store that answers only once two checks are in flight at the same time.
struct NeedsCompany(tokio::sync::Barrier);

impl QuotaStore for NeedsCompany {
    async fn check(
        &self,
        _: &QuotaKey,
        _: u64,
        _: Timestamp,
        _: bool,
    ) -> Result<Verdict, StoreError> {
        self.0.wait().await;
        Ok(Verdict::unlimited())
    }
}

/// With a store that waits for I/O, a request's rules are checked at once (one round trip of
/// latency for all of them): this store would never answer checks made one after the other.
#[tokio::test]
async fn an_async_store_gets_all_rules_of_a_request_at_once() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let layer = QuotaLayer::builder(NeedsCompany(tokio::sync::Barrier::new(2)))
        .rule(QuotaRule::new(
            KeyBy::client_ip(),
            policy("ip", [Limit::per_second(5)]),
        ))
        .rule(QuotaRule::new(
            KeyBy::Subject,
            policy("user", [Limit::per_second(5)]),
        ))
        .build()
        .unwrap();
    let server = fx.serve_principals(layer).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), get(&server, "/", &key))
        .await
        .expect("the two checks were made one after the other");
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_shadow_rule_reports_but_never_refuses() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let candidate = QuotaRule::new(
        KeyBy::Subject,
        policy("candidate", [Limit::quota(2, Window::Hour)]),
    )
    .shadow();
    let enforced = QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::quota(100, Window::Hour)]),
    );
    let server = fx.serve_principals(fx.layer([candidate, enforced])).await;
    for _ in 0..4 {
        let ok = get(&server, "/", &key).await;
        assert_eq!(ok.status, StatusCode::OK);
        // Only the enforced rule is advertised.
        assert_eq!(
            header(&ok, "ratelimit-policy"),
            Some(r#""user";q=100;w=3600"#)
        );
    }
    assert_eq!(server.hits(), 4);
    // The third and fourth requests would have been refused by the candidate.
    let shadows = server.quota_shadows.lock().unwrap().clone();
    assert_eq!(shadows.len(), 2);
    assert_eq!(&*shadows[0].policy, "candidate");
    assert_eq!(shadows[0].retry_after, Duration::from_secs(3_600));
}

/// Exempt networks are matched on the resolved client address: a trusted proxy's forwarded
/// address can be exempt, a client claiming an exempt address in a header cannot.
#[tokio::test]
async fn exempt_networks_are_matched_on_the_trusted_client_address() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let rule = || {
        QuotaRule::new(
            KeyBy::client_ip(),
            policy("ip", [Limit::quota(1, Window::Hour)]),
        )
        .exempt(["198.51.100.0/24".parse().unwrap()])
    };
    let behind_proxy = Palisade::builder()
        .trust_proxy("127.0.0.1/32".parse().unwrap())
        .limit_clients(fx.layer([rule()]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(behind_proxy).await;
    let from = async |ip: &str| {
        server
            .get("/", &[("x-api-key", &key), ("x-forwarded-for", ip)])
            .await
            .status
    };
    for _ in 0..3 {
        assert_eq!(from("198.51.100.5").await, StatusCode::OK);
    }
    assert_eq!(from("203.0.113.1").await, StatusCode::OK);
    assert_eq!(from("203.0.113.1").await, StatusCode::TOO_MANY_REQUESTS);

    // No trusted proxy: the header is the client's claim, and the peer is not exempt.
    let direct = Palisade::builder()
        .limit_clients(fx.layer([rule()]))
        .authenticate(fx.authenticator())
        .build()
        .unwrap();
    let server = TestServer::start(direct).await;
    let claim = [
        ("x-api-key", key.as_str()),
        ("x-forwarded-for", "198.51.100.5"),
    ];
    assert_eq!(server.get("/", &claim).await.status, StatusCode::OK);
    assert_eq!(
        server.get("/", &claim).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A server run without `into_make_service_with_connect_info` gives a per-address rule no
/// address: every caller shares one bucket, and an error saying how to fix it is logged once.
#[tokio::test]
async fn a_per_address_rule_without_peer_addresses_logs_the_fix_once() {
    let captured = support::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let keys = Keys::new();
    let key = keys.issue(KeySpec::new("alice"));
    let per_ip = QuotaPolicy::new("per-ip", [Limit::per_second(100)]);
    let guard = Palisade::builder()
        .limit_clients(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(KeyBy::client_ip(), per_ip))
                .build()
                .unwrap(),
        )
        .authenticate(keys.authenticator())
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(guard)
        // As a TLS listener marks each request (the transport guard refuses keys otherwise).
        .layer(axum::Extension(
            palisade::transport::ConnectionScheme::Https,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // No connect info: the mistake under test.
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for _ in 0..3 {
        let reply = support::send(
            addr,
            http::Request::get("/")
                .header("host", "t")
                .header("x-api-key", &key)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("has no client address").count(),
        1,
        "logged once: {log}"
    );
    assert!(log.contains("into_make_service_with_connect_info"), "{log}");
    assert!(log.contains("per-ip"), "{log}");
}

/// The quota store a deployment names in its settings, chosen at run time.
fn store_named(name: &str) -> Box<dyn palisade::quota::DynQuotaStore> {
    match name {
        "broken" => Box::new(Broken),
        _ => Box::new(MemoryStore::new()),
    }
}

#[tokio::test]
async fn a_store_chosen_at_run_time_serves_through_a_box_dyn() {
    let fx = Fixture::new();
    let key = fx.issue(KeySpec::new("alice"));
    let layer = |store| {
        QuotaLayer::builder(store)
            .clock(fx.clock.clone())
            .rule(QuotaRule::new(
                KeyBy::Subject,
                policy("user", [Limit::per_minute(1).burst(2)]),
            ))
            .build()
            .unwrap()
    };
    let server = fx.serve_principals(layer(store_named("memory"))).await;
    for _ in 0..2 {
        assert_eq!(get(&server, "/", &key).await.status, StatusCode::OK);
    }
    let refused = get(&server, "/", &key).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&refused, "retry-after").is_some());
    assert_eq!(server.hits(), 2);

    let server = fx.serve_principals(layer(store_named("broken"))).await;
    let down = get(&server, "/", &key).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&down, "retry-after"), Some("1"));
    assert!(!down.visible_text().contains("hunter2"));
    assert_eq!(server.hits(), 0);
}

/// RateLimit fields draft-12 §4.1.3: with partition keys on, each `RateLimit` item names its
/// partition as a byte sequence; two callers get two partitions, one caller keeps one.
#[tokio::test]
async fn ratelimit_draft12_4_1_3_partition_keys_tell_callers_apart() {
    let fx = Fixture::new();
    let alice = fx.issue(KeySpec::new("alice"));
    let bob = fx.issue(KeySpec::new("bob"));
    let rule = QuotaRule::new(
        KeyBy::Subject,
        policy("user", [Limit::quota(5, Window::Hour)]),
    );
    let layer = fx.layer_with([rule], |b| {
        b.headers(RateLimitHeaders::new().with_partition_keys())
    });
    let server = fx.serve_principals(layer).await;
    let pk = |r: &Reply| {
        let field = header(r, "ratelimit").unwrap().to_owned();
        let pk = field.split(";pk=").nth(1).unwrap().to_owned();
        assert!(
            pk.starts_with(':') && pk.ends_with(':') && pk.len() == 18,
            "{field}"
        );
        pk
    };
    let a1 = pk(&get(&server, "/", &alice).await);
    let a2 = pk(&get(&server, "/", &alice).await);
    let b1 = pk(&get(&server, "/", &bob).await);
    assert_eq!(a1, a2);
    assert_ne!(a1, b1);
    // Never the identity itself.
    assert!(!a1.contains("alice"));
    // Off by default.
    let plain = fx
        .serve_principals(fx.layer([QuotaRule::new(
            KeyBy::Subject,
            policy("user", [Limit::quota(5, Window::Hour)]),
        )]))
        .await;
    let r = get(&plain, "/", &alice).await;
    assert!(!header(&r, "ratelimit").unwrap().contains("pk="));
}
