//! JWT header and claims handling: arbitrary tokens, and tokens with a fuzzed header or claims
//! around a well-formed structure, against static ES256 and HS256 keys.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade::authn::Authenticator;
use palisade::authn::jwt::{Algorithm, Issuer, JwtAuthenticator, Key};

const ES256_PUB: &str = include_str!("../../tests/fixtures/jwt/es256.pub.pem");

fn jwt() -> &'static JwtAuthenticator {
    static JWT: OnceLock<JwtAuthenticator> = OnceLock::new();
    JWT.get_or_init(|| {
        JwtAuthenticator::builder()
            .issuer(
                Issuer::new("https://idp.test")
                    .key(Key::from_pem(ES256_PUB).unwrap().with_kid("k"))
                    .key(Key::hmac(&[7; 32], Algorithm::HS256).unwrap().with_kid("h"))
                    .audience("api"),
            )
            .cache_capacity(0)
            .build()
            .unwrap()
    })
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let jwt = jwt();
    // As sent.
    let parts = common::parts(&[("authorization", &[b"Bearer ", data].concat())]);
    let _ = jwt.authenticate_now(&parts);
    // As a header and claims segment, base64url-encoded, with a signature of garbage.
    let (header, claims) = common::split(data);
    let token = format!("{}.{}.{}", b64(header), b64(claims), b64(b"sig"));
    let parts = common::parts(&[("authorization", format!("Bearer {token}").as_bytes())]);
    assert!(
        !matches!(
            jwt.authenticate_now(&parts),
            Some(palisade::authn::Authentication::Authenticated(_))
        ),
        "a token with a garbage signature was accepted"
    );
});
