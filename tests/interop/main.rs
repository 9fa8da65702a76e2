//! Interoperability with a real, certified OpenID provider: panva's `oidc-provider` (Node.js)
//! issues client-credentials access tokens over loopback HTTP — JWTs signed RS256, ES256 and
//! EdDSA, and opaque tokens for RFC 7662 introspection — and palisade guards an axum service
//! with them. No mock: the provider's own keys, discovery document, token, introspection and
//! revocation endpoints. See `tests/interop/provider/provider.mjs`.

mod dpop;
mod idp;
mod introspection;
mod rotation;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use palisade::Palisade;
use palisade::authn::jwt::{Issuer, JwtAuthenticator, JwtBuilder};
use palisade::clock::{Clock, ManualClock, SystemClock, Timestamp};
use serde_json::{Value, json};

use idp::{AUD, OidcProvider, jwt_resource};
use support::{Reply, TestServer};

/// One key of each algorithm the provider signs access tokens with.
const KEYS: &[&str] = &["rs256:RS256", "es256:ES256", "eddsa:EdDSA"];
const ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// How long a call to the provider may take: a Node.js process just started on a busy
/// machine (the suite starts one per test) can be slow to answer its first requests, and an
/// outage here is a refused connection, never a timeout.
const PATIENCE: Duration = Duration::from_secs(10);

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn now() -> Timestamp {
    SystemClock.now()
}

/// The provider's tokens for our audience, keys from its JWKS URL; RFC 9068 `at+jwt` only.
fn builder(idp: &OidcProvider) -> JwtBuilder {
    JwtAuthenticator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .jwks_url(idp.jwks_url())
                .audience(AUD),
        )
        .token_type("at+jwt")
        .fetch_timeout(PATIENCE)
}

async fn serve<A: palisade::authn::Authenticator>(authn: A) -> TestServer {
    TestServer::start(Palisade::builder().authenticate(authn).build().unwrap()).await
}

async fn get(server: &TestServer, token: &str) -> Reply {
    server
        .get("/orders", &[("authorization", &bearer(token))])
        .await
}

/// The provider's client reached the handler as the principal: `sub` is the client id for a
/// client-credentials token, its scope, and the provider as the issuer.
fn assert_served(reply: &Reply, idp: &OidcProvider) {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["subject"], "worker");
    assert_eq!(body["scopes"], json!(["orders:read"]));
    assert_eq!(
        body["method"],
        json!({"kind": "bearer", "issuer": idp.issuer()})
    );
}

/// Refused with 401 and an RFC 6750 §3.1 `invalid_token` challenge for `reason`; the handler
/// never ran and nothing the client sees contains the token.
fn assert_invalid_token(server: &TestServer, reply: &Reply, token: &str, reason: &str) {
    assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm=\"api\""), "{challenge}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{reason}: {challenge}"
    );
    assert_eq!(reply.json()["code"], "invalid_token");
    assert_eq!(server.last_refusal().unwrap().reason(), reason);
    assert!(
        !reply.visible_text().contains(token),
        "the token was echoed"
    );
}

/// Refused with 503 and a `Retry-After` of whole seconds (RFC 9110 §10.2.3) for `reason`.
fn assert_unavailable(server: &TestServer, reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 503, "{reason}: {:?}", reply.body);
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After: {retry}");
    assert_eq!(server.last_refusal().unwrap().reason(), reason);
}

