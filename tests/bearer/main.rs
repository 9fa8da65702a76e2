//! Bearer tokens over real HTTP on loopback: a local identity provider serves a JWKS (which
//! rotates) and an RFC 7662 introspection endpoint; palisade guards an axum service.
//! Each attack is refused with 401 `invalid_token` and the handler is never reached.

mod dpop;
mod idp;
#[cfg(feature = "redis")]
#[path = "../support/redis_cluster.rs"]
mod redis_cluster;
#[cfg(feature = "redis")]
#[path = "../support/redis_server.rs"]
mod redis_server;
mod step_up;
#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use palisade::Palisade;
use palisade::authn::Chain;
use palisade::authn::api_key::KeySpec;
use palisade::authn::bearer::{ClaimMap, ClaimPath};
use palisade::authn::introspection::IntrospectionAuthenticator;
use palisade::authn::jwt::{Issuer, JwtAuthenticator};
use palisade::clock::{ManualClock, Timestamp};
use serde_json::{Value, json};

use idp::{CLIENT_ID, CLIENT_SECRET, Idp, Mode};
use support::{Keys, Reply, TestServer};

const ISS: &str = "https://idp.palisade.test/realms/acme";
const AUD: &str = "orders-api";
/// 2100-01-01: the fixtures made by an independent implementation expire then.
const FAR: u64 = 4_102_444_800;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// The public JWKs of the fixture keys, by kid.
fn jwk(kid: &str) -> Value {
    fixture_json("jwks.json")["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap()
}

fn jwks(kids: &[&str]) -> Value {
    json!({ "keys": kids.iter().map(|k| jwk(k)).collect::<Vec<_>>() })
}

fn now() -> u64 {
    use palisade::clock::{Clock, SystemClock};
    SystemClock.now().as_unix_secs()
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600, "iat": now(),
        "scope": "orders:read orders:write",
        "realm_access": {"roles": ["admin"]}, "tenant": "acme", "plan": "pro",
    })
}

/// Signs `claims` with fixture key `kid` (ES256 for es256*, RS256 for rs256, EdDSA).
fn mint(kid: &str, claims: &Value) -> String {
    let (alg, key) = match kid {
        "rs256" => (
            jsonwebtoken::Algorithm::RS256,
            EncodingKey::from_rsa_der(&fixture("rs256.key.der")),
        ),
        "eddsa" => (
            jsonwebtoken::Algorithm::EdDSA,
            EncodingKey::from_ed_der(&fixture("eddsa.key.der")),
        ),
        k => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_der(&fixture(&format!("{k}.key.der"))),
        ),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    support::encode_jwt(&header, claims, &key).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A builder for the local provider's issuer (its JWKS URL, our audience).
fn provider(idp: &Idp) -> palisade::authn::jwt::JwtBuilder {
    JwtAuthenticator::builder().issuer(Issuer::new(ISS).jwks_url(idp.jwks_url()).audience(AUD))
}

/// A JWT authenticator for the local provider, with a short unknown-kid refetch interval.
fn jwt(idp: &Idp) -> JwtAuthenticator {
    provider(idp)
        .claims(
            ClaimMap::keycloak()
                .tenant(ClaimPath::parse("tenant"))
                .tier(ClaimPath::parse("plan")),
        )
        .token_type("at+jwt")
        .leeway(Duration::from_secs(5))
        .unknown_kid_refetch_interval(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn serve(jwt: JwtAuthenticator) -> TestServer {
    TestServer::start(Palisade::builder().authenticate(jwt).build().unwrap()).await
}

/// The request was refused with 401 `invalid_token`, the handler never ran, and nothing the
/// client sees contains the token.
fn assert_invalid_token(server: &TestServer, reply: &Reply, token: &str, reason: &str) {
    assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm=\"api\""), "{challenge}");
    // RFC 6750 §3.1: invalid_token.
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{reason}: {challenge}"
    );
    assert_eq!(reply.json()["code"], "invalid_token");
    assert_eq!(server.hits(), 0, "{reason}: the handler ran");
    assert_eq!(server.last_refusal().unwrap().reason(), reason);
    if token.len() > 16 {
        assert!(
            !reply.visible_text().contains(token),
            "the token was echoed"
        );
        let signature = token.rsplit('.').next().unwrap();
        if signature.len() > 16 {
            assert!(!reply.visible_text().contains(signature));
        }
    }
}

