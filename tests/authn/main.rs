//! API-key authentication over real HTTP on loopback: every refusal, the happy path, rotation,
//! failing backends, and client addresses.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use palisade::Palisade;
use palisade::authn::api_key::{
    ApiKeys, DynKeyStore, KeyFormat, KeyId, KeyRecord, KeySpec, KeyStore, MemoryKeyStore,
};
use palisade::authn::{Chain, DynAuthenticator};
use palisade::clock::{ManualClock, Timestamp};
use palisade::error::{StoreError, StoreErrorKind};
use palisade::rejection::AuthnReason;
use support::{Reply, TestServer};

const NOW: u64 = 1_800_000_000;

struct Keys {
    keys: ApiKeys,
    store: MemoryKeyStore,
    clock: ManualClock,
}

impl Keys {
    fn new() -> Self {
        Self {
            keys: ApiKeys::new(),
            store: MemoryKeyStore::new(),
            clock: ManualClock::new(Timestamp::from_unix_secs(NOW)),
        }
    }

    /// Issues and stores a key; returns its plaintext.
    fn issue(&self, spec: KeySpec) -> String {
        let issued = self.keys.generate(spec).unwrap();
        self.store.insert(issued.record);
        issued.plaintext.expose_secret().to_owned()
    }

    /// A well-formed key (valid checksum) whose id is known to the store with another secret.
    fn known_id_wrong_secret(&self, spec: KeySpec) -> String {
        let presented = self.keys.generate(KeySpec::new("nobody")).unwrap();
        let other = self.keys.generate(KeySpec::new("nobody")).unwrap();
        let id = *presented.record.id();
        self.store
            .insert(spec.into_record(id, *other.record.hash()));
        presented.plaintext.expose_secret().to_owned()
    }

    /// A well-formed key (valid checksum) whose id the store does not know.
    fn unknown(&self) -> String {
        let k = self.keys.generate(KeySpec::new("ghost")).unwrap();
        k.plaintext.expose_secret().to_owned()
    }

    async fn serve(&self) -> TestServer {
        let guard = Palisade::builder()
            .authenticate(
                self.keys
                    .authenticator(self.store.clone())
                    .with_clock(self.clock.clone()),
            )
            .build()
            .unwrap();
        TestServer::start(guard).await
    }
}

fn id_of(keys: &ApiKeys, key: &str) -> KeyId {
    keys.hash(key).unwrap().0
}

/// Asserts a refusal: status, problem+json with `code`, the handler not run, no key echoed.
#[track_caller]
fn assert_refused(
    server: &TestServer,
    hits_before: usize,
    reply: &Reply,
    status: u16,
    code: &str,
    key: &str,
) {
    assert_eq!(reply.status.as_u16(), status, "{reply:?}");
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let body = reply.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(server.hits(), hits_before, "the handler was reached");
    if key.len() >= 40 {
        // Neither the key nor its secret part appears anywhere the client can see.
        let text = reply.visible_text();
        assert!(!text.contains(key), "key echoed: {text}");
        assert!(!text.contains(&key[20..40]), "secret echoed: {text}");
    }
}

