//! Opaque tokens of the provider, checked through its RFC 7662 introspection endpoint with
//! client authentication (`client_secret_basic`).

use palisade::authn::Chain;
use palisade::authn::introspection::{IntrospectionAuthenticator, IntrospectionBuilder};

use super::*;
use idp::{OPAQUE, RESOURCE_SERVER};

/// Introspection as the resource server's client, for our audience and the provider's `iss`.
pub(crate) fn introspector(idp: &OidcProvider) -> IntrospectionBuilder {
    IntrospectionAuthenticator::builder(idp.introspection_url(), RESOURCE_SERVER.0)
        .client_secret(RESOURCE_SERVER.1)
        .issuer(idp.issuer())
        .audience(AUD)
        .timeout(PATIENCE)
}

#[tokio::test]
async fn rfc7662_2_2_an_active_opaque_token_reaches_the_handler_with_its_principal() {
    let Some(idp) = OidcProvider::start("introspection active", KEYS).await else {
        return;
    };
    let auth = introspector(&idp).build().unwrap();
    let server = serve(auth.clone()).await;
    let token = idp.token(OPAQUE).await;
    assert_eq!(token.split('.').count(), 1, "an opaque token: {token}");
    for _ in 0..3 {
        assert_served(&get(&server, &token).await, &idp);
    }
    assert_eq!(auth.cached_tokens(), 1, "introspected once, then cached");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn rfc7662_2_2_unknown_and_revoked_tokens_are_refused() {
    let Some(idp) = OidcProvider::start("introspection inactive", KEYS).await else {
        return;
    };
    let server = serve(introspector(&idp).build().unwrap()).await;
    let unknown = "Xq3unknown-token-0123456789abcdefghijklmnopq";
    let reply = get(&server, unknown).await;
    assert_invalid_token(&server, &reply, unknown, "token_inactive");
    // RFC 7009: revoked at the provider before it was ever presented.
    let token = idp.token(OPAQUE).await;
    idp.revoke(&token).await;
    let reply = get(&server, &token).await;
    assert_invalid_token(&server, &reply, &token, "token_inactive");
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn rfc7009_2_a_token_revoked_at_the_provider_is_refused_once_its_cached_answer_expires() {
    let Some(idp) = OidcProvider::start("introspection revoked", KEYS).await else {
        return;
    };
    let clock = ManualClock::new(now());
    let auth = introspector(&idp)
        .positive_ttl(Duration::from_secs(30))
        .clock(clock.clone())
        .build()
        .unwrap();
    let server = serve(auth).await;
    let token = idp.token(OPAQUE).await;
    assert_served(&get(&server, &token).await, &idp);
    idp.revoke(&token).await;
    // The active answer is trusted for `positive_ttl`: the price of not calling the provider
    // on every request.
    clock.advance(Duration::from_secs(20));
    assert_served(&get(&server, &token).await, &idp);
    // Then the provider is asked again, and says the token is no longer active.
    clock.advance(Duration::from_secs(11));
    let reply = get(&server, &token).await;
    assert_invalid_token(&server, &reply, &token, "token_inactive");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn rfc7662_2_1_an_introspection_client_the_provider_does_not_authenticate_fails_closed() {
    let Some(idp) = OidcProvider::start("introspection client auth", KEYS).await else {
        return;
    };
    let token = idp.token(OPAQUE).await;
    // A wrong secret: the provider answers 401 invalid_client, palisade 503 (its own
    // configuration is broken, not the caller's token).
    let auth = IntrospectionAuthenticator::builder(idp.introspection_url(), RESOURCE_SERVER.0)
        .client_secret("not-the-secret-0123456789")
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let server = serve(auth).await;
    let reply = get(&server, &token).await;
    assert_unavailable(&server, &reply, "introspection_error");
    assert!(!reply.visible_text().contains("not-the-secret"));
    assert_eq!(server.hits(), 0);
    // The right secret in the form body (client_secret_post) works as well.
    let auth = introspector(&idp).client_auth_in_body().build().unwrap();
    let server = serve(auth).await;
    assert_served(&get(&server, &token).await, &idp);
}

#[tokio::test]
async fn rfc7662_4_the_provider_down_is_503_with_retry_after_and_it_recovers() {
    let Some(mut idp) = OidcProvider::start("introspection outage", KEYS).await else {
        return;
    };
    let server = serve(introspector(&idp).build().unwrap()).await;
    let token = idp.token(OPAQUE).await;
    idp.stop();
    let reply = get(&server, &token).await;
    assert_unavailable(&server, &reply, "introspection_error");
    assert_eq!(server.hits(), 0);
    // The provider is back (its in-memory tokens are gone): a new token is served.
    idp.restart(KEYS).await;
    let token = idp.token(OPAQUE).await;
    assert_served(&get(&server, &token).await, &idp);
}

#[tokio::test]
async fn jwts_and_opaque_tokens_of_one_provider_pass_one_chain() {
    let Some(idp) = OidcProvider::start("jwt and opaque chain", KEYS).await else {
        return;
    };
    let jwt = builder(&idp).pass_opaque_tokens().build().unwrap();
    let introspection = introspector(&idp).build().unwrap();
    let server = serve(Chain::new(jwt, introspection.clone())).await;
    assert_served(&get(&server, &idp.token(OPAQUE).await).await, &idp);
    for alg in ALGS {
        let token = idp.token(&jwt_resource(alg)).await;
        assert_served(&get(&server, &token).await, &idp);
    }
    assert_eq!(
        introspection.cached_tokens(),
        1,
        "JWTs never go to introspection"
    );
}