#[tokio::test]
async fn rfc6750_2_1_valid_token_reaches_the_handler_with_its_principal() {
    let idp = Idp::start(jwks(&["es256", "rs256"])).await;
    let server = serve(jwt(&idp)).await;
    let token = mint("es256", &claims());
    let reply = server
        .get("/orders", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["subject"], "alice");
    assert_eq!(body["roles"], json!(["admin"]));
    assert_eq!(body["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["tier"], "pro");
    assert_eq!(body["method"], json!({"kind": "bearer", "issuer": ISS}));
    // RS256 from the same key set.
    let reply = server
        .get(
            "/orders",
            &[("authorization", &bearer(&mint("rs256", &claims())))],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(server.hits(), 2);
}

/// Claims serialized with one member written twice (serde_json writes map entries as given).
struct Twice<'a>(&'a Value, &'a str, Value);

impl serde::Serialize for Twice<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.as_object().unwrap() {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry(self.1, &self.2)?;
        map.end()
    }
}

#[tokio::test]
async fn rfc7519_4_a_signed_token_naming_its_subject_twice_is_refused() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let server = serve(jwt(&idp)).await;
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("es256".to_owned());
    header.typ = Some("at+jwt".to_owned());
    let key = EncodingKey::from_ec_der(&fixture("es256.key.der"));
    // A validly signed token whose second `sub` would have been read (last one wins).
    let token =
        support::encode_jwt(&header, &Twice(&claims(), "sub", json!("admin")), &key).unwrap();
    let reply = server
        .get("/orders", &[("authorization", &bearer(&token))])
        .await;
    assert_invalid_token(&server, &reply, &token, "duplicate_member");
    // The same with the claim that roles are read from: the provider put `clerk`, the
    // second member says `admin`.
    let mut claims = claims();
    claims["realm_access"] = json!({"roles": ["clerk"]});
    let twice = Twice(&claims, "realm_access", json!({"roles": ["admin"]}));
    let token = support::encode_jwt(&header, &twice, &key).unwrap();
    let reply = server
        .get("/orders", &[("authorization", &bearer(&token))])
        .await;
    assert_invalid_token(&server, &reply, &token, "duplicate_member");
}

#[tokio::test]
async fn rfc9449_7_2_a_key_bound_token_presented_as_bearer_is_refused() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let server = serve(jwt(&idp)).await;
    let mut claims = claims();
    claims["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    let token = mint("es256", &claims);
    let reply = server
        .get("/orders", &[("authorization", &bearer(&token))])
        .await;
    assert_invalid_token(&server, &reply, &token, "token_bound");
}

#[tokio::test]
async fn tokens_signed_by_pyjwt_are_accepted() {
    // tests/fixtures/jwt/tokens.json was made by PyJWT (make_fixtures.py): another language's
    // implementation, so palisade interoperates beyond its own signer.
    let fixtures = fixture_json("tokens.json");
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let jwt = provider(&idp)
        .claims(ClaimMap::keycloak().tenant(ClaimPath::parse("tenant")))
        .token_type("at+jwt")
        .build()
        .unwrap();
    let server = serve(jwt).await;
    for alg in ["ES256", "RS256", "EdDSA"] {
        let token = fixtures["tokens"][alg].as_str().unwrap();
        let reply = server.get("/", &[("authorization", &bearer(token))]).await;
        assert_eq!(reply.status, 200, "{alg}: {:?}", reply.body);
        assert_eq!(reply.json()["subject"], "py-user");
        assert_eq!(reply.json()["roles"], json!(["reader"]));
    }
    assert_eq!(fixtures["claims"]["exp"], FAR);
}

#[tokio::test]
async fn key_rotation_loses_no_request() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let server = serve(jwt(&idp)).await;
    let mut failures = 0;
    let mut check = async |kid: &str| {
        let mut c = claims();
        // A fresh token each time, so no answer comes from the verified-token cache.
        c["jti"] = json!(format!("{kid}-{}", unique()));
        let reply = server
            .get("/", &[("authorization", &bearer(&mint(kid, &c)))])
            .await;
        if reply.status != 200 {
            failures += 1;
        }
    };
    for _ in 0..5 {
        check("es256").await;
    }
    // The provider publishes the next key and starts signing with it at once.
    idp.set_jwks(jwks(&["es256", "es256-next"]));
    for _ in 0..5 {
        check("es256-next").await;
        check("es256").await; // tokens of the old key are still in flight
    }
    // The old key is retired (palisade notices at its next refresh; tokens of the new key
    // keep working throughout).
    idp.set_jwks(jwks(&["es256-next"]));
    for _ in 0..5 {
        check("es256-next").await;
    }
    assert_eq!(failures, 0);
    assert_eq!(server.hits(), 20);
    // One initial fetch, one refetch for the new kid.
    assert_eq!(idp.jwks_hits(), 2);
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_retired_key_is_refused_after_refresh_even_if_cached() {
    let idp = Idp::start(jwks(&["es256", "es256-next"])).await;
    let jwt = jwt(&idp);
    let server = serve(jwt.clone()).await;
    let old = mint("es256", &claims());
    let reply = server.get("/", &[("authorization", &bearer(&old))]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(jwt.cached_tokens(), 1);
    idp.set_jwks(jwks(&["es256-next"]));
    jwt.refresh().await.unwrap();
    assert_eq!(
        jwt.cached_tokens(),
        0,
        "withdrawing a key empties the cache"
    );
    let reply = server.get("/", &[("authorization", &bearer(&old))]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        server.hits(),
        1,
        "the refused request did not reach the handler"
    );
}

mod attacks {
    use super::*;

    async fn setup() -> (Idp, TestServer) {
        let idp = Idp::start(jwks(&["es256", "rs256"])).await;
        let server = serve(jwt(&idp)).await;
        (idp, server)
    }

    async fn refused(token: &str, reason: &str) {
        let (_idp, server) = setup().await;
        let reply = server.get("/", &[("authorization", &bearer(token))]).await;
        assert_invalid_token(&server, &reply, token, reason);
    }

    #[tokio::test]
    async fn rfc8725_3_1_alg_none_is_refused() {
        let header = json!({"alg": "none", "typ": "at+jwt", "kid": "es256"});
        refused(
            &format!("{}.{}.", b64(&header), b64(&claims())),
            "unsupported_algorithm",
        )
        .await;
        // With a non-empty "signature" too.
        refused(
            &format!("{}.{}.c2ln", b64(&header), b64(&claims())),
            "unsupported_algorithm",
        )
        .await;
    }

    #[tokio::test]
    async fn rfc8725_2_1_hs256_signed_with_the_rsa_public_key_is_refused() {
        // The classic confusion: the attacker uses the public key (as published) as an HMAC
        // secret and asks for HS256.
        use hmac::{Hmac, KeyInit, Mac};
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "rs256"});
        let input = format!("{}.{}", b64(&header), b64(&claims()));
        for secret in [
            fixture("rs256.pub.pem"),
            jwk("rs256").to_string().into_bytes(),
        ] {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
            mac.update(input.as_bytes());
            let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            refused(&format!("{input}.{sig}"), "unsupported_algorithm").await;
        }
    }

    #[tokio::test]
    async fn tampered_payload_is_refused() {
        let token = mint("es256", &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["realm_access"]["roles"] = json!(["superadmin"]);
        refused(
            &format!("{}.{}.{}", parts[0], b64(&c), parts[2]),
            "bad_signature",
        )
        .await;
    }

    #[tokio::test]
    async fn empty_signature_is_refused() {
        let token = mint("es256", &claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        refused(&format!("{input}."), "bad_signature").await;
    }

    #[tokio::test]
    async fn ecdsa_signature_with_r_and_s_zero_is_refused() {
        // CVE-2022-21449 ("psychic signatures"): r = s = 0 verifies any message in a broken
        // verifier.
        let token = mint("es256", &claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        refused(
            &format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
            "bad_signature",
        )
        .await;
    }

    #[tokio::test]
    async fn expired_token_is_refused() {
        let mut c = claims();
        c["exp"] = json!(now() - 60);
        refused(&mint("es256", &c), "token_expired").await;
    }

    #[tokio::test]
    async fn rfc7519_4_1_5_token_not_yet_valid_is_refused() {
        let mut c = claims();
        c["nbf"] = json!(now() + 300);
        refused(&mint("es256", &c), "token_not_yet_valid").await;
    }

    #[tokio::test]
    async fn rfc7519_4_1_1_wrong_issuer_is_refused() {
        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        refused(&mint("es256", &c), "wrong_issuer").await;
    }

    #[tokio::test]
    async fn rfc7519_4_1_3_wrong_audience_is_refused() {
        let mut c = claims();
        c["aud"] = json!(["billing-api"]);
        refused(&mint("es256", &c), "wrong_audience").await;
    }

    #[tokio::test]
    async fn rfc8725_3_11_an_id_token_is_not_an_access_token() {
        let key = EncodingKey::from_ec_der(&fixture("es256.key.der"));
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("es256".into());
        header.typ = Some("JWT".into());
        refused(
            &support::encode_jwt(&header, &claims(), &key).unwrap(),
            "wrong_token_type",
        )
        .await;
    }

    #[tokio::test]
    async fn rfc8725_3_10_jku_is_never_followed() {
        let (idp, server) = setup().await;
        // An attacker's key set URL in the header, and a kid the real set lacks.
        let key = EncodingKey::from_ec_der(&fixture("es256-next.key.der"));
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("attacker".into());
        header.typ = Some("at+jwt".into());
        header.jku = Some(idp.evil_url());
        header.x5u = Some(idp.evil_url());
        let token = support::encode_jwt(&header, &claims(), &key).unwrap();
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_invalid_token(&server, &reply, &token, "unknown_kid");
        assert_eq!(
            idp.state
                .evil_hits
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        // The same with a kid the real set has: the signature is by another key.
        header.kid = Some("es256".into());
        let token = support::encode_jwt(&header, &claims(), &key).unwrap();
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_eq!(reply.status, 401);
        assert_eq!(server.last_refusal().unwrap().reason(), "bad_signature");
        assert_eq!(
            idp.state
                .evil_hits
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }

    #[tokio::test]
    async fn rfc7515_4_1_11_unknown_crit_is_refused() {
        let header = json!({"alg": "ES256", "kid": "es256", "typ": "at+jwt", "crit": ["x-bank"], "x-bank": 1});
        refused(
            &format!("{}.{}.c2ln", b64(&header), b64(&claims())),
            "unknown_crit",
        )
        .await;
    }

    #[tokio::test]
    async fn oversized_token_is_refused_before_parsing() {
        let mut c = claims();
        c["pad"] = json!("x".repeat(9000));
        refused(&mint("es256", &c), "token_too_large").await;
    }

    #[tokio::test]
    async fn rfc6750_2_3_token_in_the_query_string_is_refused_when_not_allowed() {
        let (_idp, server) = setup().await;
        let token = mint("es256", &claims());
        let reply = server
            .get(&format!("/orders?access_token={token}"), &[])
            .await;
        assert_invalid_token(&server, &reply, &token, "token_in_query");
    }

    #[tokio::test]
    async fn rfc6750_3_1_two_tokens_are_an_invalid_request() {
        let (_idp, server) = setup().await;
        let token = mint("es256", &claims());
        let reply = server
            .get(
                "/",
                &[
                    ("authorization", &bearer(&token)),
                    ("authorization", &bearer(&token)),
                ],
            )
            .await;
        assert_eq!(reply.status, 400);
        assert!(
            reply.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_request\"")
        );
        assert_eq!(server.hits(), 0);
    }

    #[tokio::test]
    async fn a_thousand_unknown_kids_cost_at_most_one_refetch() {
        let (idp, server) = setup().await;
        // Warm up: the initial key set fetch.
        let ok = server
            .get(
                "/",
                &[("authorization", &bearer(&mint("es256", &claims())))],
            )
            .await;
        assert_eq!(ok.status, 200);
        assert_eq!(idp.jwks_hits(), 1);
        let server = Arc::new(server);
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("forged-{i}")});
                let token = format!(
                    "{}.{}.{}",
                    b64(&header),
                    b64(&claims()),
                    URL_SAFE_NO_PAD.encode([7u8; 64])
                );
                server
                    .get("/", &[("authorization", &bearer(&token))])
                    .await
                    .status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 401);
        }
        assert_eq!(server.hits(), 1);
        // The refetch budget: one per interval (60 s here), however many forged kids arrive.
        assert!(idp.jwks_hits() <= 2, "{} JWKS fetches", idp.jwks_hits());
        assert_eq!(server.last_refusal().unwrap().reason(), "unknown_kid");
    }
}

