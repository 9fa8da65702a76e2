//! DPoP (RFC 9449) for the benches: an ES256 token bound to the client key `es256-next`,
//! and fresh proofs by that key, one per request (`benches/jwt.rs`, `benches/instructions.rs`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use palisade::authn::dpop::Dpop;
use palisade::authn::jwt::{Issuer, JwtAuthenticator, Key};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ISS: &str = "https://idp.palisade.test/realms/acme";
const AUD: &str = "orders-api";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The claims of `benches/jwt.rs`'s token: Keycloak-like, ~750 bytes once signed.
pub(crate) fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "f3c2a1e0-7d4b-4c1a-9e8f-0a1b2c3d4e5f",
        "exp": 4_102_444_800u64, "iat": 1_767_225_600u64, "jti": "8c1e4f52-2b7d-4d8e-a1c3-5f6e7d8c9b0a",
        "typ": "Bearer", "azp": "orders-web", "scope": "openid profile orders:read orders:write",
        "realm_access": {"roles": ["admin", "offline_access", "uma_authorization"]},
        "email": "alice@example.com", "preferred_username": "alice",
    })
}

pub(crate) const ORIGIN: &str = "https://api.example.com";

pub(crate) struct Client {
    key: EncodingKey,
    jwk: Value,
}

pub(crate) fn client() -> Client {
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let k = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "es256-next")
        .unwrap();
    Client {
        key: EncodingKey::from_ec_der(&fixture("es256-next.key.der")),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": k["x"], "y": k["y"]}),
    }
}

impl Client {
    pub(crate) fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            self.jwk["x"], self.jwk["y"]
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
    }

    /// A fresh proof (a new `jti` each time) for `GET /v1/orders/42` with `token`.
    pub(crate) fn proof(&self, token: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let now = {
            use palisade::clock::{Clock, SystemClock};
            SystemClock.now().as_unix_secs()
        };
        let claims = json!({
            "jti": format!("bench-{}", N.fetch_add(1, Ordering::Relaxed)),
            "htm": "GET", "htu": format!("{ORIGIN}/v1/orders/42"), "iat": now,
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token)),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, jsonwebtoken::Algorithm::ES256)
                .unwrap();
        format!("{input}.{sig}")
    }
}

/// The access token, bound to `client`'s key.
pub(crate) fn token(client: &Client) -> String {
    let mut c = claims();
    c["cnf"] = json!({ "jkt": client.thumbprint() });
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k".into());
    jsonwebtoken::encode(&h, &c, &EncodingKey::from_ec_der(&fixture("es256.key.der"))).unwrap()
}

pub(crate) fn authenticator() -> JwtAuthenticator {
    let pem = String::from_utf8(fixture("es256.pub.pem")).unwrap();
    JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .key(Key::from_pem(&pem).unwrap().with_kid("k"))
                .audience(AUD),
        )
        .dpop(Dpop::new(ORIGIN).replay_capacity(10_000_000))
        .build()
        .unwrap()
}

pub(crate) fn parts(token: &str, proof: &str) -> http::request::Parts {
    http::Request::get("/v1/orders/42")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// An ES256 bearer token with the same claims but its own `jti` (`n`), unbound: distinct
/// signatures, as the proofs have (ECDSA's cost varies a little with the signature).
pub(crate) fn plain_token(n: u64) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k".into());
    let mut c = claims();
    c["jti"] = json!(format!("8c1e4f52-2b7d-4d8e-a1c3-{n:012}"));
    let key = EncodingKey::from_ec_der(&fixture("es256.key.der"));
    jsonwebtoken::encode(&h, &c, &key).unwrap()
}

/// The issuer's key, with the verified-token cache off: every token is checked in full.
pub(crate) fn uncached_authenticator() -> JwtAuthenticator {
    let pem = String::from_utf8(fixture("es256.pub.pem")).unwrap();
    JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .key(Key::from_pem(&pem).unwrap().with_kid("k"))
                .audience(AUD),
        )
        .cache_capacity(0)
        .build()
        .unwrap()
}

pub(crate) fn bearer_parts(token: &str) -> http::request::Parts {
    http::Request::get("/v1/orders/42")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}
