//! DPoP (RFC 9449) over loopback: a key-bound access token, a client that signs real proofs
//! with its own P-256 key, and a named test for each check of §4.3, replay (§11.1), nonces
//! (§9) and the challenges (§7.1).

use std::sync::atomic::{AtomicU64, Ordering};

use http::Method;
use palisade::authn::dpop::Dpop;
use palisade::authn::jwt::Algorithm;
use sha2::{Digest, Sha256};

use super::*;

/// The public origin the API declares: proofs name it in `htu`.
const ORIGIN: &str = "https://api.example.com";

/// A DPoP client: its private key (the fixture `es256-next`) and public JWK.
struct Client {
    key: EncodingKey,
    jwk: Value,
}

fn client() -> Client {
    let mut jwk = jwk("es256-next");
    let members = jwk.as_object_mut().unwrap();
    members.remove("kid");
    members.remove("use");
    Client {
        key: EncodingKey::from_ec_der(&fixture("es256-next.key.der")),
        jwk,
    }
}

/// RFC 7638 thumbprint of a P-256 JWK, computed here independently of palisade.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token))
}

fn jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", unique(), N.fetch_add(1, Ordering::SeqCst))
}

/// Signs `header` and `claims` (as given: any member may be missing or wrong) with `key`.
fn sign(header: &Value, claims: &Value, key: &EncodingKey) -> String {
    sign_raw(&header.to_string(), &claims.to_string(), key)
}

fn sign_raw(header: &str, claims: &str, key: &EncodingKey) -> String {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, jsonwebtoken::Algorithm::ES256).unwrap();
    format!("{input}.{sig}")
}

impl Client {
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    fn claims(&self, method: &str, path: &str, token: &str) -> Value {
        json!({
            "jti": jti(), "htm": method, "htu": format!("{ORIGIN}{path}"),
            "iat": now(), "ath": ath(token),
        })
    }

    /// A valid proof for `method` on `path` with `token`.
    fn proof(&self, method: &str, path: &str, token: &str) -> String {
        self.proof_with(method, path, token, |_, _| {})
    }

    /// A proof edited by `edit` before it is signed.
    fn proof_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        edit: impl FnOnce(&mut Value, &mut Value),
    ) -> String {
        let (mut header, mut claims) = (self.header(), self.claims(method, path, token));
        edit(&mut header, &mut claims);
        sign(&header, &claims, &self.key)
    }
}

/// An access token bound to `client`'s key.
fn bound_token(client: &Client) -> String {
    let mut c = claims();
    c["cnf"] = json!({ "jkt": thumbprint(&client.jwk) });
    mint("es256", &c)
}

async fn dpop_server(idp: &Idp, dpop: Dpop) -> TestServer {
    let jwt = provider(idp)
        .leeway(Duration::from_secs(5))
        .dpop(dpop)
        .build()
        .unwrap();
    serve(jwt).await
}

async fn send(server: &TestServer, method: Method, path: &str, token: &str, proof: &str) -> Reply {
    let authz = format!("DPoP {token}");
    server
        .request(method, path, &[("authorization", &authz), ("dpop", proof)])
        .await
}

/// Refused with 401, `error` in a `DPoP` challenge, `reason` in the audit, handler not run,
/// neither the token nor the proof in anything the client sees.
fn assert_refused(server: &TestServer, reply: &Reply, error: &str, reason: &str, secrets: &[&str]) {
    assert_eq!(reply.status, 401, "{reason}: {:?}", reply.body);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("DPoP realm=\"api\""), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("algs=\""), "{challenge}");
    assert_eq!(server.last_refusal().unwrap().reason(), reason);
    assert_eq!(server.hits(), 0, "{reason}: the handler ran");
    let seen = reply.visible_text();
    for secret in secrets {
        assert!(!seen.contains(secret), "{reason}: echoed");
    }
}

/// One server, one bound token, and the client; a proof for each case.
async fn setup() -> (Idp, TestServer, Client, String) {
    setup_with(Dpop::new(ORIGIN)).await
}

