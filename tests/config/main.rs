//! A stack built from a configuration file, over real HTTP on loopback: open for the host's own
//! parts (an `Authorizer`, an audit sink, a quota store, a policy source with reload), and
//! refusing at startup every mistake that used to load silently, with an error that names the
//! file, the section and the item.

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use palisade::StoreError;
use palisade::audit::Outcome;
use palisade::authz::{Authorizer, AuthzRequest, LivePolicy, PolicySource, PolicySpec, Refusal};
use palisade::clock::Timestamp;
use palisade::config::{Config, Format};
use palisade::quota::{MemoryStore, QuotaKey, QuotaStore, Verdict};
use support::{MemorySink, Reply, send, serve};

/// A quota store of the host's own: counts its checks, and lets the memory store decide.
#[derive(Clone, Default)]
struct Counted {
    inner: MemoryStore,
    checks: Arc<AtomicUsize>,
}

impl QuotaStore for Counted {
    async fn check(
        &self,
        key: &QuotaKey,
        cost: u64,
        now: Timestamp,
        consume: bool,
    ) -> Result<Verdict, StoreError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.check(key, cost, now, consume).await
    }
}

/// Object-level authorization of the host's own: only `alice` may read order 1.
struct Owner;

impl Authorizer for Owner {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        match request.params.get("id") {
            Some("1") if request.principal.subject() != "alice" => Err(Refusal::deny("not_owner")),
            _ => Ok(()),
        }
    }
}

/// A policy source of the host's own (a table it reads): swappable at run time.
#[derive(Clone)]
struct Table(Arc<Mutex<PolicySpec>>);

