//! Runs one API-key authentication case N times, for instruction counts under callgrind and,
//! with `PALISADE_COUNT_ALLOCATIONS=1`, heap allocations per request (dhat)
//! (repeatable, unlike wall time on a shared machine). Not a criterion bench: run it through
//! `benches/callgrind.sh`, which subtracts a run with N = 0 to leave the per-request cost.
//!
//! Usage: `instructions CASE N` with CASE one of valid, unknown_id, wrong_secret,
//! bad_checksum, missing (the authenticator alone), `stack:CASE` (an axum router behind
//! palisade, through `oneshot`), `stack:bare` (the same router without palisade) or
//! `stack:passthrough` (the router behind a no-op tower layer: what any middleware costs), or
//! `stack:authz-allow` / `stack:authz-deny` (a valid key through authn and authz), or the quota
//! cases: `stack:quota-quiet` / `stack:quota-fields` (a per-IP `QuotaLayer` alone, without or
//! with `RateLimit` fields on 200), `stack:governor` / `stack:governor-fields` (tower_governor
//! per peer IP, without or with its `x-ratelimit` fields), `stack:quota-clients` (a per-IP
//! rate and a failed-authentication limit) and `stack:full` (per-IP quota, authn, per-subject
//! quota with fields, authz), `stack:jwt` (a repeated ES256 bearer token through authn) and
//! `stack:audit` (the audit layer's request path, its queue never drained); or
//! `dpop:fresh-proof` (a cached DPoP-bound ES256 token with a fresh proof, the authenticator
//! alone) beside `dpop:uncached-es256` (a plain ES256 token checked with the cache off): both
//! sign their 500 tokens or proofs first, whatever N (at most 500), so N = 0 subtracts it.

mod support;

#[path = "support/dpop.rs"]
mod dpop;

#[path = "support/order.rs"]
mod order;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use palisade::authn::Authenticator;
use palisade::authz::{AuthzLayer, LivePolicy, PolicySpec};
use palisade::quota::{
    Counting, KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule, RateLimitHeaders,
};
use palisade::{Palisade, Principal};
use support::KeyFixture;
use tower::ServiceExt;

const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 4567);

/// An ES256 token and a `JwtAuthenticator` with its static key (`stack:jwt`: the verified-token
/// cache answers every request but the first).
mod jwt {
    use palisade::authn::jwt::{Issuer, JwtAuthenticator, Key};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/jwt/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    pub(crate) fn authenticator() -> JwtAuthenticator {
        let pem = String::from_utf8(fixture("es256.pub.pem")).unwrap();
        JwtAuthenticator::builder()
            .issuer(
                Issuer::new("https://idp.palisade.test/realms/acme")
                    .key(Key::from_pem(&pem).unwrap().with_kid("k"))
                    .audience("orders-api"),
            )
            .build()
            .unwrap()
    }