/// A provider, a server checking proofs as `dpop` says, a client and a token bound to its key.
async fn setup_with(dpop: Dpop) -> (Idp, TestServer, Client, String) {
    let idp = Idp::start(jwks(&["es256"])).await;
    let server = dpop_server(&idp, dpop).await;
    let client = client();
    let token = bound_token(&client);
    (idp, server, client, token)
}

#[tokio::test]
async fn rfc9449_7_1_a_bound_token_with_its_proof_reaches_the_handler() {
    let (_idp, server, client, token) = setup().await;
    for _ in 0..3 {
        // A fresh proof each time; the token is verified once and then served from the cache.
        let proof = client.proof("GET", "/orders", &token);
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.json()["subject"], "alice");
    }
    let proof = client.proof("POST", "/orders/7", &token);
    let reply = send(&server, Method::POST, "/orders/7", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn rfc9449_7_2_a_bound_token_presented_as_bearer_is_refused_even_with_a_proof() {
    let (_idp, server, client, token) = setup().await;
    let proof = client.proof("GET", "/orders", &token);
    let reply = server
        .get(
            "/orders",
            &[("authorization", &bearer(&token)), ("dpop", &proof)],
        )
        .await;
    assert_invalid_token(&server, &reply, &token, "token_bound");
}

#[tokio::test]
async fn rfc9449_7_1_an_unbound_token_under_the_dpop_scheme_is_refused() {
    let (_idp, server, client, _) = setup().await;
    let token = mint("es256", &claims());
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_refused(
        &server,
        &reply,
        "invalid_token",
        "dpop_token_not_bound",
        &[&token],
    );
    // The same token as a bearer token is fine: DPoP does not stop plain tokens.
    let reply = server
        .get("/orders", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn rfc9449_4_3_1_exactly_one_proof_header_is_required() {
    let (_idp, server, client, token) = setup().await;
    let authz = format!("DPoP {token}");
    let reply = server.get("/orders", &[("authorization", &authz)]).await;
    assert_refused(
        &server,
        &reply,
        "invalid_dpop_proof",
        "dpop_proof_missing",
        &[&token],
    );
    let (a, b) = (
        client.proof("GET", "/orders", &token),
        client.proof("GET", "/orders", &token),
    );
    let reply = server
        .get(
            "/orders",
            &[("authorization", &authz), ("dpop", &a), ("dpop", &b)],
        )
        .await;
    assert_refused(
        &server,
        &reply,
        "invalid_dpop_proof",
        "dpop_proof_missing",
        &[&token],
    );
}

#[tokio::test]
async fn rfc9449_4_3_2_a_proof_that_is_not_one_well_formed_jwt_is_refused() {
    let (_idp, server, client, token) = setup().await;
    let good = client.proof("GET", "/orders", &token);
    let (head, _) = good.split_once('.').unwrap();
    let claims = client.claims("GET", "/orders", &token).to_string();
    let doubled = claims.replacen('{', r#"{"htm":"POST","#, 1);
    let crit = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": client.jwk, "crit": ["exp"]});
    let big = format!("{good}{}", "A".repeat(5000));
    for bad in [
        "not-a-jwt".to_owned(),
        format!("{head}.e30"),
        format!("{good}.extra"),
        // RFC 7515 §5.2: a member named twice is refused, not read with the last one winning.
        sign_raw(&client.header().to_string(), &doubled, &client.key),
        sign(&crit, &client.claims("GET", "/orders", &token), &client.key),
        big,
    ] {
        let reply = send(&server, Method::GET, "/orders", &token, &bad).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_malformed",
            &[&token],
        );
    }
}

#[tokio::test]
async fn rfc9449_4_3_3_a_proof_without_a_required_member_is_refused() {
    let (_idp, server, client, token) = setup().await;
    for claim in ["jti", "htm", "htu", "iat", "ath"] {
        let proof = client.proof_with("GET", "/orders", &token, |_, c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_malformed",
            &[],
        );
    }
    let proof = client.proof_with("GET", "/orders", &token, |h, _| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_refused(
        &server,
        &reply,
        "invalid_dpop_proof",
        "dpop_proof_malformed",
        &[],
    );
}

#[tokio::test]
async fn rfc9449_4_3_4_typ_must_be_dpop_jwt() {
    let (_idp, server, client, token) = setup().await;
    for typ in [json!("JWT"), json!("at+jwt"), json!(null)] {
        let proof = client.proof_with("GET", "/orders", &token, |h, _| h["typ"] = typ);
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_type",
            &[],
        );
    }
}

#[tokio::test]
async fn rfc9449_4_3_5_none_symmetric_and_unlisted_algorithms_are_refused() {
    let (idp, server, client, token) = setup().await;
    // `none`, HMAC (a shared secret proves nothing), and an algorithm that does not fit the
    // P-256 key.
    let claims = client.claims("GET", "/orders", &token);
    let none = format!(
        "{}.{}.",
        b64(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": client.jwk})),
        b64(&claims)
    );
    let hs = {
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": client.jwk});
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256);
        format!("{input}.{}", sig.unwrap())
    };
    let es384 = client.proof_with("GET", "/orders", &token, |h, _| h["alg"] = json!("ES384"));
    for bad in [none, hs, es384] {
        let reply = send(&server, Method::GET, "/orders", &token, &bad).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_algorithm",
            &[],
        );
    }
    // An API that allows EdDSA only refuses a good ES256 proof, and says which it takes.
    let eddsa_only = dpop_server(&idp, Dpop::new(ORIGIN).algorithms([Algorithm::EdDSA])).await;
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&eddsa_only, Method::GET, "/orders", &token, &proof).await;
    assert_refused(
        &eddsa_only,
        &reply,
        "invalid_dpop_proof",
        "dpop_proof_algorithm",
        &[],
    );
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(r#"algs="EdDSA""#), "{challenge}");
}

#[tokio::test]
async fn rfc9449_4_3_6_the_signature_must_verify_with_the_proofs_own_key() {
    let (_idp, server, client, token) = setup().await;
    // Signed by another key (the issuer's fixture key) than the jwk it names.
    let other = EncodingKey::from_ec_der(&fixture("es256.key.der"));
    let forged = sign(
        &client.header(),
        &client.claims("GET", "/orders", &token),
        &other,
    );
    // A valid proof with one character of its signature changed (not the last, whose spare
    // bits would make it malformed rather than wrong).
    let mut tampered = client.proof("GET", "/orders", &token);
    let at = tampered.len() - 10;
    let swap = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, swap);
    for bad in [forged, tampered] {
        let reply = send(&server, Method::GET, "/orders", &token, &bad).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_signature",
            &[],
        );
    }
}

