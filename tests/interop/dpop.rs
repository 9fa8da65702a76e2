//! DPoP-bound tokens of the provider (RFC 9449): JWT or opaque, served to a request with a
//! proof by the key the provider bound them to, refused as plain bearer tokens, and their
//! proofs never twice.

use http::Method;
use p256::ecdsa::SigningKey;
use palisade::authn::dpop::Dpop;

use super::*;
use idp::{OPAQUE, dpop_proof};

/// The origin the API declares: what proofs name in `htu`.
const ORIGIN: &str = "https://api.palisade.test";

/// `GET /orders` with `Authorization: DPoP <token>` and `proof`.
async fn get_with_proof(server: &TestServer, token: &str, proof: &str) -> Reply {
    let authz = format!("DPoP {token}");
    server
        .request(
            Method::GET,
            "/orders",
            &[("authorization", &authz), ("dpop", proof)],
        )
        .await
}

/// A bound token of the provider with its proof passes; the same proof again, a proof by
/// another key, and the token as a bearer token do not.
async fn the_bound_token_needs_its_proof(server: &TestServer, token: &str) {
    let key = client_key();
    let proof = dpop_proof(&key, "GET", &format!("{ORIGIN}/orders"), Some(token));
    let reply = get_with_proof(server, token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // RFC 9449 §11.1: a proof is used once.
    let reply = get_with_proof(server, token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        server.last_refusal().unwrap().reason(),
        "dpop_proof_replayed"
    );
    // A thief's key: the token is not bound to it.
    let thief = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let proof = dpop_proof(&thief, "GET", &format!("{ORIGIN}/orders"), Some(token));
    let reply = get_with_proof(server, token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(server.last_refusal().unwrap().reason(), "dpop_key_mismatch");
    // RFC 9449 §7.2: never as a bearer token.
    let reply = get(server, token).await;
    assert_eq!(reply.status, 401);
    assert_eq!(server.last_refusal().unwrap().reason(), "token_bound");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn rfc9449_7_1_a_dpop_bound_provider_jwt_is_served_with_its_proof() {
    let Some(idp) = OidcProvider::start("dpop jwt with proof", KEYS).await else {
        return;
    };
    let server = serve(builder(&idp).dpop(Dpop::new(ORIGIN)).build().unwrap()).await;
    let answer = idp.dpop_token(&jwt_resource("ES256"), &client_key()).await;
    let token = answer["access_token"].as_str().unwrap();
    the_bound_token_needs_its_proof(&server, token).await;
}

#[tokio::test]
async fn rfc9449_6_2_a_dpop_bound_opaque_provider_token_is_served_with_its_proof() {
    let Some(idp) = OidcProvider::start("dpop opaque with proof", KEYS).await else {
        return;
    };
    let auth = introspection::introspector(&idp)
        .dpop(Dpop::new(ORIGIN))
        .build()
        .unwrap();
    let server = serve(auth).await;
    let answer = idp.dpop_token(OPAQUE, &client_key()).await;
    let token = answer["access_token"].as_str().unwrap();
    the_bound_token_needs_its_proof(&server, token).await;
}

/// A fixed client key (any scalar below the curve order will do).
fn client_key() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).unwrap()
}

#[tokio::test]
async fn rfc9449_7_2_a_dpop_bound_provider_jwt_presented_as_bearer_is_refused() {
    let Some(idp) = OidcProvider::start("dpop jwt", KEYS).await else {
        return;
    };
    let server = serve(builder(&idp).build().unwrap()).await;
    let answer = idp.dpop_token(&jwt_resource("ES256"), &client_key()).await;
    // RFC 9449 §5: a DPoP token type, and the key's thumbprint in the token.
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap();
    assert!(idp::claims(token)["cnf"]["jkt"].is_string(), "{token}");
    let reply = get(&server, token).await;
    assert_invalid_token(&server, &reply, token, "token_bound");
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn rfc9449_7_2_a_dpop_bound_opaque_token_presented_as_bearer_is_refused() {
    let Some(idp) = OidcProvider::start("dpop opaque", KEYS).await else {
        return;
    };
    let auth = introspection::introspector(&idp).build().unwrap();
    let server = serve(auth).await;
    let answer = idp.dpop_token(OPAQUE, &client_key()).await;
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap();
    let reply = get(&server, token).await;
    assert_invalid_token(&server, &reply, token, "token_bound");
    assert_eq!(server.hits(), 0);
}
