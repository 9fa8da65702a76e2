//! The API key lifecycle against `examples/sqlite_key_store.rs` and a real SQLite file, over
//! real HTTP on loopback: keys hashed under a previous pepper keep working and are moved to the
//! current scheme in the database on their first successful use; last-used times reach the
//! database in batches; a store whose background writes fail or hang changes no answer.

mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/sqlite_key_store.rs"]
mod example;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use example::{Database, SqliteKeyStore};
use palisade::authn::api_key::{
    ApiKeyAuthenticator, ApiKeys, KeyHasher, KeyId, KeyRecord, KeySpec, KeyStore, LastUsed, Rehash,
};
use palisade::clock::{Clock, SystemClock};
use palisade::error::{StoreError, StoreErrorKind};
use palisade::invalidation::InProcessBus;
use palisade::{Palisade, Principal};

const OLD_PEPPER: &[u8] = b"the pepper of 2025, 32 bytes long!";
const NEW_PEPPER: &[u8] = b"the pepper of 2026, also 32 bytes!";

/// `GET /whoami` with `key`: the status and the problem `code`, if any, bounded by 5 s.
async fn get_with(addr: SocketAddr, key: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::get(format!("http://{addr}/whoami"))
        .header("x-api-key", key)
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .expect("answered within 5 s")
        .unwrap();
    let status = res.status().as_u16();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

async fn serve<S: KeyStore>(auth: ApiKeyAuthenticator<S>) -> SocketAddr {
    let app = Router::new()
        .route(
            "/whoami",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .layer(Palisade::builder().authenticate(auth).build().unwrap());
    support::serve(app).await
}

/// A fresh database file for `name`.
fn database(name: &str) -> (Database, PathBuf) {
    let dir = std::env::temp_dir().join(format!("palisade-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.db");
    let _ = std::fs::remove_file(&path);
    (Database::open(&path).unwrap(), dir)
}

/// The record of `id` as the database holds it now.
async fn row(db: &Database, id: &KeyId) -> KeyRecord {
    SqliteKeyStore(db.clone()).get(id).await.unwrap().unwrap()
}

/// Polls `check` until it holds, bounded by a tokio timeout.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("never happened");
}

fn old_keys() -> ApiKeys {
    ApiKeys::new().with_hasher(KeyHasher::keyed(OLD_PEPPER).unwrap())
}

fn new_keys() -> ApiKeys {
    ApiKeys::new()
        .with_hasher(KeyHasher::keyed(NEW_PEPPER).unwrap())
        .with_hash_version(2)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_under_the_old_pepper_is_accepted_then_stored_under_the_new_one() {
    let (db, dir) = database("rehash");
    let old = old_keys();
    let ada = old.generate(KeySpec::new("ada")).unwrap();
    let bob = old.generate(KeySpec::new("bob")).unwrap();
    db.insert_key(&ada.record).await.unwrap();
    db.insert_key(&bob.record).await.unwrap();
    let (ada_key, bob_key) = (ada.plaintext.expose_secret(), bob.plaintext.expose_secret());
    let bus = InProcessBus::new();

    // The new pepper is current (version 2); the old one is kept as version 1.
    let migrating = new_keys()
        .with_previous_hasher(1, KeyHasher::keyed(OLD_PEPPER).unwrap())
        .unwrap();
    let cached = SqliteKeyStore::cached(db.clone(), Duration::from_secs(60), &bus);
    let addr = serve(migrating.authenticator(cached.clone())).await;
    assert_eq!(get_with(addr, ada_key).await, (200, String::new()));

    // The database now holds ada's hash under the new pepper; bob's, unused, is untouched.
    eventually(|| async { row(&db, ada.record.id()).await.hash_version() == 2 }).await;
    let (_, current) = new_keys().hash(ada_key).unwrap();
    assert!(row(&db, ada.record.id()).await.hash().ct_eq(&current));
    assert_eq!(row(&db, bob.record.id()).await.hash_version(), 1);
    // The cache dropped its old answer: the key keeps working through it.
    assert_eq!(get_with(addr, ada_key).await.0, 200);

    // The old pepper removed: ada's key still works, bob's (never used) no longer does.
    let fresh = SqliteKeyStore::cached(db.clone(), Duration::from_secs(60), &bus);
    let addr = serve(new_keys().authenticator(fresh)).await;
    assert_eq!(get_with(addr, ada_key).await.0, 200);
    assert_eq!(
        get_with(addr, bob_key).await,
        (401, "invalid_key".to_owned())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same key id with another secret (a valid checksum, so it reaches the store).
fn wrong_secret_for(keys: &ApiKeys, key: &str) -> String {
    let (_, other) = keys.format().generate().unwrap();
    let cut = keys.format().prefix().len() + 1 + 16;
    let signed = format!("{}{}", &key[..cut], &other.expose_secret()[cut..cut + 43]);
    let mut crc = u64::from(crc32fast::hash(signed.as_bytes()));
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut digits = [0u8; 6];
    for d in digits.iter_mut().rev() {
        *d = alphabet[usize::try_from(crc % 62).unwrap()];
        crc /= 62;
    }
    format!("{signed}{}", std::str::from_utf8(&digits).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_under_an_old_version_is_refused_like_any_wrong_key() {
    let (db, dir) = database("wrong-old");
    let old_issued = old_keys().generate(KeySpec::new("ada")).unwrap();
    let new_issued = new_keys().generate(KeySpec::new("bob")).unwrap();
    db.insert_key(&old_issued.record).await.unwrap();
    db.insert_key(&new_issued.record).await.unwrap();
    let migrating = new_keys()
        .with_previous_hasher(1, KeyHasher::keyed(OLD_PEPPER).unwrap())
        .unwrap();
    let addr = serve(migrating.authenticator(SqliteKeyStore(db.clone()))).await;

    let wrong_old = wrong_secret_for(&old_keys(), old_issued.plaintext.expose_secret());
    let wrong_new = wrong_secret_for(&new_keys(), new_issued.plaintext.expose_secret());
    let refused = (401, "invalid_key".to_owned());
    assert_eq!(get_with(addr, &wrong_old).await, refused);
    assert_eq!(get_with(addr, &wrong_new).await, refused);
    // Nothing was rehashed for the wrong key.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(row(&db, old_issued.record.id()).await.hash_version(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store that counts the batches of last uses handed to it, once each is written (so a
/// test that saw the count can read the rows).
#[derive(Clone)]
struct CountingBatches(SqliteKeyStore, Arc<AtomicUsize>);

impl KeyStore for CountingBatches {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(id).await
    }

    async fn record_last_used(&self, uses: &[LastUsed]) -> Result<(), StoreError> {
        let written = self.0.record_last_used(uses).await;
        self.1.fetch_add(1, Ordering::SeqCst);
        written
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_times_reach_the_database_in_one_batch_for_many_requests() {
    let (db, dir) = database("last-used");
    let keys = ApiKeys::new();
    let ada = keys.generate(KeySpec::new("ada")).unwrap();
    let bob = keys.generate(KeySpec::new("bob")).unwrap();
    db.insert_key(&ada.record).await.unwrap();
    db.insert_key(&bob.record).await.unwrap();
    let batches = Arc::new(AtomicUsize::new(0));
    let store = CountingBatches(SqliteKeyStore(db.clone()), batches.clone());
    // A batch is two keys; the interval is far away, so only the batch size writes.
    let auth = keys
        .authenticator(store)
        .with_last_used_batch(2)
        .with_last_used_interval(Duration::from_secs(3600));
    let addr = serve(auth).await;
    let before = SystemClock.now();
    for _ in 0..10 {
        assert_eq!(get_with(addr, ada.plaintext.expose_secret()).await.0, 200);
    }
    assert_eq!(batches.load(Ordering::SeqCst), 0, "one key: no batch yet");
    assert!(row(&db, ada.record.id()).await.last_used_at().is_none());
    assert_eq!(get_with(addr, bob.plaintext.expose_secret()).await.0, 200);
    eventually(|| async { batches.load(Ordering::SeqCst) == 1 }).await;
    for id in [ada.record.id(), bob.record.id()] {
        let at = row(&db, id).await.last_used_at().expect("recorded");
        assert!(at.as_unix_secs() >= before.as_unix_secs(), "{at:?}");
        assert!(at <= SystemClock.now());
    }
    // Eleven requests, one write.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(batches.load(Ordering::SeqCst), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store whose background writes fail (`hang: false`) or never finish (`hang: true`).
struct BadWrites {
    inner: SqliteKeyStore,
    hang: bool,
    calls: Arc<AtomicUsize>,
}

impl KeyStore for BadWrites {
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get(id).await
    }

    async fn update_hash(&self, _: Rehash) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(StoreError::new(StoreErrorKind::Unavailable, "disk full"))
    }

    async fn record_last_used(&self, _: &[LastUsed]) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(StoreError::new(StoreErrorKind::Unavailable, "disk full"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_writes_fail_or_hang_never_changes_an_answer() {
    for hang in [false, true] {
        let (db, dir) = database(if hang { "hang" } else { "fail" });
        let issued: Vec<_> = (0..5)
            .map(|i| old_keys().generate(KeySpec::new(format!("u{i}"))).unwrap())
            .collect();
        for k in &issued {
            db.insert_key(&k.record).await.unwrap();
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let store = BadWrites {
            inner: SqliteKeyStore(db.clone()),
            hang,
            calls: calls.clone(),
        };
        let migrating = new_keys()
            .with_previous_hasher(1, KeyHasher::keyed(OLD_PEPPER).unwrap())
            .unwrap();
        let auth = migrating
            .authenticator(store)
            .with_last_used_batch(1)
            .with_rehash_queue(1);
        let addr = serve(auth).await;
        for round in 0..4 {
            for k in &issued {
                let answer = get_with(addr, k.plaintext.expose_secret()).await;
                assert_eq!(answer, (200, String::new()), "hang {hang}, round {round}");
            }
        }
        assert!(calls.load(Ordering::SeqCst) >= 1, "the writes were tried");
        // Refusals are unaffected too.
        let stranger = new_keys().generate(KeySpec::new("eve")).unwrap();
        assert_eq!(
            get_with(addr, stranger.plaintext.expose_secret()).await,
            (401, "invalid_key".to_owned())
        );
        assert_eq!(row(&db, issued[0].record.id()).await.hash_version(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