#[tokio::test]
async fn rfc9449_4_3_7_a_jwk_with_private_key_material_is_refused() {
    let (_idp, server, client, token) = setup().await;
    for (name, value) in [
        ("d", json!("gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0")),
        ("k", json!("c2VjcmV0")),
    ] {
        let proof = client.proof_with("GET", "/orders", &token, |h, _| h["jwk"][name] = value);
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_refused(&server, &reply, "invalid_dpop_proof", "dpop_proof_key", &[]);
    }
    // A symmetric key, or something that is not a key at all.
    for jwk in [
        json!({"kty": "oct"}),
        json!("key"),
        json!({"kty": "EC", "crv": "P-256"}),
    ] {
        let proof = client.proof_with("GET", "/orders", &token, |h, _| h["jwk"] = jwk);
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_refused(&server, &reply, "invalid_dpop_proof", "dpop_proof_key", &[]);
    }
}

#[tokio::test]
async fn rfc9449_4_3_8_htm_must_be_the_requests_method() {
    let (_idp, server, client, token) = setup().await;
    for htm in ["POST", "get"] {
        let proof = client.proof(htm, "/orders", &token);
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_method",
            &[],
        );
    }
}

#[tokio::test]
async fn rfc9449_4_3_9_htu_must_be_the_requests_uri_after_normalization() {
    let (_idp, server, client, token) = setup().await;
    // RFC 3986 §6.2.2 and §6.2.3: case, the default port, query and fragment do not matter.
    let same = "HTTPS://API.Example.com:443/orders?page=2#top";
    let proof = client.proof_with("GET", "/orders", &token, |_, c| c["htu"] = json!(same));
    let reply = send(&server, Method::GET, "/orders?page=2", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    for htu in [
        format!("{ORIGIN}/orders/7"),
        "https://evil.example.com/orders".to_owned(),
        "http://api.example.com/orders".to_owned(),
        "https://api.example.com:8443/orders".to_owned(),
        "/orders".to_owned(),
    ] {
        let proof = client.proof_with("GET", "/orders", &token, |_, c| c["htu"] = json!(htu));
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_eq!(reply.status, 401, "{htu}");
        assert_eq!(
            server.last_refusal().unwrap().reason(),
            "dpop_proof_uri",
            "{htu}"
        );
    }
}

#[tokio::test]
async fn rfc9449_4_3_11_a_proof_outside_the_time_window_is_refused() {
    let (_idp, server, client, token) = setup().await;
    // 60 s of age and 5 s of skew are accepted by default.
    for iat in [now() - 120, now() + 60] {
        let proof = client.proof_with("GET", "/orders", &token, |_, c| c["iat"] = json!(iat));
        let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
        assert_refused(
            &server,
            &reply,
            "invalid_dpop_proof",
            "dpop_proof_time",
            &[],
        );
    }
    let proof = client.proof_with("GET", "/orders", &token, |_, c| {
        c["iat"] = json!(now() - 30)
    });
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[tokio::test]
async fn rfc9449_4_3_12_ath_and_the_key_binding_must_match_the_token() {
    let (_idp, server, client, token) = setup().await;
    // A proof made for another token bound to the same key.
    let mut c = claims();
    c["cnf"] = json!({ "jkt": thumbprint(&client.jwk) });
    c["sub"] = json!("mallory");
    let other = mint("es256", &c);
    let proof = client.proof("GET", "/orders", &other);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_refused(
        &server,
        &reply,
        "invalid_dpop_proof",
        "dpop_proof_ath",
        &[&token],
    );
    // A token bound to another key than the proof's: a stolen token with the thief's key.
    let mut c = claims();
    c["cnf"] = json!({"jkt": thumbprint(&jwk("es256"))});
    let stolen = mint("es256", &c);
    let proof = client.proof("GET", "/orders", &stolen);
    let reply = send(&server, Method::GET, "/orders", &stolen, &proof).await;
    assert_refused(
        &server,
        &reply,
        "invalid_token",
        "dpop_key_mismatch",
        &[&stolen],
    );
}

#[tokio::test]
async fn rfc9449_11_1_a_replayed_proof_is_refused() {
    let (_idp, server, client, token) = setup().await;
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        server.last_refusal().unwrap().reason(),
        "dpop_proof_replayed"
    );
    assert_eq!(server.hits(), 1);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn rfc9449_9_a_required_nonce_is_handed_out_and_then_checked() {
    let dpop = Dpop::new(ORIGIN).require_nonce(Duration::from_secs(300));
    let (_idp, server, client, token) = setup_with(dpop).await;
    // No nonce: 401 use_dpop_nonce, and the nonce to use.
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_refused(
        &server,
        &reply,
        "use_dpop_nonce",
        "dpop_nonce_required",
        &[&token],
    );
    let nonce = reply.headers["dpop-nonce"].to_str().unwrap().to_owned();
    // A made-up nonce: the same.
    let forged = client.proof_with("GET", "/orders", &token, |_, c| {
        c["nonce"] = json!("AAAAAGVTPQCqqqqqqqqqqqqqqqqqqqqq");
    });
    let reply = send(&server, Method::GET, "/orders", &token, &forged).await;
    assert_refused(
        &server,
        &reply,
        "use_dpop_nonce",
        "dpop_nonce_required",
        &[],
    );
    // With the nonce it was given: served (and the proof's iat matters no more).
    let proof = client.proof_with("GET", "/orders", &token, |_, c| {
        c["nonce"] = json!(nonce);
        c["iat"] = json!(now() - 3600);
    });
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // A nonce well within its lifetime: no new one.
    assert!(
        !reply.headers.contains_key("dpop-nonce"),
        "{:?}",
        reply.headers
    );
}

/// RFC 9449 §8.2 and §9: a proof whose nonce is past half its lifetime is served, and the
/// response carries a fresh nonce, so the client moves on before its nonce expires and never
/// pays a refused round trip for it; the fresh nonce is accepted in turn.
#[tokio::test]
async fn rfc9449_8_2_a_successful_response_carries_a_new_nonce_before_the_old_one_expires() {
    let dpop = Dpop::new(ORIGIN).require_nonce(Duration::from_secs(2));
    let (_idp, server, client, token) = setup_with(dpop).await;
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 401);
    let first = reply.headers["dpop-nonce"].to_str().unwrap().to_owned();
    // Nonces count whole seconds: past 1.1 s, this one is past half its 2 s lifetime.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let with =
        |nonce: &str| client.proof_with("GET", "/orders", &token, |_, c| c["nonce"] = json!(nonce));
    let reply = send(&server, Method::GET, "/orders", &token, &with(&first)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(server.hits(), 1);
    let next = reply.headers["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(next, first);
    // RFC 9449 §8.1: `NQCHAR`s only.
    assert!(
        next.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    );
    let reply = send(&server, Method::GET, "/orders", &token, &with(&next)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn rfc9449_7_1_challenges_offer_dpop_with_its_algorithms() {
    let (_idp, server, _client, _token) = setup().await;
    let reply = server.get("/orders", &[]).await;
    assert_eq!(reply.status, 401);
    let challenges: Vec<_> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        [
            r#"Bearer realm="api""#.to_owned(),
            r#"DPoP realm="api", algs="ES256 ES384 EdDSA PS256 PS384 PS512 RS256 RS384 RS512""#
                .to_owned()
        ]
    );
}

/// RFC 9449 §7.1: the authz layer's challenges (RFC 6750 §3.1 `insufficient_scope`, RFC 9470
/// §3 step-up) name the scheme the token came in: `DPoP` for a DPoP-bound token, `Bearer` for
/// an unbound one on the same server.
#[tokio::test]
async fn rfc9449_7_1_authorization_challenges_a_dpop_bound_token_in_the_dpop_scheme() {
    use palisade::audit::AuditLayer;
    use palisade::authz::{AuthzLayer, LivePolicy, Methods, PolicySpec, RuleSpec};
    use support::MemorySink;

    let idp = Idp::start(jwks(&["es256"])).await;
    let jwt = provider(&idp)
        .leeway(Duration::from_secs(5))
        .dpop(Dpop::new(ORIGIN))
        .build()
        .unwrap();
    let get = || Methods::Some(vec![Method::GET]);
    let policy = PolicySpec::builder()
        .rule("/orders", get(), [], ["orders:read"])
        .rule("/refunds", get(), [], ["refunds:write"])
        .route(RuleSpec::new("/payments", get()).acr_values(["urn:example:mfa"]))
        .build();
    let authz = AuthzLayer::new(LivePolicy::from_spec(&policy).unwrap());
    let sink = MemorySink::default();
    let server = TestServer::start(
        Palisade::builder()
            .authenticate(jwt)
            .authorize(authz)
            .audit(AuditLayer::builder(sink.clone()))
            .build()
            .unwrap(),
    )
    .await;
    let client = client();
    let bound = bound_token(&client);
    let unbound = mint("es256", &claims());
    let dpop = |path: &str| {
        let proof = client.proof("GET", path, &bound);
        let (server, bound, path) = (&server, &bound, path.to_owned());
        async move { send(server, Method::GET, &path, bound, &proof).await }
    };
    let reply = dpop("/orders").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(server.hits(), 1);

    let reply = dpop("/refunds").await;
    assert_eq!(reply.status, 403, "{:?}", reply.body);
    assert_eq!(reply.json()["code"], "missing_scope");
    assert_eq!(
        reply.headers["www-authenticate"],
        r#"DPoP error="insufficient_scope", scope="refunds:write""#
    );
    let reply = dpop("/payments").await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(r#"DPoP error="insufficient_user_authentication""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"acr_values="urn:example:mfa""#),
        "{challenge}"
    );
    assert_eq!(server.hits(), 1, "a refused request reached the handler");

    // An unbound token on the same server is challenged as the bearer token it is.
    let reply = server
        .get("/refunds", &[("authorization", &bearer(&unbound))])
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.headers["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="refunds:write""#
    );
    let reply = server
        .get("/payments", &[("authorization", &bearer(&unbound))])
        .await;
    assert_eq!(reply.status, 401);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(r#"Bearer error="insufficient_user_authentication""#),
        "{challenge}"
    );
    assert_eq!(server.hits(), 1, "a refused request reached the handler");
    // The audit records how each token was held: `dpop` for the three bound requests only.
    let events = sink.wait_for(5).await;
    let held: Vec<_> = events
        .iter()
        .map(|e| e.principal.as_ref().unwrap().confirmation.as_deref())
        .collect();
    assert_eq!(
        held,
        [Some("dpop"), Some("dpop"), Some("dpop"), None, None],
        "{events:?}"
    );
}

#[tokio::test]
async fn rfc9449_6_2_an_introspected_dpop_token_needs_its_proof() {
    let idp = Idp::start(jwks(&[])).await;
    let client = client();
    let token = "opaque-dpop-bound-token-0123456789";
    idp.add_token(
        token,
        json!({"active": true, "sub": "bob", "aud": AUD, "token_type": "DPoP",
               "cnf": {"jkt": thumbprint(&client.jwk)}}),
    );
    let introspection = IntrospectionAuthenticator::builder(idp.introspection_url(), CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .audience(AUD)
        .dpop(Dpop::new(ORIGIN))
        .build()
        .unwrap();
    let server = TestServer::start(
        Palisade::builder()
            .authenticate(introspection)
            .build()
            .unwrap(),
    )
    .await;
    let proof = client.proof("GET", "/orders", token);
    let reply = send(&server, Method::GET, "/orders", token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["subject"], "bob");
    // As a bearer token: refused, though the verdict is cached.
    let reply = server
        .get("/orders", &[("authorization", &bearer(token))])
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(server.last_refusal().unwrap().reason(), "token_bound");
    // Replayed: refused.
    let reply = send(&server, Method::GET, "/orders", token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        server.last_refusal().unwrap().reason(),
        "dpop_proof_replayed"
    );
    assert_eq!(idp.introspection_hits(), 1);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn rfc9449_11_1_a_proof_used_at_one_instance_is_refused_at_another() {
    use palisade::authn::dpop::RedisReplayStore;

    let Some(mut redis) = crate::redis_server::Redis::start("dpop replay across instances").await
    else {
        return;
    };
    let idp = Idp::start(jwks(&["es256"])).await;
    let instance = || {
        let store = RedisReplayStore::new(&redis.url()).unwrap();
        dpop_server(&idp, Dpop::new(ORIGIN).replay_store(store))
    };
    let (a, b) = (instance().await, instance().await);
    let client = client();
    let token = bound_token(&client);
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&a, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = send(&b, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(b.last_refusal().unwrap().reason(), "dpop_proof_replayed");
    // Redis down: a proof cannot be remembered, so it is not accepted (503, Retry-After).
    redis.kill();
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&b, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(b.hits(), 0);
}

/// The replay store over `rediss://` to a Redis that a private CA signed and that asks for a
/// client certificate (`tls-auth-clients yes`): with the CA and the certificate a proof used
/// at one instance is refused at the other; without the client certificate the server turns
/// the store away and the request fails closed (503, `Retry-After`, never the handler).
#[cfg(feature = "redis-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9449_11_1_replays_are_shared_through_a_redis_that_asks_for_a_client_certificate() {
    use palisade::authn::dpop::RedisReplayStore;

    let Some(redis) =
        crate::redis_server::Redis::start_tls_verifying_clients("dpop replay over mutual TLS")
            .await
    else {
        return;
    };
    let fixture = |name: &str| std::fs::read(crate::redis_server::Redis::fixture(name)).unwrap();
    let idp = Idp::start(jwks(&["es256"])).await;
    let store = |client_cert: bool| {
        let store = RedisReplayStore::new(&redis.url())
            .unwrap()
            .timeout(Duration::from_millis(500))
            .tls_ca(fixture("ca.crt"))
            .unwrap();
        if client_cert {
            store
                .tls_client_cert(fixture("node.crt"), fixture("node.key"))
                .unwrap()
        } else {
            store
        }
    };
    let instance =
        |client_cert| dpop_server(&idp, Dpop::new(ORIGIN).replay_store(store(client_cert)));
    let (a, b) = (instance(true).await, instance(true).await);
    let client = client();
    let token = bound_token(&client);
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&a, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = send(&b, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(b.last_refusal().unwrap().reason(), "dpop_proof_replayed");

    let without = instance(false).await;
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&without, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(without.hits(), 0);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9449_11_1_a_proof_used_at_one_instance_is_refused_at_another_on_a_cluster() {
    use palisade::authn::dpop::RedisReplayStore;

    let Some(cluster) = crate::redis_cluster::Cluster::start("dpop replay on a cluster").await
    else {
        return;
    };
    let idp = Idp::start(jwks(&["es256"])).await;
    let instance = |seeds: Vec<String>| {
        let store = RedisReplayStore::cluster(seeds).unwrap();
        dpop_server(&idp, Dpop::new(ORIGIN).replay_store(store))
    };
    // One instance knows every node, the other a single seed.
    let (a, b) = (
        instance(cluster.urls()).await,
        instance(vec![cluster.nodes[4].url()]).await,
    );
    let client = client();
    let token = bound_token(&client);
    // Enough proofs that their ids land on every shard: each is accepted once, then refused
    // at the other instance.
    for i in 0..12 {
        let proof = client.proof("GET", "/orders", &token);
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let reply = send(first, Method::GET, "/orders", &token, &proof).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let reply = send(second, Method::GET, "/orders", &token, &proof).await;
        assert_eq!(reply.status, 401);
        assert_eq!(
            second.last_refusal().unwrap().reason(),
            "dpop_proof_replayed"
        );
    }
    assert_eq!(a.hits() + b.hits(), 12);
    let shards_used = cluster
        .topology()
        .iter()
        .filter(|(_, port, primary)| {
            *primary && crate::redis_cluster::cli(*port, &["DBSIZE"]) != "0"
        })
        .count();
    assert!(shards_used >= 2, "the proofs' ids spread over the shards");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9449_11_1_a_proof_used_at_one_instance_is_refused_at_another_behind_sentinel() {
    use palisade::authn::dpop::RedisReplayStore;

    let Some(set) =
        crate::redis_cluster::Sentinels::start_as("dpop replay behind sentinel", Some("pw")).await
    else {
        return;
    };
    let idp = Idp::start(jwks(&["es256"])).await;
    let instance = || {
        let store =
            RedisReplayStore::sentinel(set.service, set.urls(), Some("redis://:pw@any/0")).unwrap();
        dpop_server(&idp, Dpop::new(ORIGIN).replay_store(store))
    };
    let (a, b) = (instance().await, instance().await);
    let client = client();
    let token = bound_token(&client);
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&a, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = send(&b, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 401);
    assert_eq!(b.last_refusal().unwrap().reason(), "dpop_proof_replayed");
}

#[tokio::test]
async fn rfc9700_2_2_1_only_sender_constrained_tokens_pass_when_required() {
    let idp = Idp::start(jwks(&["es256"])).await;
    let server = dpop_server(&idp, Dpop::new(ORIGIN).require_bound_tokens()).await;
    let client = client();
    let plain = mint("es256", &claims());
    let reply = server
        .get("/orders", &[("authorization", &bearer(&plain))])
        .await;
    assert_refused(
        &server,
        &reply,
        "invalid_token",
        "dpop_token_not_bound",
        &[&plain],
    );
    let token = bound_token(&client);
    let proof = client.proof("GET", "/orders", &token);
    let reply = send(&server, Method::GET, "/orders", &token, &proof).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}
