//! The verified-token cache of `JwtAuthenticator` is bounded by its capacity, and the heap an
//! entry takes is measured. Its own test binary: it installs a counting global allocator
//! (dhat, testing mode). Run with `--nocapture` to see the figures `docs/PERFORMANCE.md` quotes.

use http::request::Parts;
use jsonwebtoken::{EncodingKey, Header};
use palisade::authn::jwt::{Algorithm, Issuer, JwtAuthenticator, Key};
use palisade::authn::{Authentication, Authenticator};
use serde_json::json;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CAPACITY: usize = 2_000;
const ISSUER: &str = "https://idp.palisade.test/realms/acme";
const SECRET: &[u8] = b"a test secret of at least thirty-two bytes";

fn parts(token: &str) -> Parts {
    http::Request::get("/v1/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn main() {
    // Signed before the profiler starts: only the cache's own heap is measured.
    let tokens: Vec<String> = (0..5 * CAPACITY)
        .map(|i| {
            let claims = json!({
                "iss": ISSUER,
                "aud": "orders-api",
                "sub": format!("user-{i:06}"),
                "exp": 4_102_444_800u64,
                "iat": 1_767_225_600u64,
                "scope": "orders:read orders:write",
                "roles": ["customer", "reviewer", "support"],
            });
            // Named explicitly: the `_peer-aws-lc` bench feature builds both backends.
            let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
            jsonwebtoken::encode(
                &Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET).unwrap(),
            )
            .unwrap()
        })
        .collect();
    let requests: Vec<Parts> = tokens.iter().map(|t| parts(t)).collect();

    let jwt = JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISSUER)
                .key(Key::hmac(SECRET, Algorithm::HS256).unwrap())
                .audience("orders-api"),
        )
        .cache_capacity(CAPACITY)
        .build()
        .unwrap();
    let accept = |p: &Parts| {
        assert!(matches!(
            jwt.authenticate_now(p),
            Some(Authentication::Authenticated(_))
        ));
    };

    let _profiler = dhat::Profiler::builder().testing().build();
    let empty = dhat::HeapStats::get().curr_bytes;
    for p in &requests[..CAPACITY] {
        accept(p);
    }
    let full = dhat::HeapStats::get().curr_bytes;
    let per_token = (full - empty) / CAPACITY;

    // Four times as many distinct tokens again: the cache stays at its bound.
    let mut peak_len = 0;
    for p in &requests[CAPACITY..] {
        accept(p);
        peak_len = peak_len.max(jwt.cached_tokens());
    }
    let after = dhat::HeapStats::get().curr_bytes;
    println!(
        "token cache: {per_token} bytes per cached token (subject, 2 scopes, 3 roles); \
         {full} bytes at {CAPACITY} tokens, {after} after {} more; at most {peak_len} held",
        4 * CAPACITY
    );
    assert!(
        peak_len <= CAPACITY,
        "{peak_len} tokens held, bound {CAPACITY}"
    );
    assert!(
        per_token > 0 && per_token < 2_048,
        "{per_token} bytes per token"
    );
    // Bounded: more tokens than the capacity do not grow the heap past what a full cache took
    // (plus the hash tables' slack).
    assert!(
        after - empty <= 2 * (full - empty),
        "heap grew from {} to {} bytes",
        full - empty,
        after - empty
    );

    // A repeated token allocates nothing: its principal is shared, not rebuilt.
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..1_000 {
        accept(&requests[requests.len() - 1]);
    }
    let hits = dhat::HeapStats::get().total_blocks - before;
    println!("token cache: {hits} allocations for 1,000 hits");
    assert_eq!(hits, 0, "allocations for 1,000 cache hits");
}
