//! Bearer JWT verification per request: palisade's `JwtAuthenticator` with and without its
//! verified-token cache, beside `jsonwebtoken::decode` (what a hand-rolled middleware does) in
//! the same run; a DPoP-bound ES256 token (cached) with a fresh ES256 proof on every request
//! (`dpop/…`, beside the uncached ES256 check it is held against); and the API-key and ES256
//! stacks through axum.
//!
//! Run with: `cargo bench --bench jwt --features jwt`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

#[path = "support/dpop.rs"]
mod dpop;

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use palisade::authn::jwt::{Issuer, JwtAuthenticator, Key};
use palisade::authn::{Authentication, Authenticator};
use palisade::{Palisade, Principal};
use serde_json::{Value, json};
use support::KeyFixture;
use tower::ServiceExt;

const ISS: &str = "https://idp.palisade.test/realms/acme";
const AUD: &str = "orders-api";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A realistic access token: Keycloak-like claims, ~600-900 bytes once signed.
fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "f3c2a1e0-7d4b-4c1a-9e8f-0a1b2c3d4e5f",
        "exp": 4_102_444_800u64, "iat": 1_767_225_600u64, "jti": "8c1e4f52-2b7d-4d8e-a1c3-5f6e7d8c9b0a",
        "typ": "Bearer", "azp": "orders-web", "scope": "openid profile orders:read orders:write",
        "realm_access": {"roles": ["admin", "offline_access", "uma_authorization"]},
        "email": "alice@example.com", "preferred_username": "alice",
    })
}

struct Case {
    name: &'static str,
    alg: jsonwebtoken::Algorithm,
    key: Key,
    peer_key: DecodingKey,
    token: String,
}

fn cases() -> Vec<Case> {
    let pem = |n: &str| String::from_utf8(fixture(&format!("{n}.pub.pem"))).unwrap();
    let sign = |alg, key: EncodingKey, kid: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims(), &key).unwrap()
    };
    vec![
        Case {
            name: "ES256",
            alg: jsonwebtoken::Algorithm::ES256,
            key: Key::from_pem(&pem("es256")).unwrap().with_kid("k"),
            peer_key: DecodingKey::from_ec_der(&p256_point()),
            token: sign(
                jsonwebtoken::Algorithm::ES256,
                EncodingKey::from_ec_der(&fixture("es256.key.der")),
                "k",
            ),
        },
        Case {
            name: "RS256",
            alg: jsonwebtoken::Algorithm::RS256,
            key: Key::from_pem(&pem("rs256")).unwrap().with_kid("k"),
            peer_key: rsa_key(),
            token: sign(
                jsonwebtoken::Algorithm::RS256,
                EncodingKey::from_rsa_der(&fixture("rs256.key.der")),
                "k",
            ),
        },
        Case {
            name: "EdDSA",
            alg: jsonwebtoken::Algorithm::EdDSA,
            key: Key::from_pem(&pem("eddsa")).unwrap().with_kid("k"),
            peer_key: DecodingKey::from_ed_components(&jwk_x("eddsa")).unwrap(),
            token: sign(
                jsonwebtoken::Algorithm::EdDSA,
                EncodingKey::from_ed_der(&fixture("eddsa.key.der")),
                "k",
            ),
        },
    ]
}

/// The `x` member of the fixture JWK `kid`.
fn jwk_x(kid: &str) -> String {
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let k = keys.iter().find(|k| k["kid"] == kid).unwrap();
    k["x"].as_str().unwrap().to_owned()
}

/// The ES256 public key as jsonwebtoken's `from_ec_der` wants it (a SEC1 point), from the JWK.
fn p256_point() -> Vec<u8> {
    use base64::Engine as _;
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let k = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "es256")
        .unwrap();
    let d = |s: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let mut point = vec![4u8];
    point.extend(d(&k["x"]));
    point.extend(d(&k["y"]));
    point
}

fn rsa_key() -> DecodingKey {
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let k = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "rs256")
        .unwrap();
    DecodingKey::from_rsa_components(k["n"].as_str().unwrap(), k["e"].as_str().unwrap()).unwrap()
}

