//! DPoP-bound tokens of the provider (RFC 9449): palisade checks no DPoP proof yet, so a
//! token bound to a key, JWT or opaque, presented as a plain bearer token is refused.

use p256::ecdsa::SigningKey;

use super::*;
use idp::OPAQUE;

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