#[tokio::test]
async fn jwks_down_at_start_is_503_then_recovers() {
    let idp = Idp::start(jwks(&["es256"])).await;
    idp.set_jwks_mode(Mode::Failing);
    let jwt = provider(&idp)
        .retry_after_failure(Duration::from_millis(100))
        .build()
        .unwrap();
    let server = serve(jwt).await;
    let token = mint("es256", &claims());
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 503, "fail closed, not 200");
    assert_eq!(server.last_refusal().unwrap().reason(), "jwks_unavailable");
    // RFC 9110 §10.2.3: when to come back (the retry delay, rounded up to a whole second).
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(server.hits(), 0);
    // Within the retry delay: answered 503 without asking the provider again.
    let hits = idp.jwks_hits();
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(idp.jwks_hits(), hits);
    idp.set_jwks_mode(Mode::Up);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 200, "recovers without a restart");
}

#[tokio::test]
async fn the_last_good_key_set_is_kept_when_the_provider_fails() {
    let idp = Idp::start(jwks(&["es256"])).await;
    // A key set that expires at once (min lifetime 0), so every miss refreshes it.
    let jwt = provider(&idp)
        .jwks_lifetime(Duration::ZERO, Duration::ZERO, Duration::ZERO)
        .fetch_timeout(Duration::from_millis(300))
        .cache_capacity(0)
        .build()
        .unwrap();
    jwt.refresh().await.unwrap();
    let server = serve(jwt.clone()).await;
    for mode in [Mode::Failing, Mode::Hanging] {
        idp.set_jwks_mode(mode);
        assert!(jwt.refresh().await.is_err());
        for _ in 0..3 {
            let reply = server
                .get(
                    "/",
                    &[("authorization", &bearer(&mint("es256", &claims())))],
                )
                .await;
            assert_eq!(reply.status, 200, "{mode:?}");
        }
    }
    assert_eq!(server.hits(), 6);
}

#[tokio::test]
async fn a_repeated_token_is_verified_once_and_never_past_its_exp() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let clock = ManualClock::new(Timestamp::from_unix_secs(now()));
    let jwt = provider(&idp)
        .leeway(Duration::ZERO)
        .clock(clock.clone())
        .build()
        .unwrap();
    let jwt_handle = jwt.clone();
    let server = TestServer::start(Palisade::builder().authenticate(jwt).build().unwrap()).await;
    let mut c = claims();
    c["exp"] = json!(now() + 60);
    let token = mint("es256", &c);
    for _ in 0..10 {
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(jwt_handle.cached_tokens(), 1);
    clock.advance(Duration::from_secs(61));
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 401, "the cache never outlives exp");
    assert_eq!(server.last_refusal().unwrap().reason(), "token_expired");
}