fn authenticator(key: Key, cache: usize) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(Issuer::new(ISS).key(key).audience(AUD))
        .cache_capacity(cache)
        .build()
        .unwrap()
}

fn parts(token: &str) -> http::request::Parts {
    Request::get("/v1/orders/42")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// `dpop/ES256-cached-token-fresh-proof` beside `dpop/ES256-uncached-bearer` (the target: no
/// more than one uncached ES256 check).
fn bench_dpop(c: &mut Criterion) {
    #[cfg(feature = "_peer-aws-lc")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(not(feature = "_peer-aws-lc"))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let client = dpop::client();
    let token = dpop::token(&client);
    let auth = dpop::authenticator();
    let first = dpop::parts(&token, &client.proof(&token));
    assert!(matches!(
        auth.authenticate_now(&first),
        Some(Authentication::Authenticated(_))
    ));
    let es256 = cases().remove(0);
    let uncached = authenticator(es256.key, 0);
    let plain = parts(&es256.token);
    let mut group = c.benchmark_group("dpop");
    group.bench_function("ES256-cached-token-fresh-proof", |b| {
        b.iter_batched(
            || dpop::parts(&token, &client.proof(&token)),
            |p| {
                let answer = auth.authenticate_now(&p);
                assert!(matches!(answer, Some(Authentication::Authenticated(_))));
                black_box(answer)
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("ES256-uncached-bearer", |b| {
        b.iter(|| black_box(uncached.authenticate_now(black_box(&plain))));
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    // jsonwebtoken's backend for the peer rows: AWS-LC with `_peer-aws-lc` (both are built then).
    #[cfg(feature = "_peer-aws-lc")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(not(feature = "_peer-aws-lc"))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let mut group = c.benchmark_group("jwt");
    for case in cases() {
        let p = parts(&case.token);
        let cached = authenticator(case.key.clone(), 100_000);
        let uncached = authenticator(case.key.clone(), 0);
        for (label, auth) in [("cached", &cached), ("uncached", &uncached)] {
            assert!(matches!(
                auth.authenticate_now(&p),
                Some(Authentication::Authenticated(_))
            ));
            group.bench_function(format!("{}/palisade-{label}", case.name), |b| {
                b.iter(|| black_box(auth.authenticate_now(black_box(&p))));
            });
        }
        // The peer: jsonwebtoken's decode with the same checks (iss, aud, exp), as a
        // middleware would call it on every request.
        let mut validation = Validation::new(case.alg);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        jsonwebtoken::decode::<Value>(&case.token, &case.peer_key, &validation).unwrap();
        group.bench_function(format!("{}/jsonwebtoken-decode", case.name), |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Value>(
                        black_box(&case.token),
                        &case.peer_key,
                        &validation,
                    )
                    .unwrap(),
                )
            });
        });
    }
    group.finish();

    // Through axum, in-process: the API-key stack and the ES256 stack with a repeated token.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = KeyFixture::new();
    let key = f.key("valid").unwrap().to_owned();
    let handler = get(|p: Principal| async move {
        black_box(p);
        "ok"
    });
    let api: Router = Router::new()
        .route("/v1/orders/{id}", handler.clone())
        .layer(
            Palisade::builder()
                .authenticate(f.keys.authenticator(f.store.clone()))
                .build()
                .unwrap(),
        );
    let es256 = cases().remove(0);
    let token = es256.token.clone();
    let jwt: Router = Router::new().route("/v1/orders/{id}", handler).layer(
        Palisade::builder()
            .authenticate(authenticator(es256.key, 100_000))
            .build()
            .unwrap(),
    );
    let mut group = c.benchmark_group("jwt-stack");
    for (name, router, header, value) in [
        ("api-key", &api, "x-api-key", key),
        (
            "es256-repeated-token",
            &jwt,
            "authorization",
            format!("Bearer {token}"),
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let req = Request::get("/v1/orders/42")
                    .header(header, &value)
                    .extension(palisade::transport::ConnectionScheme::Https)
                    .body(Body::empty())
                    .unwrap();
                let res = router.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_dpop);
criterion_main!(benches);