#[tokio::test]
async fn rfc9068_client_credentials_jwts_signed_rs256_es256_and_eddsa_pass_through_the_jwks_url() {
    let Some(idp) = OidcProvider::start("rfc9068 jwks url", KEYS).await else {
        return;
    };
    let server = serve(builder(&idp).build().unwrap()).await;
    for alg in ALGS {
        let token = idp.token(&jwt_resource(alg)).await;
        // The provider signed it as asked: RFC 9068 §2.1 header, its key for that algorithm.
        let header = idp::header(&token);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], alg.to_lowercase());
        assert_served(&get(&server, &token).await, &idp);
    }
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn oidc_discovery_4_the_provider_keys_are_found_from_its_issuer_alone() {
    let Some(idp) = OidcProvider::start("oidc discovery", KEYS).await else {
        return;
    };
    // Only the issuer: the JWKS URL comes from {iss}/.well-known/openid-configuration.
    let jwt = JwtAuthenticator::builder()
        .issuer(Issuer::new(idp.issuer()).discover().audience(AUD))
        .token_type("at+jwt")
        .fetch_timeout(PATIENCE)
        .build()
        .unwrap();
    let server = serve(jwt.clone()).await;
    for alg in ALGS {
        let token = idp.token(&jwt_resource(alg)).await;
        assert_served(&get(&server, &token).await, &idp);
    }
    assert_eq!(
        jwt.jwks_fetches(&idp.issuer()),
        Some(1),
        "one key set serves the three algorithms"
    );
}

#[tokio::test]
async fn rfc7519_4_1_3_a_provider_token_for_another_resource_is_refused() {
    let Some(idp) = OidcProvider::start("another audience", KEYS).await else {
        return;
    };
    let server = serve(builder(&idp).build().unwrap()).await;
    // The same provider, client and key, for the billing API (aud "billing-api").
    let token = idp.token("https://billing.palisade.test/jwt/ES256").await;
    assert_eq!(idp::claims(&token)["aud"], "billing-api");
    let reply = get(&server, &token).await;
    assert_invalid_token(&server, &reply, &token, "wrong_audience");
    assert_eq!(server.hits(), 0);
}

/// `token` with its claims replaced by `edit(claims)`, the provider's signature kept.
fn tampered(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = idp::claims(token);
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn rfc7515_5_2_a_tampered_provider_token_is_refused_for_each_algorithm() {
    let Some(idp) = OidcProvider::start("tampered", KEYS).await else {
        return;
    };
    let server = serve(builder(&idp).build().unwrap()).await;
    for alg in ALGS {
        let token = idp.token(&jwt_resource(alg)).await;
        // More scope for the same client: the signature no longer matches.
        let forged = tampered(&token, |c| c["scope"] = json!("orders:read orders:write"));
        let reply = get(&server, &forged).await;
        assert_invalid_token(&server, &reply, &forged, "bad_signature");
        // The signature of another of the provider's tokens does not fit either.
        let other = idp.token(&jwt_resource(alg)).await;
        let (input, _) = token.rsplit_once('.').unwrap();
        let (_, signature) = other.rsplit_once('.').unwrap();
        let spliced = format!("{input}.{signature}");
        let reply = get(&server, &spliced).await;
        assert_invalid_token(&server, &reply, &spliced, "bad_signature");
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn rfc7519_4_1_4_a_provider_token_is_refused_past_its_exp_and_the_leeway() {
    let Some(idp) = OidcProvider::start("expired", KEYS).await else {
        return;
    };
    let clock = ManualClock::new(now());
    let jwt = builder(&idp)
        .leeway(Duration::from_secs(30))
        .clock(clock.clone())
        .build()
        .unwrap();
    let server = serve(jwt).await;
    let token = idp.token(&jwt_resource("ES256")).await;
    let claims = idp::claims(&token);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 600, "the provider's access token lifetime");
    assert_served(&get(&server, &token).await, &idp);
    // About ten seconds past `exp`, within the 30 s leeway: still served (verified again: the
    // cache never keeps a token past its `exp`).
    clock.advance(Duration::from_secs(lifetime + 10));
    assert_served(&get(&server, &token).await, &idp);
    // Past `exp` and the leeway.
    clock.advance(Duration::from_secs(30));
    let reply = get(&server, &token).await;
    assert_invalid_token(&server, &reply, &token, "token_expired");
    assert_eq!(server.hits(), 2);
}