#[tokio::test]
async fn rfc6750_3_no_key_is_401_with_challenge_and_problem_details() {
    let k = Keys::new();
    let server = k.serve().await;
    let reply = server.get("/v1/orders", &[]).await;
    assert_refused(&server, 0, &reply, 401, "missing_credentials", "");
    // RFC 6750 §3.1: no error code when the request had no credential at all.
    assert_eq!(reply.headers["www-authenticate"], r#"ApiKey realm="api""#);
    assert_eq!(reply.headers["cache-control"], "no-store");
    // RFC 9457 §3.1 members.
    let body = reply.json();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Unauthorized");
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn malformed_key_is_401_malformed_key() {
    let k = Keys::new();
    let server = k.serve().await;
    for bad in ["hunter2", "pal_", "Bearer", "pal_short", &"a".repeat(4096)] {
        let reply = server.get("/", &[("x-api-key", bad)]).await;
        assert_refused(&server, 0, &reply, 401, "malformed_key", bad);
        assert_eq!(
            reply.headers["www-authenticate"],
            r#"ApiKey realm="api", error="malformed_key""#
        );
    }
}

#[tokio::test]
async fn bad_checksum_is_401_without_store_lookup() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    let server = k.serve().await;
    // One character of the secret changed: a typo.
    let mut typo = key.clone().into_bytes();
    typo[40] = if typo[40] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let reply = server.get("/", &[("x-api-key", &typo)]).await;
    assert_refused(&server, 0, &reply, 401, "bad_checksum", &typo);
}

#[tokio::test]
async fn unknown_key_is_401_invalid_key() {
    let k = Keys::new();
    let server = k.serve().await;
    let key = k.unknown();
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_refused(&server, 0, &reply, 401, "invalid_key", &key);
    assert_eq!(server.last_refusal().unwrap().reason(), "unknown_key");
}

#[tokio::test]
async fn wrong_secret_for_known_id_is_401_invalid_key() {
    let k = Keys::new();
    let key = k.known_id_wrong_secret(KeySpec::new("alice"));
    let server = k.serve().await;
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_refused(&server, 0, &reply, 401, "invalid_key", &key);
    // The audit side keeps the precise reason.
    assert_eq!(server.last_refusal().unwrap().reason(), "wrong_secret");
}

#[tokio::test]
async fn unknown_id_and_wrong_secret_look_identical_to_the_client() {
    // OWASP API2 (broken authentication): key ids must not be enumerable.
    let k = Keys::new();
    let wrong = k.known_id_wrong_secret(KeySpec::new("alice"));
    let unknown = k.unknown();
    let server = k.serve().await;
    let a = server.get("/", &[("x-api-key", &unknown)]).await;
    let b = server.get("/", &[("x-api-key", &wrong)]).await;
    assert_eq!(a.status, b.status);
    assert_eq!(a.body, b.body);
    let strip = |r: &Reply| {
        let mut h = r.headers.clone();
        h.remove("date");
        h
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn expired_key_is_401_key_expired() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice").expires_at(Timestamp::from_unix_secs(NOW + 60)));
    let server = k.serve().await;
    assert_eq!(server.get("/", &[("x-api-key", &key)]).await.status, 200);
    k.clock.advance(Duration::from_secs(60));
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_refused(&server, 1, &reply, 401, "key_expired", &key);
}

#[tokio::test]
async fn revoked_key_is_401_key_revoked() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    let server = k.serve().await;
    assert!(
        k.store
            .revoke(&id_of(&k.keys, &key), Timestamp::from_unix_secs(NOW))
    );
    let reply = server.get("/", &[("x-api-key", &key)]).await;
    assert_refused(&server, 0, &reply, 401, "key_revoked", &key);
}

#[tokio::test]
async fn expired_or_revoked_is_told_only_to_whoever_proved_the_secret() {
    let k = Keys::new();
    let expired = k.known_id_wrong_secret(
        KeySpec::new("alice").expires_at(Timestamp::from_unix_secs(NOW - 1)),
    );
    let revoked = k.known_id_wrong_secret(KeySpec::new("bob"));
    k.store
        .revoke(&id_of(&k.keys, &revoked), Timestamp::from_unix_secs(NOW));
    let server = k.serve().await;
    for key in [&expired, &revoked] {
        let reply = server.get("/", &[("x-api-key", key)]).await;
        assert_refused(&server, 0, &reply, 401, "invalid_key", key);
        assert_eq!(server.last_refusal().unwrap().reason(), "wrong_secret");
    }
}

#[tokio::test]
async fn good_key_is_200_and_the_handler_sees_the_principal() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice").role("admin").tenant("acme"));
    let server = k.serve().await;
    for header in [
        ("x-api-key", key.clone()),
        ("authorization", format!("ApiKey {key}")),
    ] {
        let reply = server.get("/v1/orders/7", &[(header.0, &header.1)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let body = reply.json();
        assert_eq!(body["subject"], "alice");
        assert_eq!(body["roles"][0], "admin");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["key_id"], id_of(&k.keys, &key).to_string());
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn two_live_keys_for_one_subject_both_work_and_revoking_one_keeps_the_other() {
    let k = Keys::new();
    let old = k.issue(KeySpec::new("alice").name("old"));
    let new = k.issue(KeySpec::new("alice").name("new"));
    assert_eq!(k.store.keys_of("alice").len(), 2);
    let server = k.serve().await;
    assert_eq!(server.get("/", &[("x-api-key", &old)]).await.status, 200);
    assert_eq!(server.get("/", &[("x-api-key", &new)]).await.status, 200);
    k.store
        .revoke(&id_of(&k.keys, &old), Timestamp::from_unix_secs(NOW));
    let reply = server.get("/", &[("x-api-key", &old)]).await;
    assert_refused(&server, 2, &reply, 401, "key_revoked", &old);
    let reply = server.get("/", &[("x-api-key", &new)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["subject"], "alice");
}

#[tokio::test]
async fn rfc6750_3_1_two_credentials_are_an_invalid_request() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    let server = k.serve().await;
    let auth = format!("ApiKey {key}");
    let reply = server
        .get("/", &[("x-api-key", &key), ("authorization", &auth)])
        .await;
    assert_refused(&server, 0, &reply, 400, "multiple_credentials", &key);
    let reply = server
        .get("/", &[("x-api-key", &key), ("x-api-key", &key)])
        .await;
    assert_refused(&server, 0, &reply, 400, "multiple_credentials", &key);
}

#[tokio::test]
async fn key_in_query_string_is_ignored_unless_allowed() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    let server = k.serve().await;
    let reply = server.get(&format!("/?api_key={key}"), &[]).await;
    assert_refused(&server, 0, &reply, 401, "missing_credentials", &key);
}

struct FailingStore;

impl KeyStore for FailingStore {
    async fn get(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Err(StoreError::new(
            StoreErrorKind::Unavailable,
            "connection refused (db.internal:5432)",
        ))
    }
}

struct HangingStore;

impl KeyStore for HangingStore {
    async fn get(&self, _: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn store_error_is_503_and_says_nothing_of_the_backend() {
    let keys = ApiKeys::new();
    let key = keys.generate(KeySpec::new("a")).unwrap().plaintext;
    let key = key.expose_secret();
    let guard = Palisade::builder()
        .authenticate(keys.authenticator(FailingStore))
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;
    let reply = server.get("/", &[("x-api-key", key)]).await;
    assert_refused(&server, 0, &reply, 503, "temporarily_unavailable", key);
    assert!(!reply.visible_text().contains("db.internal"));
    assert!(reply.headers.get("www-authenticate").is_none());
    assert_eq!(server.last_refusal().unwrap().reason(), "key_store_error");
}

#[tokio::test]
async fn hanging_store_is_503_within_the_timeout() {
    let keys = ApiKeys::new();
    let key = keys.generate(KeySpec::new("a")).unwrap().plaintext;
    let key = key.expose_secret();
    let guard = Palisade::builder()
        .authenticate(
            keys.authenticator(HangingStore)
                .with_timeout(Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;
    let start = tokio::time::Instant::now();
    let reply = server.get("/", &[("x-api-key", key)]).await;
    let took = start.elapsed();
    assert_refused(&server, 0, &reply, 503, "temporarily_unavailable", key);
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(server.last_refusal().unwrap().reason(), "key_store_timeout");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let k = Keys::new();
    let key = k.issue(KeySpec::new("alice"));
    // The test client connects from 127.0.0.1. Untrusted: the header is ignored. Control: when
    // loopback is a trusted proxy, the same header is believed.
    for (trusted, expected) in [("10.0.0.0/8", "127.0.0.1"), ("127.0.0.0/8", "203.0.113.77")] {
        let guard = Palisade::builder()
            .trust_proxy(trusted.parse().unwrap())
            .authenticate(k.keys.authenticator(k.store.clone()))
            .build()
            .unwrap();
        let server = TestServer::start(guard).await;
        let headers = [
            ("x-api-key", key.as_str()),
            ("x-forwarded-for", "203.0.113.77"),
        ];
        let reply = server.get("/", &headers).await;
        assert_eq!(reply.json()["client_ip"], expected, "trusting {trusted}");
    }
}

#[tokio::test]
async fn a_chain_tries_the_next_authenticator_only_when_no_credential_was_found() {
    // Two key populations: partner keys (`ptn_` in `x-partner-key`) and ordinary keys.
    let k = Keys::new();
    let partner_keys = ApiKeys::new().with_format(KeyFormat::new("ptn").unwrap());
    let partner_store = MemoryKeyStore::new();
    let issued = partner_keys.generate(KeySpec::new("partner")).unwrap();
    partner_store.insert(issued.record);
    let partner_key = issued.plaintext.expose_secret().to_owned();
    let key = k.issue(KeySpec::new("alice"));

    let partner = partner_keys
        .authenticator(partner_store)
        .with_header(http::HeaderName::from_static("x-partner-key"))
        .without_authorization_scheme();
    // Behind `Arc<dyn DynKeyStore>` and `Arc<dyn DynAuthenticator>`: chosen at run time.
    let dyn_store: Arc<dyn DynKeyStore> = Arc::new(k.store.clone());
    let ordinary: Arc<dyn DynAuthenticator> = Arc::new(k.keys.authenticator(dyn_store));
    let guard = Palisade::builder()
        .authenticate(Chain::new(partner, ordinary))
        .build()
        .unwrap();
    let server = TestServer::start(guard).await;

    let r = server.get("/", &[("x-partner-key", &partner_key)]).await;
    assert_eq!(r.json()["subject"], "partner");
    let r = server.get("/", &[("x-api-key", &key)]).await;
    assert_eq!(r.json()["subject"], "alice");
    // A bad partner key is refused by the partner authenticator, not passed on to the next
    // one, even though a good ordinary key is also present.
    let r = server
        .get("/", &[("x-partner-key", "ptn_bad"), ("x-api-key", &key)])
        .await;
    assert_refused(&server, 2, &r, 401, "malformed_key", "");
    // With no credential, both challenges are offered.
    let r = server.get("/", &[]).await;
    assert_eq!(r.headers.get_all("www-authenticate").iter().count(), 2);
}

#[test]
fn unknown_and_wrong_secret_share_one_public_code() {
    assert_eq!(AuthnReason::UnknownKey.public_code(), "invalid_key");
    assert_eq!(AuthnReason::WrongSecret.public_code(), "invalid_key");
}

#[tokio::test]
async fn logs_never_contain_a_key_or_its_hash_but_name_the_cause() {
    // A current-thread runtime: the server task runs on this thread, under this subscriber.
    let captured = support::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("palisade=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let k = Keys::new();
    let good = k.issue(KeySpec::new("alice"));
    let wrong = k.known_id_wrong_secret(KeySpec::new("bob"));
    let server = k.serve().await;
    let mut typo = good.clone().into_bytes();
    typo[40] = if typo[40] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    for key in [&good, &wrong, &typo, &k.unknown()] {
        server.get("/", &[("x-api-key", key)]).await;
    }
    let failing = Palisade::builder()
        .authenticate(k.keys.authenticator(FailingStore))
        .build()
        .unwrap();
    let failing = TestServer::start(failing).await;
    failing.get("/", &[("x-api-key", &good)]).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the refusals and the store failure were logged, with their reasons.
    for expected in [
        "wrong_secret",
        "bad_checksum",
        "unknown_key",
        "api key store failed",
        // The operator sees why the store failed (its error chain; no credential is in it).
        "connection refused (db.internal:5432)",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in:\n{logs}");
    }
    for key in [&good, &wrong, &typo] {
        assert!(!logs.contains(key.as_str()), "a key was logged:\n{logs}");
        assert!(!logs.contains(&key[20..60]), "a secret was logged:\n{logs}");
    }
    let hash = k.keys.hash(&good).unwrap().1.to_hex();
    assert!(!logs.contains(&hash), "a key hash was logged:\n{logs}");
}

#[tokio::test]
async fn a_handler_asking_for_a_principal_on_an_unguarded_route_gets_500_not_a_pass() {
    use axum::routing::get;
    use tower::ServiceExt;
    // A wiring mistake: the route is not behind palisade. The extractor refuses loudly.
    let app = axum::Router::new().route(
        "/oops",
        get(|p: palisade::Principal| async move { p.subject().to_owned() }),
    );
    let res = app
        .oneshot(
            http::Request::get("/oops")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "principal_missing");
}

/// Rolling a key: the new key works at once, the old one until the end of the overlap and
/// not after, and both name the same caller.
#[tokio::test]
async fn a_rerolled_key_overlaps_with_the_old_one_until_the_given_time() {
    let k = Keys::new();
    let old = k
        .keys
        .generate(KeySpec::new("ci").role("deployer").tenant("acme"))
        .unwrap();
    let old_key = old.plaintext.expose_secret().to_owned();
    let now = Timestamp::from_unix_secs(NOW);
    let overlap = Timestamp::from_unix_secs(NOW + 3_600);
    let (new, old_record) = k.keys.reroll(&old.record, now, overlap).unwrap();
    let new_key = new.plaintext.expose_secret().to_owned();
    assert_eq!(new.record.principal().subject(), "ci");
    assert!(new.record.principal().has_role("deployer"));
    assert_eq!(new.record.principal().tenant(), Some("acme"));
    assert_eq!(new.record.created_at(), Some(now));
    assert_ne!(new.record.id(), old_record.id());
    k.store.insert(old_record);
    k.store.insert(new.record);
    let server = k.serve().await;
    for key in [&old_key, &new_key] {
        assert_eq!(
            server.get("/", &[("x-api-key", key)]).await.status,
            StatusCode::OK
        );
    }
    k.clock.advance(Duration::from_secs(3_600));
    let hits = server.hits();
    let expired = server.get("/", &[("x-api-key", &old_key)]).await;
    assert_refused(&server, hits, &expired, 401, "key_expired", &old_key);
    assert_eq!(
        server.get("/", &[("x-api-key", &new_key)]).await.status,
        StatusCode::OK
    );
}