    /// The same claims as `benches/jwt.rs`: a Keycloak-like access token of ~750 bytes.
    pub(crate) fn token() -> String {
        let claims = serde_json::json!({
            "iss": "https://idp.palisade.test/realms/acme", "aud": "orders-api",
            "sub": "f3c2a1e0-7d4b-4c1a-9e8f-0a1b2c3d4e5f",
            "exp": 4_102_444_800u64, "iat": 1_767_225_600u64, "jti": "8c1e4f52-2b7d-4d8e-a1c3-5f6e7d8c9b0a",
            "typ": "Bearer", "azp": "orders-web", "scope": "openid profile orders:read orders:write",
            "realm_access": {"roles": ["admin", "offline_access", "uma_authorization"]},
            "email": "alice@example.com", "preferred_username": "alice",
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k".into());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&fixture("es256.key.der"));
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

/// A limit no run exhausts.
fn generous(name: &str) -> QuotaPolicy {
    QuotaPolicy::new(name, [Limit::per_second(1_000_000)])
}

/// Per-IP quota, authn with a valid key, per-user quota with fields, and authz granting
/// `method` on `template` to the caller's role.
fn full_stack(
    f: &KeyFixture,
    method: http::Method,
    template: &str,
) -> palisade::PalisadeBuilder<
    palisade::authn::api_key::ApiKeyAuthenticator<palisade::authn::api_key::MemoryKeyStore>,
    AuthzLayer,
    QuotaLayer<MemoryStore>,
    QuotaLayer<MemoryStore>,
> {
    let policy = PolicySpec::builder()
        .role("admin", [])
        .allow([method], template, ["admin"])
        .build();
    Palisade::builder()
        .limit_clients(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(KeyBy::client_ip(), generous("ip")))
                .headers(RateLimitHeaders::new().only_on_refusals())
                .build()
                .unwrap(),
        )
        .authenticate(f.keys.authenticator(f.store.clone()))
        .limit_principals(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(KeyBy::Subject, generous("user")))
                .build()
                .unwrap(),
        )
        .authorize(AuthzLayer::new(LivePolicy::from_spec(&policy).unwrap()))
}

/// Counts heap allocations (dhat in testing mode), to report allocations per request.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn allocations() -> u64 {
    if std::env::var_os("PALISADE_COUNT_ALLOCATIONS").is_some() {
        dhat::HeapStats::get().total_blocks
    } else {
        0
    }
}

fn report(n: u64, before: u64) {
    if n > 0 && std::env::var_os("PALISADE_COUNT_ALLOCATIONS").is_some() {
        let per = (allocations() - before) as f64 / n as f64;
        println!("allocations/request {per:.2}");
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let (Some(case), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: instructions CASE N");
        return;
    };
    let n: u64 = n.parse().expect("N is a number");
    // Counting only when asked: dhat's bookkeeping would distort instruction counts.
    let counting = std::env::var_os("PALISADE_COUNT_ALLOCATIONS").is_some();
    let _profiler = if std::env::var_os("PALISADE_DHAT_PROFILE").is_some() {
        Some(dhat::Profiler::new_heap())
    } else {
        counting.then(|| dhat::Profiler::builder().testing().build())
    };
    let f = KeyFixture::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(which) = case.strip_prefix("dpop:") {
        dpop_case(which, n);
        return;
    }
    if let Some(which) = case.strip_prefix("order:") {
        // `POST /v1/orders` with the ~1 KB order: `order:bare` takes the bytes, `order:validate`
        // is the validation layer + `Validated<Order>` alone, `order:full` the whole stack
        // (per-IP quota, authn, per-user quota, authz, validation) with a valid key.
        let body = order::body();
        let validate = || {
            palisade::validate::ValidateLayer::builder()
                .operation(
                    http::Method::POST,
                    "/v1/orders",
                    palisade::validate::Operation::new().json_body(
                        palisade::validate::SchemaSet::new()
                            .compile(&order::schema())
                            .unwrap(),
                    ),
                )
                .build()
                .unwrap()
        };
        let validated =
            Router::new().route(
                "/v1/orders",
                axum::routing::post(
                    |palisade::validate::Validated(o): palisade::validate::Validated<
                        order::Order,
                    >| async move {
                        black_box(o);
                        "ok"
                    },
                ),
            );
        let router: Router = match which {
            "bare" => Router::new().route(
                "/v1/orders",
                axum::routing::post(|b: axum::body::Bytes| async move {
                    black_box(b);
                    "ok"
                }),
            ),
            // The floor: serde_json builds `Order` from the bytes, with no check at all.
            "serde" => Router::new().route(
                "/v1/orders",
                axum::routing::post(|b: axum::body::Bytes| async move {
                    let order: order::Order = serde_json::from_slice(&b).unwrap();
                    black_box(order);
                    "ok"
                }),
            ),
            "validate" => validated.layer(validate()),
            _ => validated.layer(
                full_stack(&f, http::Method::POST, "/v1/orders")
                    .validate(validate())
                    .build()
                    .unwrap(),
            ),
        };
        let key = f.key("valid").unwrap().to_owned();
        let req = || {
            let mut r = http::Request::post("/v1/orders")
                .header("content-type", "application/json")
                .header("content-length", body.len())
                .header("x-api-key", &key)
                .body(Body::from(body.clone()))
                .unwrap();
            r.extensions_mut().insert(ConnectInfo(PEER));
            r.extensions_mut()
                .insert(palisade::transport::ConnectionScheme::Https);
            r
        };
        let res = rt.block_on(router.clone().oneshot(req())).unwrap();
        assert_eq!(res.status(), http::StatusCode::OK, "{which}");
        let before = allocations();
        rt.block_on(async {
            for _ in 0..n {
                black_box(router.clone().oneshot(req()).await.unwrap());
            }
        });
        report(n, before);
        return;
    }
    if let Some(case) = case.strip_prefix("stack:") {
        let router: Router = Router::new().route(
            "/v1/orders/{id}",
            get(|p: Option<Principal>| async move {
                black_box(p);
                "ok"
            }),
        );
        let router = if let Some(granted_to) = case.strip_prefix("authz-") {
            // authn + authz: the route granted to `admin` (the caller's role) or to `root`.
            let role = if granted_to == "allow" {
                "admin"
            } else {
                "root"
            };
            let policy = PolicySpec::builder()
                .role("admin", [])
                .role("root", [])
                .allow([http::Method::GET], "/v1/orders/{id}", [role])
                .build();
            router.layer(
                Palisade::builder()
                    .authenticate(f.keys.authenticator(f.store.clone()))
                    .authorize(AuthzLayer::new(LivePolicy::from_spec(&policy).unwrap()))
                    .build()
                    .unwrap(),
            )
        } else if case == "quota-clients" {
            // The quickstart's client stage: a per-IP rate and a failed-authentication limit.
            router.layer(
                QuotaLayer::builder(MemoryStore::new())
                    .rule(QuotaRule::new(KeyBy::client_ip(), generous("ip")))
                    .rule(
                        QuotaRule::new(KeyBy::client_ip(), generous("failures"))
                            .counting(Counting::failed_authentication()),
                    )
                    .headers(RateLimitHeaders::new().only_on_refusals())
                    .build()
                    .unwrap(),
            )
        } else if let Some(fields) = case.strip_prefix("quota-") {
            let headers = if fields == "fields" {
                RateLimitHeaders::new()
            } else {
                RateLimitHeaders::new().only_on_refusals()
            };
            router.layer(
                QuotaLayer::builder(MemoryStore::new())
                    .rule(QuotaRule::new(KeyBy::client_ip(), generous("ip")))
                    .headers(headers)
                    .build()
                    .unwrap(),
            )
        } else if let Some(fields) = case.strip_prefix("governor") {
            let mut config = tower_governor::governor::GovernorConfigBuilder::default();
            config.per_nanosecond(1_000).burst_size(1_000_000);
            if fields == "-fields" {
                let config = config.use_headers().finish().unwrap();
                router.layer(tower_governor::GovernorLayer::new(config))
            } else {
                router.layer(tower_governor::GovernorLayer::new(config.finish().unwrap()))
            }
        } else if case == "full" {
            router.layer(
                full_stack(&f, http::Method::GET, "/v1/orders/{id}")
                    .build()
                    .unwrap(),
            )
        } else if case == "jwt" {
            router.layer(
                Palisade::builder()
                    .authenticate(jwt::authenticator())
                    .build()
                    .unwrap(),
            )
        } else if case == "audit" {
            // The audit layer's request path alone: its queue's task is spawned on a runtime
            // that is never driven, so no event is drained (the capacity exceeds N) and only
            // what the request thread does is counted.
            let idle = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let (audit, _handle) = idle.block_on(async {
                palisade::audit::AuditLayer::builder(palisade::audit::TracingSink)
                    .capacity(1 << 20)
                    .build()
                    .unwrap()
            });
            std::mem::forget(idle);
            router.layer(audit)
        } else if case == "bare" {
            router
        } else if case == "passthrough" {
            // The cost of any tower layer added with `Router::layer`: a no-op one.
            router.layer(tower::util::MapRequestLayer::new(
                |r: axum::extract::Request| r,
            ))
        } else {
            router.layer(
                Palisade::builder()
                    .authenticate(f.keys.authenticator(f.store.clone()))
                    .build()
                    .unwrap(),
            )
        };
        let key = match case {
            "bare" | "passthrough" | "audit" | "quota-quiet" | "quota-fields" | "quota-clients"
            | "governor" | "governor-fields" => None,
            "authz-allow" | "authz-deny" | "full" => f.key("valid"),
            "jwt" => None,
            case => f.key(case),
        };
        let bearer = (case == "jwt").then(|| format!("Bearer {}", jwt::token()));
        // One request outside the count, in every run (N = 0 too): lazy one-time setup (clock
        // calibration, first allocations) is not a per-request cost.
        let warm = http::Request::get("/v1/orders/42")
            .extension(ConnectInfo(PEER))
            .extension(palisade::transport::ConnectionScheme::Https)
            .body(Body::empty())
            .unwrap();
        rt.block_on(async { black_box(router.clone().oneshot(warm).await.unwrap()) });
        let before = allocations();
        rt.block_on(async {
            for _ in 0..n {
                let mut b = http::Request::get("/v1/orders/42");
                if let Some(key) = key {
                    b = b.header("x-api-key", key);
                }
                if let Some(bearer) = &bearer {
                    b = b.header("authorization", bearer);
                }
                let mut req = b.body(Body::empty()).unwrap();
                // The peer address the server would record (per-IP limits key on it).
                req.extensions_mut().insert(ConnectInfo(PEER));
                // What a TLS listener marks (the transport guard refuses keys otherwise).
                req.extensions_mut()
                    .insert(palisade::transport::ConnectionScheme::Https);
                let res = router.clone().oneshot(req).await;
                black_box(res.unwrap());
            }
        });
        report(n, before);
        return;
    }
    if let Some(which) = case.strip_prefix("cached:") {
        cached_case(&f, &rt, which, n);
        return;
    }
    let authenticator = f.keys.authenticator(f.store.clone());
    let (parts, ()) = http::Request::get("/v1/orders/42")
        .header("x-api-key", f.key(&case).unwrap_or_default())
        .body(())
        .unwrap()
        .into_parts();
    let mut parts = parts;
    if case == "missing" {
        parts.headers.clear();
    }
    let before = allocations();
    rt.block_on(async {
        for _ in 0..n {
            black_box(authenticator.authenticate(black_box(&parts)).await);
        }
    });
    report(n, before);
}

/// `cached:valid`, `cached:unknown_id` or `cached:wrong_secret`: the authenticator over a
/// `CachedKeyStore` whose entry (a record, or a remembered "unknown") was filled by one warm-up
/// request before counting, so N minus 0 counts cache hits only.
fn cached_case(f: &KeyFixture, rt: &tokio::runtime::Runtime, which: &str, n: u64) {
    let cached = palisade::authn::api_key::CachedKeyStore::builder(f.store.clone()).build();
    let authenticator = f.keys.authenticator(cached);
    let (parts, ()) = http::Request::get("/v1/orders/42")
        .header("x-api-key", f.key(which).unwrap_or_default())
        .body(())
        .unwrap()
        .into_parts();
    rt.block_on(async {
        black_box(authenticator.authenticate(&parts).await);
        for _ in 0..n {
            black_box(authenticator.authenticate(black_box(&parts)).await);
        }
    });
}

/// `dpop:fresh-proof` or `dpop:uncached-es256`, N requests (at most 500) to the authenticator.
fn dpop_case(which: &str, n: u64) {
    use palisade::authn::Authentication;
    const SIGNED: usize = 500;
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let n = usize::try_from(n).unwrap();
    assert!(n <= SIGNED, "at most {SIGNED} requests");
    let client = dpop::client();
    let (auth, requests): (palisade::authn::jwt::JwtAuthenticator, Vec<_>) = match which {
        "fresh-proof" => {
            let token = dpop::token(&client);
            let auth = dpop::authenticator();
            // The token's first use, outside the count: it is cached from then on.
            let first = dpop::parts(&token, &client.proof(&token));
            assert!(matches!(
                auth.authenticate_now(&first),
                Some(Authentication::Authenticated(_))
            ));
            let proofs = (0..SIGNED).map(|_| dpop::parts(&token, &client.proof(&token)));
            (auth, proofs.collect())
        }
        "uncached-es256" => {
            let auth = dpop::uncached_authenticator();
            let plain = (0..SIGNED as u64).map(|i| dpop::bearer_parts(&dpop::plain_token(i)));
            (auth, plain.collect())
        }
        other => panic!("unknown case dpop:{other}"),
    };
    for p in &requests[..n] {
        let answer = auth.authenticate_now(p);
        assert!(matches!(answer, Some(Authentication::Authenticated(_))));
        black_box(answer);
    }
}
