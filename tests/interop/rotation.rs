//! The provider's key set changes under palisade: keys rotated by restarting the provider on
//! the same port with another key list, and the provider going away.

use super::*;
use idp::jwt_resource_by;

const OLD: &str = "es256-old:ES256";
const NEW: &str = "es256-new:ES256";

/// A fresh token of the provider signed by the key `kid` (ES256).
async fn token_by(idp: &OidcProvider, kid: &str) -> String {
    let token = idp.token(&jwt_resource_by("ES256", kid)).await;
    assert_eq!(idp::header(&token)["kid"], kid);
    token
}

/// Why `token` was not served, if it was not.
async fn refusal(server: &TestServer, token: &str) -> Option<String> {
    let reply = get(server, token).await;
    (reply.status != 200).then(|| {
        format!(
            "{} {:?}",
            reply.status,
            server.last_refusal().map(|r| r.reason().to_owned())
        )
    })
}

/// Key sets kept for 60 s at most and trusted for 5 minutes without the provider, on `clock`.
fn jwt_on(idp: &OidcProvider, clock: &ManualClock) -> JwtAuthenticator<ManualClock> {
    let minute = Duration::from_secs(60);
    builder(idp)
        .jwks_lifetime(minute, minute, minute)
        .unknown_kid_refetch_interval(Duration::from_secs(30))
        .jwks_max_stale(Duration::from_secs(300))
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Waits until the verified-token cache was emptied (a background refresh found a key
/// withdrawn).
async fn cache_emptied(jwt: &JwtAuthenticator<ManualClock>) {
    for _ in 0..1000 {
        if jwt.cached_tokens() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the cache was never emptied: {} tokens",
        jwt.cached_tokens()
    );
}

#[tokio::test]
async fn rfc7517_key_rotation_at_the_provider_loses_no_request_and_retires_the_old_key() {
    let Some(mut idp) = OidcProvider::start("key rotation", &[OLD]).await else {
        return;
    };
    let clock = ManualClock::new(now());
    let jwt = jwt_on(&idp, &clock);
    let server = serve(jwt.clone()).await;
    let iss = idp.issuer();
    let mut failures: Vec<String> = Vec::new();
    let old = token_by(&idp, "es256-old").await;
    failures.extend(refusal(&server, &old).await);
    // Graceful rotation: the provider publishes the new key beside the old one and signs new
    // tokens with it at once.
    idp.restart(&[OLD, NEW]).await;
    for _ in 0..3 {
        failures.extend(refusal(&server, &token_by(&idp, "es256-new").await).await);
        failures.extend(refusal(&server, &token_by(&idp, "es256-old").await).await);
    }
    assert_eq!(
        jwt.jwks_fetches(&iss),
        Some(2),
        "one refetch, for the new kid"
    );
    // Hard rotation: the old key is withdrawn. Tokens of the new key pass throughout, and a
    // token of the old key still in flight is served until the set is refreshed.
    idp.restart(&[NEW]).await;
    for _ in 0..3 {
        failures.extend(refusal(&server, &token_by(&idp, "es256-new").await).await);
    }
    failures.extend(refusal(&server, &old).await);
    assert!(
        failures.is_empty(),
        "requests failed during the rotation: {failures:?}"
    );
    assert_eq!(server.hits(), 11);
    // The set's lifetime ends: the next request starts a background refresh, which finds the
    // old key gone and empties the verified-token cache.
    clock.advance(Duration::from_secs(61));
    assert_served(&get(&server, &old).await, &idp);
    cache_emptied(&jwt).await;
    assert_eq!(jwt.jwks_fetches(&iss), Some(3));
    let reply = get(&server, &old).await;
    assert_invalid_token(&server, &reply, &old, "unknown_kid");
    let reply = get(&server, &token_by(&idp, "es256-new").await).await;
    assert_served(&reply, &idp);
    assert_eq!(server.hits(), 13);
}

#[tokio::test]
async fn rfc9110_15_6_4_provider_outage_known_keys_serve_within_max_stale_an_unknown_kid_is_503() {
    let Some(mut idp) = OidcProvider::start("provider outage", &[OLD]).await else {
        return;
    };
    let clock = ManualClock::new(now());
    let jwt = jwt_on(&idp, &clock);
    let server = serve(jwt.clone()).await;
    let iss = idp.issuer();
    let seen = token_by(&idp, "es256-old").await;
    assert_served(&get(&server, &seen).await, &idp);
    // The provider adds a key palisade has not seen, issues tokens, and goes down.
    idp.restart(&[OLD, NEW]).await;
    let fresh = token_by(&idp, "es256-old").await;
    let unseen = token_by(&idp, "es256-new").await;
    idp.stop();
    // The key set's lifetime ends during the outage: its refresh fails...
    clock.advance(Duration::from_secs(120));
    assert_served(&get(&server, &seen).await, &idp);
    for _ in 0..1000 {
        if jwt.jwks_fetches(&iss) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(jwt.jwks_fetches(&iss), Some(2), "one failed refresh");
    // ...but the last good set still verifies tokens of its keys, cached or not.
    assert_served(&get(&server, &fresh).await, &idp);
    // A kid it does not know may be the provider's new key or a forgery: 503, come back later.
    let reply = get(&server, &unseen).await;
    assert_unavailable(&server, &reply, "jwks_unavailable");
    assert_eq!(server.hits(), 3);
    // Past `jwks_max_stale` nothing of the set is trusted any more (the tokens live on).
    clock.advance(Duration::from_secs(200));
    let reply = get(&server, &fresh).await;
    assert_unavailable(&server, &reply, "jwks_unavailable");
    assert_eq!(
        server.hits(),
        3,
        "the refused requests never reached the handler"
    );
    // The provider is back (same keys): after the retry delay both kids pass.
    idp.restart(&[OLD, NEW]).await;
    clock.advance(Duration::from_secs(6));
    assert_served(&get(&server, &unseen).await, &idp);
    assert_served(&get(&server, &fresh).await, &idp);
}