/// Fail closed (RFC 7519 §4.1.7 `jti` revocations on the invalidation bus): a flood of
/// revocations past what palisade remembers (65,536) never makes a revoked token valid again.
/// Every token issued before the forgotten revocations is refused (`token_revoked`), revoked
/// or not, and a token issued after them is served.
#[tokio::test]
async fn a_flood_of_revocations_never_makes_a_revoked_token_valid_again() {
    use palisade::invalidation::{InProcessBus, Invalidation, InvalidationBus};

    let idp = Idp::start(jwks(&["es256"])).await;
    let bus = InProcessBus::new();
    // Two minutes on: a token issued after the flood by more than the issuer's allowed clock
    // lead (60 s) is not dated in the future.
    let clock = ManualClock::new(Timestamp::from_unix_secs(now() + 120));
    let jwt = provider(&idp)
        .invalidation(&bus)
        .clock(clock)
        .build()
        .unwrap();
    let server = TestServer::start(Palisade::builder().authenticate(jwt).build().unwrap()).await;
    let issued = |jti: &str, iat: u64| {
        let mut c = claims();
        c["jti"] = json!(jti);
        c["iat"] = json!(iat);
        mint("es256", &c)
    };
    let first = issued("first", now() - 60);
    let bystander = issued("bystander", now() - 60);
    for token in [&first, &bystander] {
        let reply = server.get("/", &[("authorization", &bearer(token))]).await;
        assert_eq!(reply.status, 200);
    }
    bus.publish(&Invalidation::TokenRevoked {
        issuer: ISS.into(),
        jti: "first".into(),
    })
    .await
    .unwrap();
    let reply = server.get("/", &[("authorization", &bearer(&first))]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(server.last_refusal().unwrap().reason(), "token_revoked");
    let reply = server
        .get("/", &[("authorization", &bearer(&bystander))])
        .await;
    assert_eq!(
        reply.status, 200,
        "one revocation refuses its own token only"
    );

    for i in 0..70_000 {
        bus.publish(&Invalidation::TokenRevoked {
            issuer: ISS.into(),
            jti: format!("flood-{i}").into(),
        })
        .await
        .unwrap();
    }
    for token in [&first, &bystander] {
        let reply = server.get("/", &[("authorization", &bearer(token))]).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
        assert_eq!(server.last_refusal().unwrap().reason(), "token_revoked");
    }
    let reissued = issued("reissued", now() + 90);
    let reply = server
        .get("/", &[("authorization", &bearer(&reissued))])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// Fail closed, and no wider than needed: a flood of one issuer's `jti` revocations past the
/// capacity raises the floor of that issuer's tokens only. Its older tokens are refused,
/// revoked or not; another issuer's older tokens, on the same authenticator, are served.
#[tokio::test]
async fn a_flood_of_one_issuers_revocations_leaves_another_issuers_tokens_alone() {
    use palisade::invalidation::{InProcessBus, Invalidation, InvalidationBus};

    const BETA: &str = "https://idp.palisade.test/realms/beta";
    let idp = Idp::start(jwks(&["es256"])).await;
    let bus = InProcessBus::new();
    let jwt = provider(&idp)
        .issuer(Issuer::new(BETA).jwks_url(idp.jwks_url()).audience(AUD))
        .invalidation(&bus)
        .revocation_capacity(16)
        .build()
        .unwrap();
    let server = TestServer::start(Palisade::builder().authenticate(jwt).build().unwrap()).await;
    let issued = |iss: &str, jti: &str| {
        let mut c = claims();
        c["iss"] = json!(iss);
        c["jti"] = json!(jti);
        c["iat"] = json!(now() - 60);
        mint("es256", &c)
    };
    let (acme, beta) = (issued(ISS, "acme-old"), issued(BETA, "beta-old"));
    for token in [&acme, &beta] {
        let reply = server.get("/", &[("authorization", &bearer(token))]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    for i in 0..200 {
        bus.publish(&Invalidation::TokenRevoked {
            issuer: ISS.into(),
            jti: format!("flood-{i}").into(),
        })
        .await
        .unwrap();
    }
    for token in [issued(ISS, "flood-7"), acme] {
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
        assert_eq!(server.last_refusal().unwrap().reason(), "token_revoked");
    }
    assert_eq!(
        server.hits(),
        2,
        "a refused token never reaches the handler"
    );
    let reply = server.get("/", &[("authorization", &bearer(&beta))]).await;
    assert_eq!(
        reply.status, 200,
        "another issuer's token: {:?}",
        reply.body
    );
}

#[tokio::test]
async fn after_max_stale_of_provider_outage_every_token_gets_503_with_retry_after() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let clock = ManualClock::new(Timestamp::from_unix_secs(now()));
    let jwt = provider(&idp)
        .clock(clock.clone())
        .jwks_max_stale(Duration::from_secs(3600))
        .build()
        .unwrap();
    jwt.refresh().await.unwrap();
    let server = TestServer::start(Palisade::builder().authenticate(jwt).build().unwrap()).await;
    let mut c = claims();
    c["exp"] = json!(now() + 86_400);
    let (cached, fresh) = (mint("es256", &c), {
        c["jti"] = json!("another");
        mint("es256", &c)
    });
    let get = |token: &str| {
        let auth = bearer(token);
        let server = &server;
        async move { server.get("/", &[("authorization", &auth)]).await }
    };
    assert_eq!(get(&cached).await.status, 200);
    idp.set_jwks_mode(Mode::Failing);
    // Within `max_stale` the last good set serves, cached token or not.
    clock.advance(Duration::from_secs(1800));
    assert_eq!(get(&cached).await.status, 200);
    // Past it, neither a cached token nor a new one of a known key is trusted.
    clock.advance(Duration::from_secs(1801));
    for token in [&cached, &fresh] {
        let reply = get(token).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.headers["retry-after"], "5");
        assert_eq!(server.last_refusal().unwrap().reason(), "jwks_unavailable");
    }
    assert_eq!(
        server.hits(),
        2,
        "the refused requests never reached the handler"
    );
    // The provider is back: after the failure interval a fetch succeeds and both pass.
    idp.set_jwks_mode(Mode::Up);
    clock.advance(Duration::from_secs(6));
    assert_eq!(get(&cached).await.status, 200);
    assert_eq!(get(&fresh).await.status, 200);
}

#[tokio::test]
async fn each_issuer_holds_its_tokens_to_its_own_rules() {
    use palisade::authn::jwt::Algorithm;
    const OTHER: &str = "https://other.palisade.test/realms/partners";
    let idp = Idp::start(jwks(&["es256", "rs256"])).await;
    let jwt = JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .jwks_url(idp.jwks_url())
                .audience(AUD)
                .algorithms([Algorithm::RS256])
                .token_type("at+jwt"),
        )
        .issuer(
            Issuer::new(OTHER)
                .jwks_url(idp.jwks_url())
                .audience(AUD)
                .max_lifetime(Duration::from_secs(900))
                .require_claim("jti"),
        )
        .build()
        .unwrap();
    let server = serve(jwt).await;
    let get = |token: String| {
        let server = &server;
        async move { server.get("/", &[("authorization", &bearer(&token))]).await }
    };
    // Refused with 401 `invalid_token` for `reason`, the handler not reached.
    let refused = |reply: Reply, reason: &str, hits: usize| {
        assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
        assert_eq!(reply.json()["code"], "invalid_token");
        assert_eq!(server.last_refusal().unwrap().reason(), reason);
        assert_eq!(server.hits(), hits, "{reason}: the handler ran");
    };
    // The first issuer signs with RS256 only: its ES256 key does not make an ES256 token pass.
    refused(
        get(mint("es256", &claims())).await,
        "unsupported_algorithm",
        0,
    );
    assert_eq!(get(mint("rs256", &claims())).await.status, 200);
    // The second requires `jti` and lifetimes of 15 minutes at most; the first requires
    // neither (the claims carry no `jti`, and live ten minutes).
    let mut other = claims();
    other["iss"] = json!(OTHER);
    refused(get(mint("es256", &other)).await, "missing_claim", 1);
    other["jti"] = json!("t-1");
    assert_eq!(get(mint("es256", &other)).await.status, 200);
    other["exp"] = json!(now() + 3600);
    refused(get(mint("es256", &other)).await, "lifetime_too_long", 2);
    let mut long = claims();
    long["exp"] = json!(now() + 3600);
    assert_eq!(get(mint("rs256", &long)).await.status, 200);
}

#[tokio::test]
async fn bearer_tokens_and_api_keys_sit_in_one_chain() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let keys = Keys::new();
    let key = keys.issue(KeySpec::new("svc"));
    let chain = Chain::new(keys.authenticator(), jwt(&idp));
    let server = TestServer::start(Palisade::builder().authenticate(chain).build().unwrap()).await;
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(reply.json()["subject"], "svc");
    let reply = server
        .get(
            "/",
            &[("authorization", &bearer(&mint("es256", &claims())))],
        )
        .await;
    assert_eq!(reply.json()["subject"], "alice");
    // No credential: one challenge per scheme (RFC 9110 §11.6.1).
    let reply = server.get("/", &[]).await;
    assert_eq!(reply.status, 401);
    let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 2);
    assert_eq!(challenges[1], "Bearer realm=\"api\"");
}

mod introspection {
    use super::*;

    /// The local provider, knowing one active opaque token for bob (audience `AUD`,
    /// expiring in ten minutes).
    async fn provider_with_token(token: &str) -> Idp {
        let idp = Idp::start(jwks(&[])).await;
        idp.add_token(
            token,
            json!({"active": true, "sub": "bob", "aud": AUD, "exp": now() + 600}),
        );
        idp
    }

