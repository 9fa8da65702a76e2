//! The credential headers: `x-api-key` and `Authorization` (ApiKey and Bearer schemes), through
//! the API-key and JWT authenticators chained as a host would chain them.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade::authn::api_key::{ApiKeyAuthenticator, ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authn::jwt::{Algorithm, Issuer, JwtAuthenticator, Key};
use palisade::authn::{Authenticator, Chain};

type Auth = Chain<ApiKeyAuthenticator<MemoryKeyStore>, JwtAuthenticator>;

fn auth() -> &'static (Auth, String) {
    static AUTH: OnceLock<(Auth, String)> = OnceLock::new();
    AUTH.get_or_init(|| {
        let keys = ApiKeys::new();
        let store = MemoryKeyStore::new();
        let issued = keys.generate(KeySpec::new("fuzz")).unwrap();
        store.insert(issued.record);
        let jwt = JwtAuthenticator::builder()
            .issuer(
                Issuer::new("https://idp.test")
                    .key(Key::hmac(&[7; 32], Algorithm::HS256).unwrap())
                    .audience("api"),
            )
            .build()
            .unwrap();
        (
            Chain::new(keys.authenticator(store), jwt),
            issued.plaintext.expose_secret().to_owned(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (auth, _key) = auth();
    let (first, second) = common::split(data);
    let parts = common::parts(&[("x-api-key", first), ("authorization", second)]);
    let _ = auth.authenticate_now(&parts);
    let parts = common::parts(&[("authorization", first), ("authorization", second)]);
    let _ = auth.authenticate_now(&parts);
    let _ = common::runtime().block_on(auth.authenticate(&parts));
});
