//! Step-up authentication (RFC 9470) over loopback: a route that needs a stronger or more
//! recent authentication than the token shows answers 401 `insufficient_user_authentication`
//! with what is needed, and the handler is never reached.

use http::Method;
use palisade::authz::{AuthzLayer, LivePolicy, Methods, PolicySpec, RuleSpec};

use super::*;

const MFA: &str = "urn:example:mfa";

async fn server(idp: &Idp) -> TestServer {
    let spec = PolicySpec::builder()
        .role("admin", [])
        .allow([Method::GET], "/v1/orders", ["admin"])
        .route(
            RuleSpec::new("/v1/payments", Methods::Some(vec![Method::POST]))
                .roles(["admin"])
                .acr_values([MFA])
                .max_auth_age(Duration::from_secs(300)),
        )
        .build();
    let authz = AuthzLayer::new(LivePolicy::from_spec(&spec).unwrap());
    TestServer::start(
        Palisade::builder()
            .authenticate(jwt(idp))
            .authorize(authz)
            .build()
            .unwrap(),
    )
    .await
}

fn token(acr: &str, auth_age: u64) -> String {
    let mut c = claims();
    c["acr"] = json!(acr);
    c["auth_time"] = json!(now() - auth_age);
    bearer(&mint("es256", &c))
}

#[tokio::test]
async fn rfc9470_3_a_weak_or_old_authentication_is_asked_to_step_up() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let server = server(&idp).await;
    let pay = |t: String| {
        let server = &server;
        async move {
            server
                .request(Method::POST, "/v1/payments", &[("authorization", &t)])
                .await
        }
    };
    // A password login, and a second factor an hour ago: both asked to step up.
    for t in [token("pwd", 10), token(MFA, 3600)] {
        let reply = pay(t).await;
        assert_eq!(reply.status, 401, "{:?}", reply.body);
        assert_eq!(
            reply.headers["www-authenticate"],
            "Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required.\", acr_values=\"urn:example:mfa\", max_age=300"
        );
        assert_eq!(reply.json()["code"], "insufficient_user_authentication");
        assert_eq!(
            server.last_refusal().unwrap().reason(),
            "insufficient_user_authentication"
        );
    }
    assert_eq!(server.hits(), 0);
    // The same token serves routes that ask for no step-up.
    let reply = server
        .get("/v1/orders", &[("authorization", &token("pwd", 10))])
        .await;
    assert_eq!(reply.status, 200);
    // A fresh second-factor login passes.
    let reply = pay(token(MFA, 10)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(server.hits(), 2);
}