    fn authenticator(idp: &Idp) -> IntrospectionAuthenticator {
        IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .audience(AUD)
            .claims(ClaimMap::new().roles(ClaimPath::parse("roles")))
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn rfc7662_2_2_active_token_reaches_the_handler_and_is_cached() {
        let idp = Idp::start(jwks(&[])).await;
        idp.add_token(
            "opaque-token-1",
            json!({"active": true, "sub": "bob", "scope": "orders:read", "aud": AUD,
                   "exp": now() + 600, "roles": ["clerk"], "client_id": "web"}),
        );
        let server = TestServer::start(
            Palisade::builder()
                .authenticate(authenticator(&idp))
                .build()
                .unwrap(),
        )
        .await;
        for _ in 0..5 {
            let reply = server
                .get("/", &[("authorization", "Bearer opaque-token-1")])
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            assert_eq!(reply.json()["subject"], "bob");
            assert_eq!(reply.json()["roles"], json!(["clerk"]));
            assert_eq!(reply.json()["scopes"], json!(["orders:read"]));
        }
        assert_eq!(idp.introspection_hits(), 1, "answers are cached");
    }

    #[tokio::test]
    async fn rfc7662_2_2_inactive_token_is_refused() {
        let idp = Idp::start(jwks(&[])).await;
        let server = TestServer::start(
            Palisade::builder()
                .authenticate(authenticator(&idp))
                .build()
                .unwrap(),
        )
        .await;
        let reply = server
            .get("/", &[("authorization", "Bearer revoked-token-xyz")])
            .await;
        assert_invalid_token(&server, &reply, "revoked-token-xyz", "token_inactive");
        // Remembered briefly: a retry does not reach the endpoint.
        server
            .get("/", &[("authorization", "Bearer revoked-token-xyz")])
            .await;
        assert_eq!(idp.introspection_hits(), 1);
    }

    async fn guarded(idp: &Idp) -> TestServer {
        TestServer::start(
            Palisade::builder()
                .authenticate(authenticator(idp))
                .build()
                .unwrap(),
        )
        .await
    }

    #[tokio::test]
    async fn rfc7662_2_2_a_refresh_token_is_not_an_access_token() {
        let idp = Idp::start(jwks(&[])).await;
        let answer = |token_type: &str| {
            json!({"active": true, "sub": "bob", "aud": AUD, "exp": now() + 600,
                   "token_type": token_type})
        };
        idp.add_token("refresh-token-0123456789", answer("refresh_token"));
        idp.add_token("not-applicable-0123456789", answer("N_A"));
        idp.add_token("bearer-typed-0123456789", answer("Bearer"));
        // Keycloak's refresh tokens: `typ: Refresh`, whatever `token_type` says.
        let mut keycloak = answer("Bearer");
        keycloak["typ"] = json!("Refresh");
        idp.add_token("keycloak-refresh-0123456789", keycloak);
        let server = guarded(&idp).await;
        for token in [
            "refresh-token-0123456789",
            "not-applicable-0123456789",
            "keycloak-refresh-0123456789",
        ] {
            let reply = server
                .get("/", &[("authorization", &format!("Bearer {token}"))])
                .await;
            assert_invalid_token(&server, &reply, token, "wrong_token_type");
        }
        let reply = server
            .get("/", &[("authorization", "Bearer bearer-typed-0123456789")])
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }

    #[tokio::test]
    async fn rfc9449_6_2_an_introspected_bound_token_presented_as_bearer_is_refused() {
        let idp = Idp::start(jwks(&[])).await;
        let jkt = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
        idp.add_token(
            "dpop-bound-0123456789",
            json!({"active": true, "sub": "bob", "aud": AUD, "token_type": "DPoP", "cnf": jkt}),
        );
        // RFC 8705 §3.2: certificate-bound, whatever `token_type` says.
        idp.add_token(
            "mtls-bound-0123456789",
            json!({"active": true, "sub": "bob", "aud": AUD, "token_type": "Bearer",
                   "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
        );
        let server = guarded(&idp).await;
        for token in ["dpop-bound-0123456789", "mtls-bound-0123456789"] {
            let reply = server
                .get("/", &[("authorization", &format!("Bearer {token}"))])
                .await;
            assert_invalid_token(&server, &reply, token, "token_bound");
        }
    }

    #[tokio::test]
    async fn rfc7662_2_2_the_principal_issuer_is_the_iss_of_the_answer() {
        let idp = Idp::start(jwks(&[])).await;
        let iss = "https://sso.palisade.test/realms/acme";
        idp.add_token(
            "with-iss-0123456789",
            json!({"active": true, "sub": "bob", "aud": AUD, "iss": iss}),
        );
        idp.add_token(
            "without-iss-0123456789",
            json!({"active": true, "sub": "bob", "aud": AUD}),
        );
        let server = guarded(&idp).await;
        let reply = server
            .get("/", &[("authorization", "Bearer with-iss-0123456789")])
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(
            reply.json()["method"],
            json!({"kind": "bearer", "issuer": iss})
        );
        // Without `iss` (it is optional): the endpoint stands for the issuer.
        let reply = server
            .get("/", &[("authorization", "Bearer without-iss-0123456789")])
            .await;
        assert_eq!(
            reply.json()["method"],
            json!({"kind": "bearer", "issuer": idp.introspection_url()})
        );
    }

    #[tokio::test]
    async fn active_token_for_another_audience_is_refused() {
        let idp = Idp::start(jwks(&[])).await;
        idp.add_token(
            "other-aud-token",
            json!({"active": true, "sub": "bob", "aud": "billing"}),
        );
        let server = TestServer::start(
            Palisade::builder()
                .authenticate(authenticator(&idp))
                .build()
                .unwrap(),
        )
        .await;
        let reply = server
            .get("/", &[("authorization", "Bearer other-aud-token")])
            .await;
        assert_invalid_token(&server, &reply, "other-aud-token", "wrong_audience");
    }

    #[tokio::test]
    async fn endpoint_down_or_hanging_is_503_not_200() {
        let idp = provider_with_token("good-token").await;
        let server = TestServer::start(
            Palisade::builder()
                .authenticate(authenticator(&idp))
                .build()
                .unwrap(),
        )
        .await;
        idp.set_introspection_mode(Mode::Failing);
        let reply = server
            .get("/", &[("authorization", "Bearer good-token")])
            .await;
        assert_eq!(reply.status, 503);
        // RFC 9110 §10.2.3: every 503 says when to come back.
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(
            server.last_refusal().unwrap().reason(),
            "introspection_error"
        );
        idp.set_introspection_mode(Mode::Hanging);
        let reply = server
            .get("/", &[("authorization", "Bearer good-token")])
            .await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(
            server.last_refusal().unwrap().reason(),
            "introspection_timeout"
        );
        assert_eq!(server.hits(), 0);
        // Failures are not cached: once the endpoint is back, the token works.
        idp.set_introspection_mode(Mode::Up);
        let reply = server
            .get("/", &[("authorization", "Bearer good-token")])
            .await;
        assert_eq!(reply.status, 200);
    }

    /// GET / with `token`, on its own task.
    fn spawn_get(server: &TestServer, token: &str) -> tokio::task::JoinHandle<support::Reply> {
        let req = http::Request::get("/")
            .header("host", server.addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        tokio::spawn(support::send(server.addr, req))
    }

    /// Waits for every task (spawned before this is called: a `Vec`, not a lazy iterator).
    async fn all(tasks: Vec<tokio::task::JoinHandle<support::Reply>>) -> Vec<support::Reply> {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn concurrent_requests_with_one_new_token_share_one_call() {
        let idp = provider_with_token("shared-token").await;
        let server = TestServer::start(
            Palisade::builder()
                .authenticate(authenticator(&idp))
                .build()
                .unwrap(),
        )
        .await;
        // A slow endpoint, so that all twenty requests arrive while the first call is out.
        idp.set_introspection_mode(Mode::Slow(150));
        let replies = all((0..20)
            .map(|_| spawn_get(&server, "shared-token"))
            .collect())
        .await;
        assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
        assert_eq!(idp.introspection_hits(), 1, "one call for the flight");
        assert_eq!(server.hits(), 20);
        // A failure is shared by the flight, and not kept: the next request calls again.
        idp.add_token(
            "second-token",
            json!({"active": true, "sub": "bob", "aud": AUD, "exp": now() + 600}),
        );
        idp.set_introspection_mode(Mode::Hanging);
        let replies = all((0..10)
            .map(|_| spawn_get(&server, "second-token"))
            .collect())
        .await;
        assert!(replies.iter().all(|r| r.status == 503), "{replies:?}");
        assert_eq!(
            idp.introspection_hits(),
            2,
            "one call for the failed flight"
        );
        idp.set_introspection_mode(Mode::Up);
        let reply = server
            .get("/", &[("authorization", "Bearer second-token")])
            .await;
        assert_eq!(reply.status, 200, "the failure was not kept");
        assert_eq!(idp.introspection_hits(), 3);
    }

    #[tokio::test]
    async fn a_flight_whose_first_request_goes_away_is_finished_by_the_others() {
        use palisade::authn::{Authentication, Authenticator};
        let idp = provider_with_token("token-left-behind").await;
        let auth = authenticator(&idp);
        let parts = || {
            http::Request::get("/")
                .header("authorization", "Bearer token-left-behind")
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        idp.set_introspection_mode(Mode::Slow(200));
        // The first request starts the call...
        let first_parts = parts();
        let mut first = Box::pin(auth.authenticate(&first_parts));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut first)
                .await
                .is_err()
        );
        assert_eq!(idp.introspection_hits(), 1);
        // ...five more join it...
        let others: Vec<_> = (0..5)
            .map(|_| {
                let (auth, parts) = (auth.clone(), parts());
                tokio::spawn(async move { auth.authenticate(&parts).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(idp.introspection_hits(), 1, "they wait for the call out");
        // ...and the first goes away before the answer: one of them makes the call again.
        drop(first);
        for task in others {
            assert!(matches!(
                task.await.unwrap(),
                Authentication::Authenticated(_)
            ));
        }
        assert_eq!(idp.introspection_hits(), 2, "one call taken over, not five");
        assert_eq!(auth.cached_tokens(), 1);
    }

    #[tokio::test]
    async fn a_failing_endpoint_opens_the_circuit_and_one_probe_closes_it() {
        let idp = provider_with_token("breaker-token").await;
        let auth = IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .audience(AUD)
            .timeout(Duration::from_millis(200))
            .circuit_breaker(3, Duration::from_millis(300))
            .build()
            .unwrap();
        let server =
            TestServer::start(Palisade::builder().authenticate(auth).build().unwrap()).await;
        let get = || server.get("/", &[("authorization", "Bearer breaker-token")]);
        idp.set_introspection_mode(Mode::Failing);
        for _ in 0..3 {
            assert_eq!(get().await.status, 503);
        }
        assert_eq!(idp.introspection_hits(), 3);
        // Open: refused at once, with Retry-After, and the endpoint is left alone.
        for _ in 0..5 {
            let reply = get().await;
            assert_eq!(reply.status, 503);
            assert_eq!(reply.headers["retry-after"], "1");
            assert_eq!(
                server.last_refusal().unwrap().reason(),
                "introspection_circuit_open"
            );
        }
        assert_eq!(
            idp.introspection_hits(),
            3,
            "no call while the circuit is open"
        );
        assert_eq!(server.hits(), 0);
        // The endpoint recovers; after the cool-down one probe goes out and closes the circuit.
        idp.set_introspection_mode(Mode::Up);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let reply = get().await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(idp.introspection_hits(), 4);
        assert_eq!(get().await.status, 200);
    }

    #[tokio::test]
    async fn wrong_client_secret_fails_closed() {
        let idp = provider_with_token("good-token").await;
        let auth = IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
            .client_secret("not-the-secret")
            .build()
            .unwrap();
        let server =
            TestServer::start(Palisade::builder().authenticate(auth).build().unwrap()).await;
        let reply = server
            .get("/", &[("authorization", "Bearer good-token")])
            .await;
        assert_eq!(reply.status, 503);
        assert!(!reply.visible_text().contains("not-the-secret"));
        assert_eq!(server.hits(), 0);
    }
}

#[tokio::test]
async fn static_pem_and_hmac_keys_verify_without_any_fetch() {
    use palisade::authn::jwt::{Algorithm, Key};
    let secret = b"a-test-hmac-secret-of-32-bytes!!";
    let pem = String::from_utf8(fixture("es256.pub.pem")).unwrap();
    let jwt = JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .key(Key::from_pem(&pem).unwrap().with_kid("es256"))
                .key(Key::hmac(secret, Algorithm::HS256).unwrap().with_kid("hs"))
                .audience(AUD),
        )
        .build()
        .unwrap();
    let server = serve(jwt).await;
    let reply = server
        .get(
            "/",
            &[("authorization", &bearer(&mint("es256", &claims())))],
        )
        .await;
    assert_eq!(reply.status, 200);
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    let hs = support::encode_jwt(
        &header,
        &claims(),
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap();
    let reply = server.get("/", &[("authorization", &bearer(&hs))]).await;
    assert_eq!(reply.status, 200, "HS256 with a configured secret");
    // HS256 under the EC key's kid: the key decides the algorithm.
    header.kid = Some("es256".into());
    let confused = support::encode_jwt(
        &header,
        &claims(),
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap();
    let reply = server
        .get("/", &[("authorization", &bearer(&confused))])
        .await;
    assert_invalid_token_after(&server, &reply, "unsupported_algorithm");
    assert_eq!(
        server.hits(),
        2,
        "the refused request did not reach the handler"
    );
}

fn assert_invalid_token_after(server: &TestServer, reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 401);
    assert_eq!(server.last_refusal().unwrap().reason(), reason);
}

#[tokio::test]
async fn jwts_and_opaque_tokens_in_one_chain() {
    let idp = Idp::start(jwks(&["es256"])).await;
    idp.add_token(
        "opaque-abc",
        json!({"active": true, "sub": "carol", "aud": AUD}),
    );
    let jwt = provider(&idp).pass_opaque_tokens().build().unwrap();
    let introspection = IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .build()
        .unwrap();
    let server = TestServer::start(
        Palisade::builder()
            .authenticate(Chain::new(jwt, introspection))
            .build()
            .unwrap(),
    )
    .await;
    let reply = server
        .get("/", &[("authorization", "Bearer opaque-abc")])
        .await;
    assert_eq!(reply.json()["subject"], "carol");
    let reply = server
        .get(
            "/",
            &[("authorization", &bearer(&mint("es256", &claims())))],
        )
        .await;
    assert_eq!(reply.json()["subject"], "alice");
    assert_eq!(
        idp.introspection_hits(),
        1,
        "JWTs never go to introspection"
    );
}

#[tokio::test]
async fn key_sets_refresh_on_schedule_even_when_every_token_is_cached() {
    let idp = Idp::start(jwks(&["es256", "es256-next"])).await;
    let clock = ManualClock::new(Timestamp::from_unix_secs(now()));
    let jwt = provider(&idp)
        .jwks_lifetime(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = jwt.clone();
    let server = TestServer::start(Palisade::builder().authenticate(jwt).build().unwrap()).await;
    let token = mint("es256", &claims());
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(idp.jwks_hits(), 1);
    // The provider withdraws the key; the set's lifetime ends.
    idp.set_jwks(jwks(&["es256-next"]));
    clock.advance(Duration::from_secs(61));
    // Answered from the cache while the refresh runs in the background...
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 200);
    for _ in 0..100 {
        if handle.cached_tokens() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(idp.jwks_hits(), 2, "one background refresh");
    // ...which found the key withdrawn and emptied the cache.
    let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(server.last_refusal().unwrap().reason(), "unknown_kid");
}

#[tokio::test]
async fn a_hung_provider_costs_one_fetch_however_many_requests_wait() {
    let idp = Idp::start(jwks(&["es256"])).await;
    idp.set_jwks_mode(Mode::Hanging);
    let jwt = provider(&idp)
        .fetch_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let server = Arc::new(serve(jwt).await);
    let token = mint("es256", &claims());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (server, token) = (server.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            server
                .get("/", &[("authorization", &bearer(&token))])
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 503);
    }
    // The requests that queued behind the hung fetch took its failure; none fetched again.
    assert_eq!(idp.jwks_hits(), 1);
    assert_eq!(server.hits(), 0);
}

/// OpenID Connect Discovery 1.0 / RFC 8414: the JWKS URL from the issuer's metadata.
mod discovery {
    use super::*;

    fn discovering(idp: &Idp) -> JwtAuthenticator {
        JwtAuthenticator::builder()
            .issuer(
                Issuer::new(ISS)
                    .discovery_url(idp.discovery_url())
                    .audience(AUD),
            )
            .unknown_kid_refetch_interval(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn oidc_discovery_4_the_key_set_is_found_through_the_issuer_metadata() {
        let idp = Idp::start(jwks(&["es256"])).await;
        idp.set_discovery(json!({"issuer": ISS, "jwks_uri": idp.jwks_url()}));
        let server = serve(discovering(&idp)).await;
        let token = mint("es256", &claims());
        for _ in 0..5 {
            let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
        }
        assert_eq!(idp.discovery_hits(), 1, "the document is read once");
        assert_eq!(idp.jwks_hits(), 1);
    }

    #[tokio::test]
    async fn oidc_discovery_4_3_a_document_naming_another_issuer_yields_no_keys() {
        let idp = Idp::start(jwks(&["es256"])).await;
        // A document for another issuer, pointing at keys that are not this issuer's.
        idp.set_discovery(json!({"issuer": "https://evil.example", "jwks_uri": idp.evil_url()}));
        let server = serve(discovering(&idp)).await;
        let token = mint("es256", &claims());
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_eq!(reply.status, 503, "fail closed: {:?}", reply.body);
        assert_eq!(server.hits(), 0);
        assert_eq!(
            idp.evil_hits(),
            0,
            "the other issuer's keys are never fetched"
        );
        assert_eq!(idp.jwks_hits(), 0);
        // Fixed at the provider, the next attempt (after the retry delay) reads it again.
        idp.set_discovery(json!({"issuer": ISS, "jwks_uri": idp.jwks_url()}));
        let jwt = discovering(&idp);
        jwt.refresh().await.unwrap();
        assert_eq!(idp.discovery_hits(), 2);
    }

    #[tokio::test]
    async fn a_discovered_jwks_uri_over_plain_http_to_another_host_is_refused() {
        let idp = Idp::start(jwks(&["es256"])).await;
        idp.set_discovery(json!({"issuer": ISS, "jwks_uri": "http://198.51.100.7/certs"}));
        let jwt = discovering(&idp);
        let err = jwt.refresh().await.unwrap_err();
        assert!(err.contains("https"), "{err}");
        let server = serve(jwt).await;
        let token = mint("es256", &claims());
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_eq!(reply.status, 503);
        assert_eq!(server.hits(), 0);
    }

    #[tokio::test]
    async fn a_moved_key_set_is_found_again_after_a_failed_fetch() {
        let idp = Idp::start(jwks(&["es256"])).await;
        idp.set_discovery(json!({"issuer": ISS, "jwks_uri": idp.evil_url()}));
        let jwt = discovering(&idp);
        // The document points at a URL that answers 404: the fetch fails...
        assert!(jwt.refresh().await.is_err());
        // ...the provider fixes its document, and the next fetch reads it again.
        idp.set_discovery(json!({"issuer": ISS, "jwks_uri": idp.jwks_url()}));
        jwt.refresh().await.unwrap();
        assert_eq!(
            (idp.discovery_hits(), idp.evil_hits(), idp.jwks_hits()),
            (2, 1, 1)
        );
        let server = serve(jwt).await;
        let token = mint("es256", &claims());
        let reply = server.get("/", &[("authorization", &bearer(&token))]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
}

/// RFC 9728: the Protected Resource Metadata document, served by the stack and named in its
/// challenges.
mod resource_metadata {
    use palisade::authn::ResourceMetadata;

    use super::*;

    const PATH: &str = "/.well-known/oauth-protected-resource/orders";
    const URL: &str = "https://api.palisade.test/.well-known/oauth-protected-resource/orders";

    fn metadata() -> ResourceMetadata {
        ResourceMetadata::builder("https://api.palisade.test/orders")
            .authorization_server(ISS)
            .scopes(["orders:read", "orders:write"])
            .resource_name("Orders API")
            .build()
            .unwrap()
    }

    /// API keys and the provider's JWTs, with the metadata.
    async fn server(idp: &Idp) -> TestServer {
        let keys = Keys::new();
        let chain = Chain::new(keys.authenticator(), jwt(idp));
        TestServer::start(
            Palisade::builder()
                .authenticate(chain)
                .resource_metadata(metadata())
                .build()
                .unwrap(),
        )
        .await
    }

    /// The members of RFC 9728 §2 and their types, as a JSON Schema.
    fn rfc9728_2_schema() -> Value {
        let strings = json!({"type": "array", "items": {"type": "string"}});
        json!({
            "type": "object",
            "required": ["resource"],
            "properties": {
                "resource": {"type": "string", "pattern": "^https://[^?#]+$"},
                "authorization_servers": strings,
                "jwks_uri": {"type": "string"},
                "scopes_supported": strings,
                "bearer_methods_supported": {
                    "type": "array", "items": {"enum": ["header", "body", "query"]}
                },
                "resource_signing_alg_values_supported": strings,
                "resource_name": {"type": "string"},
                "resource_documentation": {"type": "string"},
                "resource_policy_uri": {"type": "string"},
                "resource_tos_uri": {"type": "string"},
                "tls_client_certificate_bound_access_tokens": {"type": "boolean"},
                "authorization_details_types_supported": strings,
                "dpop_signing_alg_values_supported": strings,
                "dpop_bound_access_tokens_required": {"type": "boolean"}
            }
        })
    }

    #[tokio::test]
    async fn rfc9728_3_the_document_is_served_to_anyone_and_validates() {
        let idp = Idp::start(jwks(&["es256"])).await;
        let server = server(&idp).await;
        let reply = server.get(PATH, &[]).await;
        assert_eq!(reply.status, 200);
        // §3.2: a JSON document.
        assert_eq!(reply.headers["content-type"], "application/json");
        let doc = reply.json();
        let schema = jsonschema::validator_for(&rfc9728_2_schema()).unwrap();
        assert!(schema.is_valid(&doc), "{doc}");
        // §3.3: the `resource` is the identifier the URL was made from.
        assert_eq!(doc["resource"], "https://api.palisade.test/orders");
        assert_eq!(doc["authorization_servers"], json!([ISS]));
        assert_eq!(
            doc["scopes_supported"],
            json!(["orders:read", "orders:write"])
        );
        // A credential, even a bad one, does not matter here; HEAD has no body.
        let reply = server
            .get(PATH, &[("authorization", "Bearer not-a-token")])
            .await;
        assert_eq!(reply.status, 200);
        let length = reply.headers["content-length"].clone();
        let reply = server.request(http::Method::HEAD, PATH, &[]).await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.is_empty());
        // RFC 9110 §9.3.2: the same headers as GET, the length included.
        assert_eq!(reply.headers["content-length"], length);
        assert_eq!(server.hits(), 0, "the handler never ran");
        // Another method is not the document's: guarded as any route.
        let reply = server.request(http::Method::POST, PATH, &[]).await;
        assert_eq!(reply.status, 401);
    }

    #[tokio::test]
    async fn rfc9728_5_1_every_bearer_challenge_of_a_401_names_the_document() {
        let idp = Idp::start(jwks(&["es256"])).await;
        let server = server(&idp).await;
        let mut expired = claims();
        expired["exp"] = json!(now() - 3600);
        let expired = bearer(&mint("es256", &expired));
        let attempts: [&[(&str, &str)]; 4] = [
            &[],
            &[("authorization", "Bearer not.a.jwt")],
            &[("authorization", &expired)],
            &[("x-api-key", "pal_not_a_key")],
        ];
        for headers in attempts {
            let reply = server.get("/orders", headers).await;
            assert_eq!(reply.status, 401, "{headers:?}");
            let challenges: Vec<&str> = reply
                .headers
                .get_all("www-authenticate")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            let named = format!(r#"resource_metadata="{URL}""#);
            let bearer: Vec<_> = challenges
                .iter()
                .filter(|c| c.starts_with("Bearer"))
                .collect();
            // A failed API key answers with its own scheme's challenge only.
            if headers.first().is_some_and(|(h, _)| *h == "x-api-key") {
                assert!(challenges.iter().all(|c| !c.contains("resource_metadata")));
                continue;
            }
            assert!(!bearer.is_empty(), "{challenges:?}");
            for c in bearer {
                assert!(c.contains(&named), "{c}");
            }
        }
        assert_eq!(server.hits(), 0);
    }
}

/// RFC 8705 §3: tokens bound to the client's TLS certificate, which a trusted TLS-terminating
/// proxy reports in a header.
mod mtls {
    use http::HeaderName;
    use palisade::client_cert::ClientCertHeader;
    use palisade::client_ip::ClientIpResolver;
    use sha2::{Digest, Sha256};

    use super::*;

    /// Two real certificates: the one the client holds, and another.
    const CLIENT: &str = include_str!("../fixtures/redis-tls/server.crt");
    const OTHER: &str = include_str!("../fixtures/redis-tls/other-ca.crt");
    const HEADER: &str = "x-ssl-client-cert";

    /// The certificate as nginx's `$ssl_client_escaped_cert` sends it.
    fn escaped(pem: &str) -> String {
        percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    /// RFC 8705 §3.1: base64url of the SHA-256 of the DER.
    fn x5t(pem: &str) -> String {
        let der = pem_rfc7468::decode_vec(pem.trim().as_bytes()).unwrap().1;
        URL_SAFE_NO_PAD.encode(Sha256::digest(der))
    }

    /// The guard behind a proxy on loopback (trusted when `trusted`).
    async fn server<A: palisade::authn::Authenticator>(authn: A, trusted: bool) -> TestServer {
        let mut resolver = ClientIpResolver::new()
            .with_client_cert_header(ClientCertHeader::Pem(HeaderName::from_static(HEADER)));
        if trusted {
            resolver = resolver.trust_proxy("127.0.0.1/32".parse().unwrap());
        }
        TestServer::start(
            Palisade::builder()
                .with_client_ip(resolver)
                .authenticate(authn)
                .build()
                .unwrap(),
        )
        .await
    }

    fn refused(server: &TestServer, reply: &Reply) {
        assert_eq!(reply.status, 401, "{:?}", reply.body);
        assert_eq!(reply.json()["code"], "invalid_token");
        assert_eq!(server.last_refusal().unwrap().reason(), "token_bound");
    }

    #[tokio::test]
    async fn rfc8705_3_a_certificate_bound_jwt_needs_that_certificate() {
        let idp = Idp::start(jwks(&["es256"])).await;
        let server = server(jwt(&idp), true).await;
        let mut c = claims();
        c["cnf"] = json!({"x5t#S256": x5t(CLIENT)});
        let token = bearer(&mint("es256", &c));
        let (mine, other) = (escaped(CLIENT), escaped(OTHER));
        // With its certificate: served, the second time from the verified-token cache.
        for _ in 0..2 {
            let reply = server
                .get("/", &[("authorization", &token), (HEADER, &mine)])
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
        }
        // Cached or not, another certificate or none does not do.
        let reply = server
            .get("/", &[("authorization", &token), (HEADER, &other)])
            .await;
        refused(&server, &reply);
        let reply = server.get("/", &[("authorization", &token)]).await;
        refused(&server, &reply);
        assert_eq!(server.hits(), 2);
        // An unbound token needs no certificate.
        let reply = server
            .get(
                "/",
                &[("authorization", &bearer(&mint("es256", &claims())))],
            )
            .await;
        assert_eq!(reply.status, 200);
    }

    #[tokio::test]
    async fn rfc8705_3_a_certificate_header_from_an_untrusted_peer_is_ignored() {
        let idp = Idp::start(jwks(&["es256"])).await;
        // The header names the right certificate, but loopback is not a trusted proxy here: a
        // client cannot claim a certificate it did not present.
        let server = server(jwt(&idp), false).await;
        let mut c = claims();
        c["cnf"] = json!({"x5t#S256": x5t(CLIENT)});
        let token = bearer(&mint("es256", &c));
        let reply = server
            .get(
                "/",
                &[("authorization", &token), (HEADER, &escaped(CLIENT))],
            )
            .await;
        refused(&server, &reply);
        assert_eq!(server.hits(), 0);
    }

    #[tokio::test]
    async fn rfc8705_3_2_an_introspected_certificate_bound_token_needs_that_certificate() {
        let idp = Idp::start(jwks(&[])).await;
        idp.add_token(
            "mtls-bound-token-0123456789",
            json!({"active": true, "sub": "bob", "aud": AUD, "token_type": "Bearer",
                   "cnf": {"x5t#S256": x5t(CLIENT)}}),
        );
        let introspection = IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .audience(AUD)
            .build()
            .unwrap();
        let server = server(introspection, true).await;
        let token = "Bearer mtls-bound-token-0123456789";
        let reply = server
            .get("/", &[("authorization", token), (HEADER, &escaped(CLIENT))])
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let reply = server
            .get("/", &[("authorization", token), (HEADER, &escaped(OTHER))])
            .await;
        refused(&server, &reply);
        assert_eq!(
            idp.introspection_hits(),
            1,
            "the verdict is cached, the binding is not"
        );
    }
}