impl PolicySource for Table {
    async fn load(&self) -> Result<PolicySpec, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

async fn get_with(addr: SocketAddr, path: &str, key: &str) -> Reply {
    send(
        addr,
        Request::get(path)
            .header("host", "t")
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

async fn get_bearer(addr: SocketAddr, path: &str, authorization: &str) -> Reply {
    send(
        addr,
        Request::get(path)
            .header("host", "t")
            .header("authorization", authorization)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

const FILE: &str = r#"
roles: [{name: reader}]
routes:
  - {path: "/orders/{id}", methods: [GET], roles: [reader]}
quota:
  policies:
    per-user: [{rate: 100, per: 1s}]
  principals:
    - {key: subject, policy: per-user}
"#;

#[tokio::test]
async fn a_file_stack_takes_an_authorizer_an_audit_sink_a_quota_store_and_reloads_its_policy() {
    let config = Config::parse(FILE, Format::Yaml).unwrap();
    let keys = support::Keys::new();
    let alice = keys.issue(palisade::authn::api_key::KeySpec::new("alice").role("reader"));
    let bob = keys.issue(palisade::authn::api_key::KeySpec::new("bob").role("reader"));
    let table = Table(Arc::new(Mutex::new(config.policy_spec())));
    let sink = MemorySink::default();
    let store = Counted::default();
    let guard = config
        .builder()
        .key_store(keys.store.clone())
        .authorizer(Owner)
        .policy(LivePolicy::from_source(&table).await.unwrap())
        .quota_store(store.clone())
        .audit_sink(sink.clone())
        .build()
        .unwrap();
    let handles = guard.handles().clone();
    let addr = serve(
        Router::new()
            .route("/orders/{id}", get(|| async { "order" }))
            .layer(guard),
    )
    .await;

    // The authorizer decides after RBAC; the host's quota store counts; the host's sink records.
    assert_eq!(get_with(addr, "/orders/1", &alice).await.status, 200);
    let refused = get_with(addr, "/orders/1", &bob).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "not_owner");
    assert_eq!(get_with(addr, "/orders/2", &bob).await.status, 200);
    assert_eq!(store.checks.load(Ordering::SeqCst), 3);
    let events = sink.wait_for(3).await;
    assert!(matches!(
        &events[1].outcome,
        Some(Outcome::Refused { layer, reason, .. }) if layer == "authz" && reason == "not_owner"
    ));
    assert_eq!(events[0].quota.as_ref().unwrap().limits[0].remaining, 99);

    // The policy is reloaded from the host's source through the handle the stack returned.
    *table.0.lock().unwrap() = PolicySpec::builder()
        .role("reader", [])
        .role("admin", [])
        .allow([http::Method::GET], "/orders/{id}", ["admin"])
        .build();
    let policy = handles.policy().expect("the live policy");
    policy.reload(&table).await.unwrap();
    assert_eq!(policy.reloads(), 1);
    let after = get_with(addr, "/orders/2", &bob).await;
    assert_eq!(after.status, 403);
    assert_eq!(after.json()["code"], "missing_role");
    handles.audit().expect("the audit queue").shutdown().await;
    assert_eq!(sink.wait_for(4).await.len(), 4);
}

/// Writes `text` to a file named `name` in a fresh directory and builds its stack.
fn build_file(name: &str, text: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!(
        "palisade-config-{}-{}",
        std::process::id(),
        name.replace('.', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let result = Config::from_path(&path)
        .and_then(|c| {
            c.palisade(palisade::authn::api_key::MemoryKeyStore::new())
                .map(|_| ())
        })
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

const ROUTES: &str = "routes:\n  - {path: \"/orders/{id}\", methods: [GET, POST]}\n";

/// Each mistake that used to pass startup silently (or fail with an opaque message) stops it,
/// and the error names the file, the section and the item.
#[tokio::test]
async fn startup_mistakes_name_the_file_the_section_and_the_item() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "a validation operation for a route no rule declares",
            format!(
                "{ROUTES}validation:\n  operations:\n    - {{path: /nope, method: POST, body: {{type: object}}}}\n"
            ),
            &[
                "validation.operations",
                "[0] (POST /nope)",
                "no rule of `routes` declares it",
            ],
        ),
        (
            "a validation operation for a method the route does not serve",
            format!(
                "{ROUTES}validation:\n  operations:\n    - {{path: \"/orders/{{id}}\", method: DELETE}}\n"
            ),
            &["validation.operations", "[0] (DELETE /orders/{id})"],
        ),
        (
            "a misspelled method",
            "routes:\n  - {path: /orders, methods: [GET, DELET]}\n".to_owned(),
            &[
                "routes[0] (/orders)",
                "`DELET` is not a standard HTTP method",
                "extension_methods",
            ],
        ),
        (
            "a quota cost for an undeclared route",
            format!(
                "{ROUTES}quota:\n  policies: {{p: [{{rate: 5, per: 1s}}]}}\n  principals: [{{key: subject, policy: p}}]\n  costs: [{{path: /search, cost: 2}}]\n"
            ),
            &[
                "quota.costs",
                "[0] (/search)",
                "no rule of `routes` declares it",
            ],
        ),
        (
            "a quota rule's routes naming an undeclared route",
            format!(
                "{ROUTES}quota:\n  policies: {{p: [{{rate: 5, per: 1s}}]}}\n  principals: [{{key: subject, policy: p, routes: [/login]}}]\n"
            ),
            &["quota.principals", "[0].routes (/login)"],
        ),
        (
            "a schema that does not compile",
            format!(
                "{ROUTES}validation:\n  operations:\n    - path: \"/orders/{{id}}\"\n      method: POST\n      body: {{type: object, properties: {{qty: {{type: integer, minimum: true}}}}}}\n"
            ),
            &[
                "validation.operations",
                "[0] (POST /orders/{id})",
                "body schema at `/properties/qty/minimum`",
            ],
        ),
        (
            "a duration that does not parse",
            format!("{ROUTES}quota:\n  policies: {{p: [{{rate: 5, per: 1x}}]}}\n"),
            &["quota.policies", "`1x` is not a duration", "such as 1s"],
        ),
        (
            "a window that does not parse",
            format!("{ROUTES}quota:\n  policies: {{p: [{{quota: 5, window: fortnight}}]}}\n"),
            &["`fortnight` is not a window", "minute, hour, day, month"],
        ),
        (
            "an IPv6 prefix longer than an address",
            format!(
                "{ROUTES}quota:\n  policies: {{p: [{{rate: 5, per: 1s}}]}}\n  clients: [{{key: client_ip, policy: p, ipv6_prefix: 129}}]\n"
            ),
            &[
                "rule 0 (policy `p`)",
                "at most 32 (IPv4) and 128 (IPv6)",
                "/129",
            ],
        ),
        (
            "a limit that is neither a rate nor a quota",
            format!("{ROUTES}quota:\n  policies: {{p: [{{per: 1s}}]}}\n"),
            &["a limit needs `rate` (with `per`) or `quota` (with `window`)"],
        ),
    ];
    for (i, (what, text, names)) in cases.iter().enumerate() {
        let file = format!("case{i}.yaml");
        let err = build_file(&file, text).expect_err(what);
        assert!(err.contains(&file), "{what}: the file is not named: {err}");
        for n in *names {
            assert!(err.contains(n), "{what}: `{n}` is not named: {err}");
        }
    }
    // The code path checks prefix lengths the same way (it used to clamp them silently).
    let p = palisade::quota::QuotaPolicy::new("p", [palisade::quota::Limit::per_second(5)]);
    let err = palisade::quota::QuotaLayer::builder(MemoryStore::new())
        .rule(palisade::quota::QuotaRule::new(
            palisade::quota::KeyBy::ClientIp {
                v4_prefix: 33,
                v6_prefix: 64,
            },
            p,
        ))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rule 0 (policy `p`)") && err.contains("/33"),
        "{err}"
    );
    // A declared extension method loads.
    build_file(
        "extension.yaml",
        "extension_methods: [PURGE]\nroutes:\n  - {path: /cache, methods: [PURGE]}\n",
    )
    .unwrap();
}

/// The host's own refusal format, for every layer's refusals.
struct HouseStyle;

impl palisade::rejection::RefusalFormat for HouseStyle {
    fn render(&self, rejection: &palisade::Rejection) -> (http::HeaderValue, Bytes) {
        let body = serde_json::json!({"error": {"code": rejection.public_reason()}});
        (
            http::HeaderValue::from_static("application/vnd.acme.error+json"),
            Bytes::from(body.to_string()),
        )
    }
}

/// One refusal format for the whole stack: authn (401), authz (403), quota (429) and
/// validation (422) all answer in the host's format, keep palisade's status and headers, and
/// never reach the handler.
#[tokio::test]
async fn a_host_refusal_format_renders_every_layers_refusals() {
    let config = Config::parse(
        r#"
roles: [{name: reader}, {name: admin}]
routes:
  - {path: /orders, methods: [GET], roles: [reader]}
  - {path: /orders, methods: [POST], roles: [reader]}
  - {path: /admin, methods: [GET], roles: [admin]}
quota:
  policies: {tight: [{rate: 1, per: 1h, burst: 2}]}
  principals: [{key: subject, policy: tight, routes: [/orders]}]
validation:
  operations:
    - {path: /orders, method: POST, body: {type: object, required: [sku]}}
"#,
        Format::Yaml,
    )
    .unwrap();
    let keys = support::Keys::new();
    let reader = keys.issue(palisade::authn::api_key::KeySpec::new("r").role("reader"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let guard = config
        .builder()
        .key_store(keys.store.clone())
        .refusal_format(HouseStyle)
        .build()
        .unwrap();
    let handler = move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    };
    let addr = serve(
        Router::new()
            .route("/orders", get(handler.clone()).post(handler.clone()))
            .route("/admin", get(handler))
            .layer(guard),
    )
    .await;
    let call = |method: http::Method, path: &'static str, key: Option<String>, body: &str| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "t")
            .header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        send(
            addr,
            b.body(Full::new(Bytes::from(body.to_owned()))).unwrap(),
        )
    };
    let cases = [
        (
            call(http::Method::GET, "/orders", None, "").await,
            401,
            "missing_credentials",
        ),
        (
            call(http::Method::GET, "/admin", Some(reader.clone()), "").await,
            403,
            "missing_role",
        ),
        (
            call(http::Method::POST, "/orders", Some(reader.clone()), "{}").await,
            422,
            "schema_violation",
        ),
    ];
    // The 422 used one unit of the quota (2 of burst); one more admitted, then 429.
    assert_eq!(
        call(http::Method::GET, "/orders", Some(reader.clone()), "")
            .await
            .status,
        200
    );
    let too_many = call(http::Method::GET, "/orders", Some(reader), "").await;
    for (reply, status, code) in cases.into_iter().chain([(too_many, 429, "quota_exceeded")]) {
        assert_eq!(reply.status, status, "{code}");
        assert_eq!(
            reply.headers["content-type"], "application/vnd.acme.error+json",
            "{code}"
        );
        assert_eq!(reply.json()["error"]["code"], code);
        assert_eq!(reply.headers["cache-control"], "no-store", "{code}");
        match status {
            401 => assert!(reply.headers.contains_key("www-authenticate")),
            429 => {
                assert!(reply.headers.contains_key("retry-after"));
                assert!(reply.headers.contains_key("ratelimit"));
            }
            _ => {}
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "only the admitted call reached the handler"
    );
}

/// Under `Router::nest`, a stack mounted on the inner router names the inner router's
/// templates (authorization, quota costs and validation alike); mounted on the outer router,
/// the full ones.
#[tokio::test]
async fn under_router_nest_templates_are_named_where_the_stack_is_mounted() {
    let inner_file = r#"
routes:
  - {path: "/orders/{id}", methods: [GET, POST]}
quota:
  policies: {p: [{rate: 1, per: 1h, burst: 10}]}
  principals: [{key: subject, policy: p}]
  costs: [{path: "/orders/{id}", cost: 4}]
validation:
  operations:
    - {path: "/orders/{id}", method: POST, body: {type: object, required: [sku]}}
"#;
    let keys = support::Keys::new();
    let key = keys.issue(palisade::authn::api_key::KeySpec::new("alice"));
    let inner_guard = Config::parse(inner_file, Format::Yaml)
        .unwrap()
        .palisade(keys.store.clone())
        .unwrap();
    let inner = Router::new()
        .route(
            "/orders/{id}",
            get(|| async { "order" }).post(|| async { "created" }),
        )
        .layer(inner_guard);
    let addr = serve(Router::new().nest("/api/{tenant}", inner)).await;
    let post = |body: &'static str| {
        send(
            addr,
            Request::post("/api/acme/orders/7")
                .header("host", "t")
                .header("x-api-key", &key)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
    };
    let ok = get_with(addr, "/api/acme/orders/7", &key).await;
    assert_eq!(ok.status, 200);
    // The cost of the inner template applies: 10 - 4.
    assert!(
        ok.headers["ratelimit"].to_str().unwrap().contains("r=6"),
        "{:?}",
        ok.headers
    );
    assert_eq!(
        post("{}").await.status,
        422,
        "the inner operation validates"
    );
    // Mounted on the outer router, the same stack names the full templates.
    let outer_file = inner_file.replace("\"/orders/{id}\"", "\"/api/{tenant}/orders/{id}\"");
    let outer_guard = Config::parse(&outer_file, Format::Yaml)
        .unwrap()
        .palisade(keys.store.clone())
        .unwrap();
    let inner = Router::new().route("/orders/{id}", get(|| async { "order" }));
    let addr = serve(
        Router::new()
            .nest("/api/{tenant}", inner)
            .layer(outer_guard),
    )
    .await;
    assert_eq!(get_with(addr, "/api/acme/orders/7", &key).await.status, 200);
}

const STORES: &str = r#"
roles: [{name: reader}]
routes:
  - {path: "/orders/{id}", methods: [GET], roles: [reader]}
quota:
  store: {type: memory, max_keys: 1000}
  stores:
    edge: {type: memory, max_keys: 50}
  policies:
    per-ip: [{rate: 100, per: 1s}]
    per-user: [{rate: 100, per: 1s}]
    per-tenant: [{quota: 1000, window: day}]
  clients:
    - {key: client_ip, policy: per-ip, store: edge}
  principals:
    - {key: subject, policy: per-user}
    - {key: subject, policy: per-tenant, store: billing}
"#;

#[tokio::test]
async fn quota_rules_count_in_the_store_they_name_and_the_handles_show_each_store() {
    let config = Config::parse(STORES, Format::Yaml).unwrap();
    let keys = support::Keys::new();
    let alice = keys.issue(palisade::authn::api_key::KeySpec::new("alice").role("reader"));
    // `billing` is the host's own store, named in the file by the rule that uses it.
    let billing = Counted::default();
    let guard = config
        .builder()
        .key_store(keys.store.clone())
        .named_quota_store("billing", billing.clone())
        .build()
        .unwrap();
    let handles = guard.handles().clone();
    let addr = serve(
        Router::new()
            .route("/orders/{id}", get(|| async { "order" }))
            .layer(guard),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get_with(addr, "/orders/1", &alice).await.status, 200);
    }
    assert_eq!(billing.checks.load(Ordering::SeqCst), 3);

    // One view per stage: the per-client stage counts in `edge` only, the per-principal one
    // in its own store (the per-user rule) and `billing`.
    let stats = handles.quota();
    assert_eq!(stats.len(), 2);
    let clients = stats[0].stores();
    let (name, edge) = &clients[1];
    assert_eq!(&**name, "edge");
    assert_eq!((edge.keys, edge.max_keys), (Some(1), Some(50)));
    // Both stages share the section's `store`: it holds the per-user key alone.
    assert_eq!(clients[0].1.keys, Some(1));
    let principals = stats[1].stores();
    assert_eq!(&*principals[0].0, palisade::quota::DEFAULT_STORE);
    assert_eq!(
        (principals[0].1.keys, principals[0].1.max_keys),
        (Some(1), Some(1000))
    );
    assert_eq!(&*principals[1].0, "billing");
    // The host's store keeps no figures of its own.
    assert_eq!(principals[1].1, palisade::quota::StoreStats::default());
}

#[test]
fn a_quota_store_no_rule_chooses_or_a_name_no_store_has_stops_startup() {
    let unused = STORES.replace(", store: edge}", "}");
    let err = Config::parse(&unused, Format::Yaml)
        .unwrap()
        .builder()
        .named_quota_store("billing", MemoryStore::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("store `edge` is chosen by no rule"), "{err}");
    let err = Config::parse(STORES, Format::Yaml)
        .unwrap()
        .builder()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("chooses store `billing`, which `stores` does not name"),
        "{err}"
    );
}

#[tokio::test]
async fn an_extension_method_the_file_declares_is_granted_and_only_that_one() {
    let config = Config::parse(
        "extension_methods: [PURGE]\nroutes:\n  - {path: /cache, methods: [PURGE]}\n",
        Format::Yaml,
    )
    .unwrap();
    let keys = support::Keys::new();
    let ops = keys.issue(palisade::authn::api_key::KeySpec::new("ops"));
    let guard = config
        .builder()
        .key_store(keys.store.clone())
        .build()
        .unwrap();
    let addr = serve(
        Router::new()
            .route("/cache", axum::routing::any(|| async { "purged" }))
            .layer(guard),
    )
    .await;
    let with = |method: &str| {
        Request::builder()
            .method(method)
            .uri("/cache")
            .header("host", "t")
            .header("x-api-key", &ops)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let purged = send(addr, with("PURGE")).await;
    assert_eq!(purged.status, 200, "{}", purged.visible_text());
    // The router serves every method there, the policy grants PURGE only: DELETE is refused
    // as a method the route does not serve, offering what the caller may use.
    let deleted = send(addr, with("DELETE")).await;
    assert_eq!(deleted.status, 405);
    assert_eq!(deleted.json()["code"], "method_not_allowed");
    assert_eq!(deleted.headers["allow"], "PURGE");
}

/// A key store of the host's own: counts its lookups, and lets the memory store answer.
#[derive(Clone)]
struct CountedKeys {
    inner: palisade::authn::api_key::MemoryKeyStore,
    lookups: Arc<AtomicUsize>,
}

impl palisade::authn::api_key::KeyStore for CountedKeys {
    async fn get(
        &self,
        id: &palisade::authn::api_key::KeyId,
    ) -> Result<Option<palisade::authn::api_key::KeyRecord>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
}

/// `api_keys.cache` puts a cache in front of the host's key store, and the stack's bus drops
/// a revoked key from it at once.
#[tokio::test]
async fn the_files_key_cache_fronts_the_host_store_and_hears_revocations_on_the_bus() {
    use palisade::invalidation::{InProcessBus, Invalidation, InvalidationBus};
    let config = Config::parse(
        "api_keys: {cache: {ttl: 1h, capacity: 100}}\nroles: [{name: reader}]\n\
         routes: [{path: \"/orders/{id}\", methods: [GET], roles: [reader]}]\n",
        Format::Yaml,
    )
    .unwrap();
    let keys = support::Keys::new();
    let issued = keys
        .keys
        .generate(palisade::authn::api_key::KeySpec::new("ada").role("reader"))
        .unwrap();
    keys.store.insert(issued.record.clone());
    let key = issued.plaintext.expose_secret().to_owned();
    let store = CountedKeys {
        inner: keys.store.clone(),
        lookups: Arc::default(),
    };
    let bus = InProcessBus::new();
    let guard = config
        .builder()
        .key_store(store.clone())
        .invalidation(bus.clone())
        .build()
        .unwrap();
    let addr = serve(
        Router::new()
            .route("/orders/{id}", get(|| async { "order" }))
            .layer(guard),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get_with(addr, "/orders/1", &key).await.status, 200);
    }
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        1,
        "answered from the cache"
    );

    // Revoked in the store, then announced: the cache lets go at once, not in an hour.
    keys.store
        .revoke(issued.record.id(), Timestamp::from_unix_secs(1));
    bus.publish(&Invalidation::ApiKeyRevoked {
        key_id: *issued.record.id(),
    })
    .await
    .unwrap();
    assert_eq!(get_with(addr, "/orders/1", &key).await.status, 401);
    assert_eq!(store.lookups.load(Ordering::SeqCst), 2);

    // A typo in the section names the item.
    let err = Config::parse("api_keys: {cache: {tll: 1h}}\n", Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tll"), "{err}");
}

/// `jwt.revocation_horizon` and `jwt.revocation_capacity` take effect: a `jti` revoked on the
/// stack's bus is refused, and forgotten once the file's horizon (1 s here) has passed, while
/// the default horizon (24 h) still refuses it; past a capacity of 16, an older token nobody
/// revoked is refused too (the floor), where the default capacity still serves it. Without a
/// bus either item fails startup
/// (`tests/fixtures/cli/config-errors/jwt-revocation-horizon-without-bus.yaml`).
#[cfg(feature = "jwt")]
#[tokio::test]
async fn the_files_revocation_horizon_and_capacity_bound_what_is_kept() {
    use jsonwebtoken::{EncodingKey, Header};
    use palisade::clock::{Clock, SystemClock};
    use palisade::invalidation::{InProcessBus, Invalidation, InvalidationBus};

    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let pem = std::fs::read_to_string(fixtures.join("es256.pub.pem")).unwrap();
    let pem: String = pem.lines().map(|l| format!("            {l}\n")).collect();
    let now = SystemClock.now().as_unix_secs();
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("es256".into());
    let key = EncodingKey::from_ec_der(&std::fs::read(fixtures.join("es256.key.der")).unwrap());
    let token = |jti: &str| {
        let claims = serde_json::json!({
            "iss": "https://issuer.test", "aud": "orders", "sub": "ada", "jti": jti,
            "iat": now, "exp": now + 3600,
        });
        format!(
            "Bearer {}",
            support::encode_jwt(&header, &claims, &key).unwrap()
        )
    };
    let (token, bystander) = (token("t-1"), token("t-2"));
    let served = |extra: &'static str| {
        let pem = pem.clone();
        async move {
            let text = format!(
                "api_keys: {{enabled: false}}\nroutes: [{{path: /orders, methods: [GET]}}]\n\
                 jwt:\n  issuers:\n    - issuer: https://issuer.test\n      audiences: [orders]\n      \
                 keys:\n        - kid: es256\n          pem: |\n{pem}{extra}"
            );
            let bus = InProcessBus::new();
            let guard = Config::parse(&text, Format::Yaml)
                .unwrap()
                .builder()
                .invalidation(bus.clone())
                .build()
                .unwrap();
            let addr = serve(
                Router::new()
                    .route("/orders", get(|| async { "ok" }))
                    .layer(guard),
            )
            .await;
            (addr, bus)
        }
    };
    let short = served("  revocation_horizon: 1s\n").await;
    let default = served("").await;
    for (addr, bus) in [&short, &default] {
        assert_eq!(get_bearer(*addr, "/orders", &token).await.status, 200);
        bus.publish(&Invalidation::TokenRevoked {
            issuer: "https://issuer.test".into(),
            jti: "t-1".into(),
        })
        .await
        .unwrap();
        assert_eq!(get_bearer(*addr, "/orders", &token).await.status, 401);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    let (addr, _) = &short;
    assert_eq!(
        get_bearer(*addr, "/orders", &token).await.status,
        200,
        "kept for the file's horizon only"
    );
    let (addr, _) = &default;
    assert_eq!(get_bearer(*addr, "/orders", &token).await.status, 401);

    let small = served("  revocation_capacity: 16\n").await;
    for (addr, bus) in [&small, &default] {
        assert_eq!(get_bearer(*addr, "/orders", &bystander).await.status, 200);
        for i in 0..200 {
            bus.publish(&Invalidation::TokenRevoked {
                issuer: "https://issuer.test".into(),
                jti: format!("other-{i}").into(),
            })
            .await
            .unwrap();
        }
    }
    let (addr, _) = &small;
    assert_eq!(
        get_bearer(*addr, "/orders", &bystander).await.status,
        401,
        "past the file's capacity, older tokens are refused"
    );
    let (addr, _) = &default;
    assert_eq!(get_bearer(*addr, "/orders", &bystander).await.status, 200);
}
