use std::sync::Arc;
use std::time::Duration;

use http::Request;

use super::*;
use crate::clock::{ManualClock, Timestamp};
use crate::error::{StoreError, StoreErrorKind};

fn parts(headers: &[(&str, &str)], uri: &str) -> Parts {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

struct Fixture {
    keys: ApiKeys,
    store: MemoryKeyStore,
    key: String,
    clock: ManualClock,
}

fn fixture(spec: KeySpec) -> Fixture {
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let issued = keys.generate(spec).unwrap();
    store.insert(issued.record);
    Fixture {
        keys,
        store,
        key: issued.plaintext.expose_secret().to_owned(),
        clock: ManualClock::new(Timestamp::from_unix_secs(1_000)),
    }
}

impl Fixture {
    fn auth(&self) -> ApiKeyAuthenticator<MemoryKeyStore, ManualClock> {
        self.keys
            .authenticator(self.store.clone())
            .with_clock(self.clock.clone())
    }
}

fn reason(a: Authentication) -> &'static str {
    match a {
        Authentication::Refused(r) => r.reason(),
        Authentication::Authenticated(p) => panic!("authenticated {p:?}"),
        Authentication::Absent => "absent",
    }
}

#[tokio::test]
async fn key_is_read_from_header_and_authorization_scheme() {
    let f = fixture(KeySpec::new("alice"));
    let auth = f.auth();
    for headers in [
        vec![("x-api-key", f.key.as_str())],
        vec![("authorization", &*format!("ApiKey {}", f.key))],
        vec![("authorization", &*format!("apikey {}", f.key))],
    ] {
        match auth.authenticate(&parts(&headers, "/")).await {
            Authentication::Authenticated(p) => assert_eq!(p.subject(), "alice"),
            other => panic!("{headers:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rfc9110_5_6_3_only_spaces_and_tabs_are_trimmed_from_a_key() {
    let f = fixture(KeySpec::new("alice"));
    let auth = f.auth();
    let header = |value: Vec<u8>| {
        let mut p = parts(&[], "/");
        p.headers
            .insert("x-api-key", http::HeaderValue::from_bytes(&value).unwrap());
        p
    };
    let padded = header(format!(" \t{}\t ", f.key).into_bytes());
    assert!(matches!(
        auth.authenticate(&padded).await,
        Authentication::Authenticated(_)
    ));
    // U+00A0 (no-break space) and U+3000 (ideographic space) are not optional whitespace.
    for space in ["\u{a0}", "\u{3000}"] {
        let spaced = header(format!("{}{space}", f.key).into_bytes());
        let outcome = auth.authenticate(&spaced).await;
        assert!(
            !matches!(outcome, Authentication::Authenticated(_)),
            "{space:?}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn other_authorization_schemes_are_left_to_other_authenticators() {
    let f = fixture(KeySpec::new("alice"));
    let p = parts(&[("authorization", "Bearer abc.def.ghi")], "/");
    assert_eq!(reason(f.auth().authenticate(&p).await), "absent");
    assert_eq!(
        reason(f.auth().authenticate(&parts(&[], "/")).await),
        "absent"
    );
}

#[tokio::test]
async fn query_parameter_is_read_only_when_allowed() {
    let f = fixture(KeySpec::new("alice"));
    let p = parts(&[], &format!("/x?a=1&api_key={}", f.key));
    assert_eq!(reason(f.auth().authenticate(&p).await), "absent");
    let allowed = f.auth().allow_query_param("api_key");
    assert!(matches!(
        allowed.authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
}

#[tokio::test]
async fn two_keys_in_one_request_are_refused() {
    // RFC 6750 §3.1 invalid_request: more than one method of sending a credential.
    let f = fixture(KeySpec::new("alice"));
    let auth = f.auth().allow_query_param("k");
    let both = parts(
        &[
            ("x-api-key", f.key.as_str()),
            ("authorization", &*format!("ApiKey {}", f.key)),
        ],
        "/",
    );
    assert_eq!(
        reason(auth.authenticate(&both).await),
        "multiple_credentials"
    );
    let twice = parts(
        &[("x-api-key", f.key.as_str()), ("x-api-key", f.key.as_str())],
        "/",
    );
    assert_eq!(
        reason(auth.authenticate(&twice).await),
        "multiple_credentials"
    );
    let header_and_query = parts(&[("x-api-key", f.key.as_str())], &format!("/?k={}", f.key));
    assert_eq!(
        reason(auth.authenticate(&header_and_query).await),
        "multiple_credentials"
    );
}

#[tokio::test]
async fn custom_header_replaces_the_default() {
    let f = fixture(KeySpec::new("alice"));
    let auth = f.auth().with_header(HeaderName::from_static("x-acme-key"));
    let p = parts(&[("x-acme-key", f.key.as_str())], "/");
    assert!(matches!(
        auth.authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
    let p = parts(&[("x-api-key", f.key.as_str())], "/");
    assert_eq!(reason(auth.authenticate(&p).await), "absent");
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let f = fixture(KeySpec::new("alice").expires_at(Timestamp::from_unix_secs(1_060)));
    let auth = f.auth();
    let p = parts(&[("x-api-key", f.key.as_str())], "/");
    assert!(matches!(
        auth.authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(reason(auth.authenticate(&p).await), "key_expired");
}

#[tokio::test]
async fn revoked_key_is_refused_and_named_only_with_the_right_secret() {
    let f = fixture(KeySpec::new("alice"));
    let (id, _) = f.keys.hash(&f.key).unwrap();
    f.store.revoke(&id, Timestamp::from_unix_secs(1));
    let auth = f.auth();
    let p = parts(&[("x-api-key", f.key.as_str())], "/");
    assert_eq!(reason(auth.authenticate(&p).await), "key_revoked");
    // Same id, forged secret with a valid checksum: the client must not learn "revoked".
    let forged = forge_secret(&f.keys, &f.key);
    let p = parts(&[("x-api-key", forged.as_str())], "/");
    assert_eq!(reason(auth.authenticate(&p).await), "wrong_secret");
}

/// The same key id with another secret and a recomputed (valid) checksum.
pub(crate) fn forge_secret(keys: &ApiKeys, key: &str) -> String {
    let (_, other) = keys.format().generate().unwrap();
    let prefix_len = keys.format().prefix().len() + 1;
    let id = &key[prefix_len..prefix_len + format::ID_LEN];
    let secret = &other.expose_secret()[prefix_len + format::ID_LEN..][..format::SECRET_LEN];
    let signed = format!("{}_{id}{secret}", keys.format().prefix());
    let mut crc = u64::from(crc32fast::hash(signed.as_bytes()));
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut digits = [0u8; format::CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = alphabet[(crc % 62) as usize];
        crc /= 62;
    }
    let forged = format!("{signed}{}", std::str::from_utf8(&digits).unwrap());
    assert!(keys.format().parse(&forged).is_ok());
    forged
}

#[tokio::test]
async fn keyed_hasher_keys_do_not_verify_without_the_secret() {
    let peppered = ApiKeys::new().with_hasher(KeyHasher::keyed(&[7; 32]).unwrap());
    let store = MemoryKeyStore::new();
    let issued = peppered.generate(KeySpec::new("alice")).unwrap();
    store.insert(issued.record);
    let p = parts(&[("x-api-key", issued.plaintext.expose_secret())], "/");
    assert!(matches!(
        peppered.authenticator(store.clone()).authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
    // The same table checked with plain SHA-256 (a stolen table, no secret): nothing verifies.
    assert_eq!(
        reason(ApiKeys::new().authenticator(store).authenticate(&p).await),
        "wrong_secret"
    );
}

struct FailingStore;

impl KeyStore for FailingStore {
    async fn get(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(StoreError::from_kind(StoreErrorKind::Unavailable))
    }
}

struct HangingStore;

impl KeyStore for HangingStore {
    async fn get(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn store_error_fails_closed() {
    let key = ApiKeys::new()
        .generate(KeySpec::new("a"))
        .unwrap()
        .plaintext;
    let p = parts(&[("x-api-key", key.expose_secret())], "/");
    let auth = ApiKeys::new().authenticator(FailingStore);
    assert_eq!(reason(auth.authenticate(&p).await), "key_store_error");
}

#[tokio::test(start_paused = true)]
async fn hanging_store_fails_closed_at_the_timeout() {
    let key = ApiKeys::new()
        .generate(KeySpec::new("a"))
        .unwrap()
        .plaintext;
    let p = parts(&[("x-api-key", key.expose_secret())], "/");
    let auth = ApiKeys::new()
        .authenticator(HangingStore)
        .with_timeout(Duration::from_millis(250));
    let start = tokio::time::Instant::now();
    assert_eq!(reason(auth.authenticate(&p).await), "key_store_timeout");
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test]
async fn malformed_and_bad_checksum_never_reach_the_store() {
    // FailingStore would answer 503 if it were asked.
    let auth = ApiKeys::new().authenticator(FailingStore);
    let key = ApiKeys::new()
        .generate(KeySpec::new("a"))
        .unwrap()
        .plaintext
        .expose_secret()
        .to_owned();
    let mut typo = key.clone().into_bytes();
    typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(
        reason(
            auth.authenticate(&parts(&[("x-api-key", &typo)], "/"))
                .await
        ),
        "bad_checksum"
    );
    assert_eq!(
        reason(
            auth.authenticate(&parts(&[("x-api-key", "hunter2")], "/"))
                .await
        ),
        "malformed_key"
    );
}

#[test]
fn realm_is_validated() {
    assert!(Realm::new("bad\"realm").is_err());
    let auth = ApiKeys::new()
        .authenticator(MemoryKeyStore::new())
        .with_realm(Realm::from_static("orders"));
    let mut out = Vec::new();
    auth.challenges(&mut out);
    assert_eq!(out, [HeaderValue::from_static(r#"ApiKey realm="orders""#)]);
}

#[test]
fn authenticator_debug_shows_no_secret_material() {
    let auth = ApiKeys::new()
        .with_hasher(KeyHasher::keyed(b"0123456789abcdef0123456789abcdef").unwrap())
        .authenticator(MemoryKeyStore::new());
    let debug = format!("{auth:?}");
    assert!(!debug.contains("0123456789abcdef"), "{debug}");
}

/// The answer given at once (memory store) is the answer the future gives, on every path; a
/// store that must wait answers `None` at once and leaves it to the future.
#[tokio::test]
async fn answers_at_once_match_the_asynchronous_answers() {
    let f = fixture(KeySpec::new("alice"));
    let expired = f
        .keys
        .generate(KeySpec::new("old").expires_at(Timestamp::from_unix_secs(10)))
        .unwrap();
    f.store.insert(expired.record);
    let ghost = f.keys.generate(KeySpec::new("ghost")).unwrap();
    let mut wrong = f.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let describe = |a: Authentication| match a {
        Authentication::Authenticated(p) => format!("ok {}", p.subject()),
        other => reason(other).to_owned(),
    };
    let auth = f.auth();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("x-api-key", &f.key)],
        vec![],
        vec![("x-api-key", ghost.plaintext.expose_secret())],
        vec![("x-api-key", expired.plaintext.expose_secret())],
        vec![("x-api-key", &wrong)],
        vec![("x-api-key", "pal_nonsense")],
    ];
    for headers in &cases {
        let p = parts(headers, "/");
        let now = auth
            .authenticate_now(&p)
            .expect("a memory store answers at once");
        assert_eq!(
            describe(now),
            describe(auth.authenticate(&p).await),
            "{headers:?}"
        );
    }

    let dynamic: Arc<dyn DynKeyStore> = Arc::new(f.store.clone());
    let waiting = f.keys.authenticator(dynamic);
    let p = parts(&[("x-api-key", &f.key)], "/");
    assert!(waiting.authenticate_now(&p).is_none());
    assert_eq!(describe(waiting.authenticate(&p).await), "ok alice");
    // Without a credential there is nothing to look up: answered at once by any store.
    assert!(matches!(
        waiting.authenticate_now(&parts(&[], "/")),
        Some(Authentication::Absent)
    ));
}

/// A store that must be awaited (a database), in front of which [`CachedKeyStore`] sits.
#[derive(Clone)]
struct Awaited(MemoryKeyStore);

impl KeyStore for Awaited {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(id).await
    }
}

#[tokio::test]
async fn through_a_cache_an_unknown_id_and_a_wrong_secret_take_the_same_path() {
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    // A known id whose stored hash is another key's: the presented secret is wrong.
    let known = keys.generate(KeySpec::new("alice")).unwrap();
    let other_hash = keys.hasher().hash("another key entirely");
    store.insert(KeySpec::new("alice").into_record(*known.record.id(), other_hash));
    let unknown = keys.generate(KeySpec::new("eve")).unwrap();
    let cache = CachedKeyStore::builder(Awaited(store)).build();
    let auth = keys.authenticator(cache);
    let request = |key: &SecretKey| parts(&[("x-api-key", key.expose_secret())], "/");
    let (wrong, absent) = (request(&known.plaintext), request(&unknown.plaintext));
    // First sight: neither is cached, both wait for the store.
    assert!(auth.authenticate_now(&wrong).is_none());
    assert!(auth.authenticate_now(&absent).is_none());
    assert_eq!(reason(auth.authenticate(&wrong).await), "wrong_secret");
    assert_eq!(reason(auth.authenticate(&absent).await), "unknown_key");
    // Then both are answered at once from the cache, the miss as well as the hit, and the
    // client sees one code for both (the audit keeps the precise reason).
    let (a, b) = (
        auth.authenticate_now(&wrong).expect("cached"),
        auth.authenticate_now(&absent).expect("cached, negatively"),
    );
    let public = |a: &Authentication| match a {
        Authentication::Refused(Rejection::Unauthenticated(f)) => f.reason().public_code(),
        other => panic!("{other:?}"),
    };
    assert_eq!((public(&a), public(&b)), ("invalid_key", "invalid_key"));
    assert_eq!((reason(a), reason(b)), ("wrong_secret", "unknown_key"));
}

/// Polls `done` until it holds, bounded by a tokio timeout.
async fn eventually(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("never happened");
}

const OLD_PEPPER: [u8; 32] = [1; 32];
const NEW_PEPPER: [u8; 32] = [2; 32];

/// Keys hashed under version 1 (the old pepper), and the configuration after the change.
fn migrating() -> (ApiKeys, ApiKeys) {
    let old = ApiKeys::new().with_hasher(KeyHasher::keyed(&OLD_PEPPER).unwrap());
    let new = ApiKeys::new()
        .with_hasher(KeyHasher::keyed(&NEW_PEPPER).unwrap())
        .with_hash_version(2)
        .unwrap()
        .with_previous_hasher(1, KeyHasher::keyed(&OLD_PEPPER).unwrap())
        .unwrap();
    (old, new)
}

/// Nothing configured is ignored: a previous hasher under the current version, a version
/// given twice, or a current version a previous hasher already has would leave one of two
/// hashers unused, so each is refused, whatever the order of the calls.
#[test]
fn a_hash_version_that_would_leave_a_hasher_unused_is_refused() {
    let sha = KeyHasher::sha256;
    let refused = |r: Result<ApiKeys, crate::ConfigError>, field: &str, needle: &str| {
        let e = r.unwrap_err().to_string();
        assert!(e.contains(field) && e.contains(needle), "{e}");
    };
    let current = ApiKeys::new().with_hash_version(2).unwrap();
    refused(
        current.clone().with_previous_hasher(2, sha()),
        "ApiKeys::with_previous_hasher",
        "current",
    );
    let one = current.with_previous_hasher(1, sha()).unwrap();
    refused(
        one.clone().with_previous_hasher(1, sha()),
        "ApiKeys::with_previous_hasher",
        "twice",
    );
    refused(
        one.clone().with_hash_version(1),
        "ApiKeys::with_hash_version",
        "previous hasher",
    );
    let both = one.with_previous_hasher(3, sha()).unwrap();
    assert_eq!(both.previous_versions().collect::<Vec<_>>(), [1, 3]);
    assert_eq!(both.hash_version(), 2);
}

#[tokio::test]
async fn a_key_under_a_previous_hasher_is_accepted_and_rehashed_off_the_request_path() {
    let (old, new) = migrating();
    let issued = old.generate(KeySpec::new("alice")).unwrap();
    assert_eq!(issued.record.hash_version(), DEFAULT_HASH_VERSION);
    let id = *issued.record.id();
    let store = MemoryKeyStore::new();
    store.insert(issued.record);
    let auth = new.authenticator(store.clone());
    let p = parts(&[("x-api-key", issued.plaintext.expose_secret())], "/");
    assert!(matches!(
        auth.authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
    eventually(|| store.get_now(&id).unwrap().unwrap().unwrap().hash_version() == 2).await;
    let (_, current) = new.hash(issued.plaintext.expose_secret()).unwrap();
    assert!(
        store
            .get_now(&id)
            .unwrap()
            .unwrap()
            .unwrap()
            .hash()
            .ct_eq(&current)
    );
    assert_eq!(auth.upkeep_stats().rehashed, 1);
    // The old pepper gone, the key still works.
    let only_new = ApiKeys::new()
        .with_hasher(KeyHasher::keyed(&NEW_PEPPER).unwrap())
        .with_hash_version(2)
        .unwrap();
    assert!(matches!(
        only_new.authenticator(store).authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
}

#[tokio::test]
async fn a_wrong_key_under_a_previous_version_is_a_wrong_secret_and_nothing_is_rehashed() {
    let (old, new) = migrating();
    let issued = old.generate(KeySpec::new("alice")).unwrap();
    let store = MemoryKeyStore::new();
    store.insert(issued.record);
    let auth = new.authenticator(store.clone());
    let wrong = forge_secret(&old, issued.plaintext.expose_secret());
    let r = auth
        .authenticate(&parts(&[("x-api-key", &wrong)], "/"))
        .await;
    let Authentication::Refused(r) = r else {
        panic!("accepted")
    };
    assert_eq!(r.reason(), "wrong_secret");
    assert_eq!(r.public_reason(), "invalid_key");
    assert_eq!(auth.upkeep_stats(), UpkeepStats::default());
}

#[tokio::test]
async fn a_record_of_an_unknown_hash_version_is_refused_as_an_invalid_key() {
    let (_, new) = migrating();
    let issued = new.generate(KeySpec::new("alice")).unwrap();
    let (hash, id) = (*issued.record.hash(), *issued.record.id());
    let store = MemoryKeyStore::new();
    store.insert(issued.record.rehashed(hash, 9));
    let p = parts(&[("x-api-key", issued.plaintext.expose_secret())], "/");
    let Authentication::Refused(r) = new.authenticator(store.clone()).authenticate(&p).await else {
        panic!("accepted")
    };
    assert_eq!(r.reason(), "unknown_hash_version");
    assert_eq!(r.public_reason(), "invalid_key");
    assert_eq!(
        store.get_now(&id).unwrap().unwrap().unwrap().hash_version(),
        9
    );
}

#[tokio::test]
async fn uses_are_coalesced_per_key_and_written_in_one_batch() {
    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let clock = ManualClock::new(Timestamp::from_unix_secs(1_000));
    let a = keys.generate(KeySpec::new("a")).unwrap();
    let b = keys.generate(KeySpec::new("b")).unwrap();
    store.insert(a.record.clone());
    store.insert(b.record.clone());
    let auth = keys
        .authenticator(store.clone())
        .with_clock(clock.clone())
        .with_last_used_batch(2)
        .with_last_used_interval(Duration::from_secs(3600));
    for i in 0..5 {
        clock.set(Timestamp::from_unix_secs(1_000 + i));
        let p = parts(&[("x-api-key", a.plaintext.expose_secret())], "/");
        assert!(matches!(
            auth.authenticate(&p).await,
            Authentication::Authenticated(_)
        ));
    }
    assert_eq!(
        auth.upkeep_stats().last_used_batches,
        0,
        "one key: no batch yet"
    );
    let p = parts(&[("x-api-key", b.plaintext.expose_secret())], "/");
    assert!(matches!(
        auth.authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
    eventually(|| auth.upkeep_stats().last_used_batches == 1).await;
    let last = |id: &KeyId| store.get_now(id).unwrap().unwrap().unwrap().last_used_at();
    assert_eq!(last(a.record.id()), Some(Timestamp::from_unix_secs(1_004)));
    assert_eq!(last(b.record.id()), Some(Timestamp::from_unix_secs(1_004)));
    assert_eq!(auth.upkeep_stats().last_used_written, 2);
}

/// A store whose writes never finish.
struct Hanging(MemoryKeyStore);

impl KeyStore for Hanging {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(id).await
    }

    async fn update_hash(&self, _: Rehash) -> Result<(), StoreError> {
        std::future::pending().await
    }

    async fn record_last_used(&self, _: &[LastUsed]) -> Result<(), StoreError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_hanging_store_fills_the_bounded_queue_and_map_and_requests_go_on() {
    let (old, new) = migrating();
    let store = MemoryKeyStore::new();
    let issued: Vec<_> = (0..4)
        .map(|i| old.generate(KeySpec::new(format!("u{i}"))).unwrap())
        .collect();
    for k in &issued {
        store.insert(k.record.clone());
    }
    let auth = new
        .authenticator(Hanging(store))
        .with_rehash_queue(1)
        .with_last_used_batch(1)
        .with_write_timeout(Duration::from_secs(3600));
    for round in 0..3 {
        for k in &issued {
            let p = parts(&[("x-api-key", k.plaintext.expose_secret())], "/");
            assert!(
                matches!(
                    auth.authenticate(&p).await,
                    Authentication::Authenticated(_)
                ),
                "round {round}"
            );
            tokio::task::yield_now().await;
        }
    }
    let stats = auth.upkeep_stats();
    assert!(stats.rehash_dropped >= 1, "{stats:?}");
    assert!(stats.last_used_dropped >= 1, "{stats:?}");
    assert_eq!(stats.rehashed + stats.last_used_batches, 0, "{stats:?}");
}

#[tokio::test]
async fn a_store_without_update_hash_is_asked_once_and_the_key_keeps_working() {
    let (old, new) = migrating();
    let issued = old.generate(KeySpec::new("alice")).unwrap();
    let store = MemoryKeyStore::new();
    store.insert(issued.record);
    /// A host's store of before `update_hash`: only `get`.
    struct Legacy(MemoryKeyStore);
    impl KeyStore for Legacy {
        async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.0.get(id).await
        }
    }
    let auth = new.authenticator(Legacy(store));
    let p = parts(&[("x-api-key", issued.plaintext.expose_secret())], "/");
    assert!(matches!(
        auth.authenticate(&p).await,
        Authentication::Authenticated(_)
    ));
    eventually(|| auth.upkeep_stats().rehash_failed == 1).await;
    for _ in 0..3 {
        assert!(matches!(
            auth.authenticate(&p).await,
            Authentication::Authenticated(_)
        ));
    }
    tokio::task::yield_now().await;
    assert_eq!(auth.upkeep_stats().rehash_failed, 1, "not asked again");
}

#[tokio::test]
async fn a_store_without_record_last_used_is_asked_once_then_uses_are_not_collected() {
    let keys = ApiKeys::new();
    let a = keys.generate(KeySpec::new("alice")).unwrap();
    let b = keys.generate(KeySpec::new("bob")).unwrap();
    let store = MemoryKeyStore::new();
    store.insert(a.record);
    store.insert(b.record);
    /// A host's store of before `record_last_used`: only `get`.
    struct Legacy(MemoryKeyStore);
    impl KeyStore for Legacy {
        async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.0.get(id).await
        }
    }
    // A batch of one key: the first use is written at once.
    let auth = keys
        .authenticator(Legacy(store))
        .with_last_used_batch(1)
        .with_last_used_interval(Duration::from_secs(3600));
    let with = |key: &str| parts(&[("x-api-key", key)], "/");
    let first = with(a.plaintext.expose_secret());
    assert!(matches!(
        auth.authenticate(&first).await,
        Authentication::Authenticated(_)
    ));
    // The store's answer to the first batch stops the collection.
    eventually(|| auth.upkeep.state_says_uses_unsupported()).await;
    let second = with(b.plaintext.expose_secret());
    for _ in 0..3 {
        assert!(matches!(
            auth.authenticate(&second).await,
            Authentication::Authenticated(_)
        ));
    }
    let stats = auth.upkeep_stats();
    assert_eq!(stats.last_used_failed, 0, "unsupported is not a failure");
    assert_eq!(stats.last_used_written, 0);
    assert_eq!(
        auth.upkeep.collected(),
        0,
        "nothing held for a store that cannot take it"
    );
}
